"""Day-2 writing commands never relink, move or delete what pgkongtls did not write (#11).

A write stages the directory's files and swaps the stage in, so every file in the PKI directory is
touched: one that pgkongtls did not write (its manifest's files, chain.crt, the CRL, and their
NAME.<serial>.bak backups are its own) makes each writing command refuse, in one line, naming it.
Stages left by a killed run are swept only when they are the effective user's.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from pgkongtls import deploy, ops
from pgkongtls.errors import StateError
from pgkongtls.fsio import STAGE_TAG
from pgkongtls.lifecycle import LeafRequest
from pgkongtls.pki import InitOptions

from .test_fsio import snapshot

NOW = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.timezone.utc)

WRITERS: dict[str, Callable[[Path], object]] = {
    "issue": lambda d: ops.issue(d, [LeafRequest(name="n1", role="client", cn=None)], now=NOW),
    "renew": lambda d: ops.renew(d, ["client"], now=NOW),
    "revoke": lambda d: ops.revoke(d, ["client"], now=NOW),
    "crl": lambda d: ops.refresh_crl(d, now=NOW),
    "deploy-paths": lambda d: deploy.set_deploy_paths(d, {"postgres": "/etc/postgresql/elsewhere"}),
}


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    d = tmp_path / "pki"
    ops.init(d, InitOptions(), now=NOW)
    return d


@pytest.mark.parametrize("command", list(WRITERS))
@pytest.mark.parametrize(("make", "shown"), [
    (lambda d: (d / "notes.txt").write_text("mine\n"), "notes.txt"),
    (lambda d: (d / "old").mkdir(), "old/"),
    (lambda d: os.symlink("/etc/passwd", d / "passwd"), "passwd"),
    (lambda d: (d / "server.crt.orig").write_text("x"), "server.crt.orig"),  # not a backup: no serial
])
def test_a_file_pgkongtls_did_not_write_is_refused_and_nothing_changes(
        pki: Path, tmp_path: Path, command: str, make: Callable[[Path], object], shown: str) -> None:
    make(pki)
    before = snapshot(tmp_path)
    with pytest.raises(StateError) as e:
        WRITERS[command](pki)
    assert str(e.value) == (f"{pki} holds files pgkongtls did not write ({shown}); move them out of the PKI "
                            "directory and run the command again")
    assert snapshot(tmp_path) == before
    assert sorted(os.listdir(tmp_path)) == ["pki"]  # no stage left either


def test_many_foreign_files_are_counted(pki: Path) -> None:
    for i in range(5):
        (pki / f"x{i}").write_text("")
    with pytest.raises(StateError, match=r"holds files pgkongtls did not write \(x0, x1, x2, … 5 entries\)"):
        ops.refresh_crl(pki, now=NOW)


@pytest.mark.parametrize("command", list(WRITERS))
def test_its_own_backups_and_archived_entries_are_not_foreign(pki: Path, command: str) -> None:
    ops.renew(pki, ["client", "server"], now=NOW)  # NAME.crt.<serial>.bak, NAME.key.<serial>.bak
    ops.revoke(pki, ["client"], now=NOW)  # crl.pem
    ops.renew(pki, ["client"], now=NOW)  # an archived revoked entry, client@<serial>
    WRITERS["issue" if command == "revoke" else command](pki)  # the twin of the refusal: it goes through


def test_a_stage_of_another_user_is_not_swept(pki: Path, tmp_path: Path) -> None:
    theirs = tmp_path / f".pki{STAGE_TAG}theirs"
    theirs.mkdir()
    (theirs / "their-file").write_text("keep me\n")
    os.chown(theirs, 65534, 65534)
    ours = tmp_path / f".pki{STAGE_TAG}ours"  # what a killed run of ours leaves
    ours.mkdir(mode=0o700)
    (ours / "server.key").write_text("")
    ops.refresh_crl(pki, now=NOW)
    assert not ours.exists()
    assert (theirs / "their-file").read_text() == "keep me\n" and theirs.stat().st_uid == 65534


def test_a_second_backup_in_the_same_second_gets_its_own_name(tmp_path: Path) -> None:
    """init --force twice within one second: the second backup used to be renamed onto the first (ENOTEMPTY),
    after the swap, and the old PKI was deleted with the stage."""
    from pgkongtls import fsio

    target = tmp_path / "pki"
    target.mkdir(mode=0o700)
    (target / "a").write_text("first\n")
    kept = []
    for text in ("second\n", "third\n"):
        with fsio.transaction(target, create=True) as tx:
            kept.append(tx.commit({"a": text.encode()}, overwrite=True, keep_previous="pki.previous-X"))
    assert kept == [tmp_path / "pki.previous-X", tmp_path / "pki.previous-X.2"]
    assert [(k / "a").read_text() for k in kept] == ["first\n", "second\n"]
    assert (target / "a").read_text() == "third\n"
