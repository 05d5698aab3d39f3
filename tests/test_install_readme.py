"""The README's first command works as printed on a system Python that refuses `pip install` (PEP 668).

Marked realstack: it is a real `pip install` into a fresh virtualenv (about 20 s, PyPI or pip's
cache), like the other checks that use the machine as it is. It runs on a copy of the source tree,
so the build leaves nothing in the checkout, with HOME in a scratch directory for `~/.pgkongtls`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from . import cmdrun

pytestmark = pytest.mark.realstack

REPO = Path(__file__).resolve().parent.parent
SYSTEM_PYTHON = Path("/usr/bin/python3")


def first_command() -> str:
    block = cmdrun.README.read_text().split("```sh\n", 1)[1].split("```", 1)[0]
    return block.strip()


def _env(home: Path) -> dict[str, str]:
    cache = os.environ.get("PIP_CACHE_DIR") or str(Path.home() / ".cache" / "pip")
    return {"HOME": str(home), "PATH": "/usr/bin:/bin", "PIP_CACHE_DIR": cache, "LANG": "C.UTF-8",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".venv*", ".git", "node_modules", "build", "*.egg-info",
                                                             "__pycache__", ".pytest_cache", ".mypy_cache",
                                                             ".ruff_cache"))
    return src


@pytest.mark.skipif(not list(Path("/usr/lib").glob("python3*/EXTERNALLY-MANAGED")),
                    reason="this machine's /usr/bin/python3 is not externally managed (PEP 668)")
def test_first_command_works_as_printed_where_pip_install_is_refused(source: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    # the premise: this Python refuses a plain pip install
    refused = subprocess.run([str(SYSTEM_PYTHON), "-m", "pip", "install", "--dry-run", "."], cwd=source,
                             env=_env(home), capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and "externally-managed-environment" in refused.stderr
    line = first_command()
    assert line.startswith("python3 -m venv ~/.pgkongtls && ") and "&& pgkongtls init " in line
    r = subprocess.run(["bash", "-c", line], cwd=source, env=_env(home), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (source / "pki" / "pgkongtls.json").exists()
    assert (home / ".pgkongtls" / "bin" / "pgkongtls").exists()
    assert "next: pgkongtls render all --dir pki --write pki-config" in r.stderr


def test_without_activate_the_second_half_finds_no_pgkongtls(source: Path, tmp_path: Path) -> None:
    """Twin: the old form (venv + its pip, then a bare pgkongtls) fails there, which is why activate is in."""
    home = tmp_path / "home"
    home.mkdir()
    line = "python3 -m venv ~/.pgkongtls && ~/.pgkongtls/bin/pip install -q . && pgkongtls init --out pki"
    r = subprocess.run(["bash", "-c", line], cwd=source, env=_env(home), capture_output=True, text=True, timeout=600)
    assert r.returncode == 127 and "pgkongtls: command not found" in r.stderr
