"""Library tests for the filesystem layer: modes, no clobbering, all-or-nothing commits."""

from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path

import pytest

from pgkongtls import fsio, ops
from pgkongtls.errors import StateError
from pgkongtls.manifest import MANIFEST_NAME
from pgkongtls.pki import InitOptions


def snapshot(d: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under d with its content and mode, to compare before/after."""
    return {str(p.relative_to(d)): (p.read_bytes(), stat.S_IMODE(p.stat().st_mode))
            for p in sorted(d.rglob("*")) if p.is_file()}


def test_new_directory_is_0700_and_keys_0600(tmp_path: Path, now: dt.datetime) -> None:
    ops.init(tmp_path / "pki", InitOptions(), now=now)
    d = tmp_path / "pki"
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in d.iterdir()}
    assert {n: m for n, m in modes.items() if n.endswith(".key")} == {
        "root.key": 0o600, "intermediate.key": 0o600, "server.key": 0o600, "client.key": 0o600}
    assert all(m == 0o644 for n, m in modes.items() if not n.endswith(".key"))


def test_keys_are_0600_even_with_a_permissive_umask(tmp_path: Path, now: dt.datetime) -> None:
    old = os.umask(0)
    try:
        ops.init(tmp_path / "pki", InitOptions(chain="root"), now=now)
    finally:
        os.umask(old)
    for key in (tmp_path / "pki").glob("*.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_key_never_has_group_or_world_bits_while_being_written(
    tmp_path: Path, now: dt.datetime, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Watch every key file at the moment its bytes are written."""
    seen: dict[str, int] = {}
    real_write = os.write

    def spy(fd: int, data: bytes | memoryview) -> int:
        link = os.readlink(f"/proc/self/fd/{fd}")
        if ".key" in link:
            seen[link] = stat.S_IMODE(os.fstat(fd).st_mode)
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", spy)
    ops.init(tmp_path / "pki", InitOptions(), now=now)
    assert len(seen) == 4
    assert set(seen.values()) == {0o600}


def test_existing_pki_is_refused_and_untouched(tmp_path: Path, now: dt.datetime) -> None:
    d = tmp_path / "pki"
    ops.init(d, InitOptions(), now=now)
    before = snapshot(d)
    with pytest.raises(StateError, match=r"already holds a PKI \(pgkongtls.json\); pass --force to replace it"):
        ops.init(d, InitOptions(), now=now)
    assert snapshot(d) == before


def test_a_lone_key_is_not_clobbered(tmp_path: Path, now: dt.datetime) -> None:
    d = tmp_path / "pki"
    d.mkdir()
    (d / "server.key").write_text("precious")
    with pytest.raises(StateError, match=r"already holds a PKI \(server.key\); pass --force"):
        ops.init(d, InitOptions(), now=now)
    assert (d / "server.key").read_text() == "precious"
    assert sorted(p.name for p in d.iterdir()) == ["server.key"]


def test_force_replaces_and_drops_files_of_the_old_shape(tmp_path: Path, now: dt.datetime) -> None:
    d = tmp_path / "pki"
    (tmp_path / "keep").mkdir()
    ops.init(d, InitOptions(chain="intermediate"), now=now)
    (d / "notes.txt").write_text("mine")
    old_root = (d / "root.crt").read_bytes()
    m = ops.init(d, InitOptions(chain="root"), force=True, now=now)
    assert (d / "root.crt").read_bytes() != old_root
    assert not (d / "intermediate.key").exists() and not (d / "intermediate.crt").exists()
    assert (d / "notes.txt").read_text() == "mine"
    assert fsio.load_manifest(d) == m


@pytest.mark.parametrize("step", ["write:root.key", "write:server.key", f"write:{MANIFEST_NAME}", "staged"])
def test_injected_failure_leaves_existing_directory_exactly_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str, now: dt.datetime) -> None:
    d = tmp_path / "pki"
    ops.init(d, InitOptions(), now=now)
    before = snapshot(d)
    monkeypatch.setenv("PGKONGTLS_TEST_FAIL_AT", step)
    with pytest.raises(fsio.InjectedFailure, match=f"injected failure at {step}"):
        ops.init(d, InitOptions(chain="root"), force=True, now=now)
    assert snapshot(d) == before
    assert [p.name for p in tmp_path.iterdir()] == ["pki"]


def test_injected_failure_on_a_new_directory_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, now: dt.datetime,
) -> None:
    monkeypatch.setenv("PGKONGTLS_TEST_FAIL_AT", "write:client.key")
    with pytest.raises(fsio.InjectedFailure):
        ops.init(tmp_path / "pki", InitOptions(), now=now)
    assert list(tmp_path.iterdir()) == []


def test_failure_after_the_swap_leaves_the_complete_new_pki(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, now: dt.datetime,
) -> None:
    d = tmp_path / "pki"
    ops.init(d, InitOptions(), now=now)
    monkeypatch.setenv("PGKONGTLS_TEST_FAIL_AT", "swapped")
    with pytest.raises(fsio.InjectedFailure):
        ops.init(d, InitOptions(chain="root"), force=True, now=now)
    assert fsio.load_manifest(d).chain == "root"
    assert not (d / "intermediate.key").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pki"]


def test_out_that_is_a_file(tmp_path: Path, now: dt.datetime) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(StateError, match=r"is a file; pass --out a directory"):
        ops.init(tmp_path / "f", InitOptions(), now=now)


def test_out_under_missing_parent(tmp_path: Path, now: dt.datetime) -> None:
    with pytest.raises(StateError, match=r"parent directory .*/missing does not exist; create it first"):
        ops.init(tmp_path / "missing" / "pki", InitOptions(), now=now)


def test_unwritable_parent(tmp_path: Path, now: dt.datetime) -> None:
    """Mode bits stop other users; root is stopped only by a filesystem that refuses (sysfs)."""
    if os.geteuid() == 0:
        target, message = Path("/sys/pgkongtls-test"), r"^cannot write /sys/pgkongtls-test: "
    else:
        (tmp_path / "ro").mkdir(mode=0o500)
        target, message = tmp_path / "ro" / "pki", r"cannot write to .*ro; choose another --out"
    with pytest.raises(StateError, match=message):
        ops.init(target, InitOptions(), now=now)
    assert not target.exists()


def test_load_manifest_errors(tmp_path: Path) -> None:
    with pytest.raises(StateError, match=r"does not exist; create a PKI with pgkongtls init --out"):
        fsio.load_manifest(tmp_path / "nope")
    with pytest.raises(StateError, match=r"is not a pgkongtls PKI \(no pgkongtls.json\)"):
        fsio.load_manifest(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text("{")
    with pytest.raises(StateError, match="pgkongtls.json is not valid JSON"):
        fsio.load_manifest(tmp_path)


def test_write_outputs_does_not_overwrite_without_force(tmp_path: Path) -> None:
    fsio.write_outputs(tmp_path, {"a.snippet": "one\n"}, overwrite=False)
    with pytest.raises(StateError, match=r"a.snippet exists; pass --force to replace it"):
        fsio.write_outputs(tmp_path, {"a.snippet": "two\n", "b.snippet": "x"}, overwrite=False)
    assert (tmp_path / "a.snippet").read_text() == "one\n" and not (tmp_path / "b.snippet").exists()
    fsio.write_outputs(tmp_path, {"a.snippet": "two\n"}, overwrite=True)
    assert (tmp_path / "a.snippet").read_text() == "two\n"
