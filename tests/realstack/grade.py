"""sslyze's Mozilla-profile check of a running server (`--starttls postgres --mozilla_config P`).

sslyze lives in its own virtualenv (scripts/test makes .venv-sslyze and sets
$PGKONGTLS_SSLYZE): sslyze 6.3 pins cryptography < 47, which would downgrade the
cryptography pgkongtls itself is tested with.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .pg import HOST


@dataclass(frozen=True)
class Grade:
    """sslyze's verdict for one Mozilla profile: compliant, or the list of its reasons."""

    profile: str
    compliant: bool
    problems: tuple[str, ...]
    output: str = field(repr=False)


def sslyze_exe() -> str:
    """$PGKONGTLS_SSLYZE (set by scripts/test), or skip the test with the reason."""
    exe = os.environ.get("PGKONGTLS_SSLYZE")
    if not exe:
        pytest.skip("PGKONGTLS_SSLYZE is not set: no sslyze virtualenv (run through ./scripts/test)")
    return exe


def sslyze_grade(port: int, profile: str, *, ca_file: Path) -> Grade:
    """Grade 127.0.0.1:`port` against Mozilla's `profile` ("intermediate" or "modern"), with the PKI's
    own CA (`ca_file`) added to sslyze's trust stores: the profile also checks the certificate path."""
    cmd = [sslyze_exe(), "--slow_connection", "--starttls", "postgres", "--certinfo_ca_file", str(ca_file),
           "--mozilla_config", profile, f"{HOST}:{port}"]
    # --slow_connection: one handshake at a time. With its default concurrency, one of sslyze's many
    # handshakes sometimes errored on this loaded 2-core machine (no verdict in 3 runs, RSA legacy profile).
    for _ in range(3):
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        out = res.stdout + res.stderr
        verdict = re.search(rf"{re.escape(HOST)}:{port}: (OK - Compliant|FAILED - Not compliant)", out)
        if verdict is not None:
            break
    else:
        raise RuntimeError(f"sslyze gave no Mozilla verdict in 3 runs (exit {res.returncode}):\n{out}")
    problems = tuple(re.findall(r"^ {8}\* (\w+: .+)$", out[verdict.end():], re.M))  # "* criterion: why"
    return Grade(profile=profile, compliant=verdict.group(1).startswith("OK"), problems=problems, output=out)


def sslyze_version() -> str | None:
    exe = os.environ.get("PGKONGTLS_SSLYZE")
    if not exe:
        return None
    py = os.path.join(os.path.dirname(exe), "python")
    res = subprocess.run([py, "-c", "import sslyze.__version__ as v; print(v.__version__)"], capture_output=True,
                         text=True)
    return res.stdout.strip() or None
