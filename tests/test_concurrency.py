"""Two writing commands at once on one PKI directory: both changes land, the manifest stays whole.

fsio.transaction flocks the PKI's parent directory for each read-modify-write,
so the second process reads the manifest only after the first has swapped its
change in. Without that lock the later swap would silently drop the earlier
change (each stages from the directory it read), which these tests would see
as missing names. Real processes, started together.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pgkongtls import ops
from pgkongtls.manifest import MANIFEST_NAME, loads
from pgkongtls.pki import InitOptions

from .test_crash import assert_complete, assert_no_loose_keys, stages

#: Enough names that each process spends tens of milliseconds between reading and swapping.
PER_PROCESS = 80


def start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "PGKONGTLS_TEST_FAIL_AT"}
    return subprocess.Popen([sys.executable, "-m", "pgkongtls", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(*procs: subprocess.Popen[str]) -> None:
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err


def names(prefix: str) -> list[str]:
    return [f"--name={prefix}{i:03d}" for i in range(PER_PROCESS)]


@pytest.fixture
def pki(tmp_path: Path, now: dt.datetime) -> Path:
    out = tmp_path / "pki"
    ops.init(out, InitOptions(), now=now)
    return out


def test_two_issue_client_processes_at_once_both_land(pki: Path) -> None:
    a = start(["issue", "client", "--dir", "pki", *names("a")], pki.parent)
    b = start(["issue", "client", "--dir", "pki", *names("b")], pki.parent)
    finish(a, b)
    m = assert_complete(pki)
    want = {f"{p}{i:03d}" for p in "ab" for i in range(PER_PROCESS)}
    assert want <= set(m.certificates)
    assert set(m.certificates) - want == {"root", "intermediate", "server", "client"}
    assert stages(pki.parent) == []
    assert_no_loose_keys(pki.parent)


def test_issue_and_revoke_at_once_both_land(pki: Path) -> None:
    setup = start(["issue", "client", "--dir", "pki", "--name", "old"], pki.parent)
    finish(setup)
    a = start(["issue", "client", "--dir", "pki", *names("a")], pki.parent)
    b = start(["revoke", "--dir", "pki", "old"], pki.parent)
    finish(a, b)
    m = assert_complete(pki)
    assert all(f"a{i:03d}" in m.certificates for i in range(PER_PROCESS))
    assert m.certificates["old"].revoked is not None and m.crl_file == "crl.pem"


def test_three_processes_each_renewing_one_leaf_at_once_all_land(pki: Path) -> None:
    before = loads((pki / MANIFEST_NAME).read_text())
    procs = [start(["renew", "--dir", "pki", name], pki.parent) for name in ("server", "client")]
    procs.append(start(["issue", "client", "--dir", "pki", *names("c")], pki.parent))
    finish(*procs)
    m = assert_complete(pki)
    for name in ("server", "client"):
        assert m.certificates[name].serial != before.certificates[name].serial
    assert all(f"c{i:03d}" in m.certificates for i in range(PER_PROCESS))
