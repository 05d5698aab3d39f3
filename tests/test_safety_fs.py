"""Shared-host safety (#11): nothing pgkongtls did not write is moved, copied or deleted; links,
owners and locks are not trusted blindly. CLI-level, exact errors."""

from __future__ import annotations

import fcntl
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from pgkongtls.cli import main

INITDB = Path("/usr/lib/postgresql/15/bin/initdb")


def run(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, list(args))
    return r.exit_code, r.stderr


def tree(d: Path) -> dict[str, tuple[int, int, int, bytes | None]]:
    """Every entry under d: inode, mode, owner and (for files) content."""
    out = {}
    for p in sorted(d.rglob("*")):
        st = p.lstat()
        out[str(p.relative_to(d))] = (st.st_ino, st.st_mode, st.st_uid, p.read_bytes() if p.is_file() else None)
    return out


@pytest.fixture
def pgdata() -> Iterator[Path]:
    """A real initdb'ed data directory, or skip when PostgreSQL is missing. In a 0755 directory of
    its own: initdb runs as postgres, which cannot enter pytest's 0700 tmp_path."""
    if not INITDB.exists() or os.geteuid() != 0:
        pytest.skip("needs root and PostgreSQL 15's initdb")
    base = Path(tempfile.mkdtemp(prefix="pgkongtls-pgdata-"))
    try:
        os.chmod(base, 0o755)
        d = base / "data"
        d.mkdir()
        shutil.chown(d, "postgres", "postgres")
        subprocess.run(["runuser", "-u", "postgres", "--", str(INITDB), "-D", str(d), "-A", "trust"],
                       check=True, capture_output=True)
        yield d
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_init_into_a_live_data_directory_is_refused_and_touches_nothing(pgdata: Path) -> None:
    shutil.chown(pgdata, "root", "root")  # as the operator's own directory: past the owner check
    before = tree(pgdata)
    count = len(os.listdir(pgdata))
    for extra in ([], ["--force"]):
        code, err = run("init", "--out", str(pgdata), *extra)
        assert code == 1
        assert err == (f"Error: {pgdata} is not empty (PG_VERSION, base/, global/, … {count} entries); "
                       "choose an empty or new directory\n")
        assert tree(pgdata) == before


def test_init_force_keeps_the_previous_pki_beside_it(tmp_path: Path) -> None:
    d = tmp_path / "pki"
    assert run("init", "--out", str(d))[0] == 0
    old = {p.name: p.read_bytes() for p in d.iterdir()}
    code, err = run("init", "--out", str(d), "--force")
    assert code == 0
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("pki.previous-")]
    assert len(kept) == 1 and f"Warning: the previous PKI is kept in {kept[0]} (0700, keys 0600)" in err
    assert {p.name: p.read_bytes() for p in kept[0].iterdir()} == old
    assert stat.S_IMODE(kept[0].stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in kept[0].iterdir() if p.suffix == ".key")


def test_a_symlinked_dir_reaches_the_files_it_points_at(tmp_path: Path) -> None:
    real = tmp_path / "volume" / "pki"
    real.parent.mkdir()
    assert run("init", "--out", str(real))[0] == 0
    link = tmp_path / "pki"
    link.symlink_to(real)
    assert run("issue", "client", "--dir", str(link), "--name", "kong-node-1")[0] == 0
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert (real / "kong-node-1.crt").is_file() and (real / "kong-node-1.key").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pki", "volume"]  # no stage, no copy beside the link


def test_a_directory_another_user_made_is_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to chown")
    d = tmp_path / "pki"
    d.mkdir(mode=0o700)
    os.chown(d, pwd.getpwnam("nobody").pw_uid, -1)
    assert run("init", "--out", str(d)) == (1, f"Error: {d} belongs to nobody, not to you; choose a directory of your own\n")
    assert os.listdir(d) == []


def test_a_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "pki"
    d.mkdir()
    os.chmod(d, 0o777)
    assert run("init", "--out", str(d)) == (
        1, f"Error: {d} is writable by group or others (mode 0777); chmod 700 {d} or choose another directory\n")
    assert os.listdir(d) == []


def test_a_held_lock_fails_after_wait_with_one_line(tmp_path: Path) -> None:
    d = tmp_path / "pki"
    assert run("init", "--out", str(d))[0] == 0
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        before = tree(d)
        assert run("issue", "client", "--dir", str(d), "--name", "n1", "--wait", "0.2") == (
            1, f"Error: another pgkongtls run holds the lock on {d}; wait for it to finish, or pass a longer --wait SECONDS\n")
        assert tree(d) == before
    finally:
        os.close(fd)


def test_a_lock_on_the_parent_no_longer_blocks(tmp_path: Path) -> None:
    """Any user who can read /tmp or /etc could hold this lock; a renewal must not hang on it."""
    d = tmp_path / "pki"
    assert run("init", "--out", str(d))[0] == 0
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert run("issue", "client", "--dir", str(d), "--name", "n1", "--wait", "0")[0] == 0
    finally:
        os.close(fd)


def test_render_write_on_a_full_disk_leaves_no_temp_file_and_writes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pgkongtls import fsio

    d, out = tmp_path / "pki", tmp_path / "out"
    assert run("init", "--out", str(d))[0] == 0
    out.mkdir()
    real = fsio._write_all
    calls = []

    def full(fd: int, data: bytes) -> None:
        calls.append(fd)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real(fd, data)

    monkeypatch.setattr(fsio, "_write_all", full)
    code, err = run("render", "all", "--dir", str(d), "--write", str(out))
    assert code == 1 and err.startswith("Error: ") and "No space left on device" in err
    assert os.listdir(out) == []


def test_render_write_creates_its_directories_0755_whatever_the_umask(tmp_path: Path) -> None:
    d = tmp_path / "pki"
    assert run("init", "--out", str(d))[0] == 0
    old = os.umask(0)
    try:
        assert run("render", "all", "--dir", str(d), "--write", str(tmp_path / "a" / "b"))[0] == 0
    finally:
        os.umask(old)
    assert {stat.S_IMODE((tmp_path / p).stat().st_mode) for p in ("a", "a/b")} == {0o755}
