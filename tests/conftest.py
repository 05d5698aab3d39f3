"""Shared test helpers: where Python >= 3.13 lives, the test clock, and the slow-machine plugin."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pgkongtls.certs import utcnow

TESTS = Path(__file__).resolve().parent

#: PGKONGTLS_PAUSE_AFTER_COLLECT=360 (or --pause-after-collect) reproduces a slow machine.
pytest_plugins = ("tests.slowclock_plugin", "tests.clirun")  # clirun: the CLI workspace fixtures


def find_py313() -> str | None:
    """A Python whose default ssl context is strict (VERIFY_X509_STRICT), if the machine has one."""
    env = os.environ.get("PGKONGTLS_PY313")
    if env:
        return env
    if sys.version_info >= (3, 13):
        return sys.executable
    if shutil.which("pyenv"):
        out = subprocess.run(["pyenv", "which", "python"], env={**os.environ, "PYENV_VERSION": "3.13.0"},
                             capture_output=True, text=True)
        if out.returncode == 0:
            return out.stdout.strip()
    return shutil.which("python3.13")


@pytest.fixture(scope="session")
def py313() -> str:
    path = find_py313()
    if not path:
        pytest.skip("no Python >= 3.13 on this machine (its default ssl context is the strict one)")
    return path


@pytest.fixture
def now() -> dt.datetime:
    """A clock read when the test starts: tests mint and check at it, never at a clock read at import time."""
    return utcnow()
