"""The manifest is input, not truth (#11): each attack from the issue, and the stat cache that must not hide one.

Each attack edits pgkongtls.json the way someone else could, then runs the command the issue saw misbehave:
it must refuse in one line, naming the manifest, and change nothing. Each has a twin without the edit that
succeeds, so the refusal comes from the edit.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pgkongtls import lifecycle, ops
from pgkongtls.errors import PgkWarning, StateError
from pgkongtls.manifest import MANIFEST_NAME, STAT_CACHE
from pgkongtls.pki import InitOptions

from .clirun import ok, run
from .test_fsio import snapshot

RESTORE = "restore the manifest pgkongtls wrote"


@pytest.fixture
def pki(tmp_path: Path, now: dt.datetime) -> Path:
    d = tmp_path / "pki"
    ops.init(d, InitOptions(db_user="kong"), now=now - dt.timedelta(days=10))
    return d


def edit(pki: Path, change: Any) -> None:
    data = json.loads((pki / MANIFEST_NAME).read_text())
    change(data)
    (pki / MANIFEST_NAME).write_text(json.dumps(data))


def refused(pki: Path, args: list[str], message: str) -> None:
    before = snapshot(pki.parent)
    r = run(*args, "--dir", str(pki))
    assert (r.exit_code, r.stderr, r.stdout) == (1, f"Error: {message}\n", "")
    assert snapshot(pki.parent) == before


TRUST = "\nhost all all 0.0.0.0/0 trust\n#"


def test_a_sha256_carrying_an_hba_line_is_refused_by_render(pki: Path) -> None:
    edit(pki, lambda d: d["certificates"]["root"].update(sha256=TRUST))
    refused(pki, ["render", "hba"], f"pgkongtls.json: certificates.root.sha256 {TRUST!r} is malformed; "
                                     "re-create it with pgkongtls init --force")


def test_a_well_formed_but_wrong_sha256_is_refused_by_render(pki: Path) -> None:
    edit(pki, lambda d: d["certificates"]["root"].update(sha256=":".join(["AB"] * 32)))
    refused(pki, ["render", "hba"], "root.crt differs from what pgkongtls.json recorded (edited by hand?); "
                                     "restore the file pgkongtls wrote")


def test_render_hba_of_an_untouched_pki_prints_no_trust_line(pki: Path) -> None:
    out = ok("render", "hba", "--dir", str(pki)).stdout
    assert "trust" not in out and "cert" in out


@pytest.fixture
def revoked(pki: Path, now: dt.datetime) -> Path:
    ops.issue(pki, [lifecycle.LeafRequest("n1", "client", None)], now=now)
    ops.revoke(pki, ["n1"], now=now)
    return pki


@pytest.mark.parametrize(("issuer", "message"), [
    ("junk", "pgkongtls.json: certificates.n1.issuer 'junk' is not one of this PKI's CAs; restore the manifest"),
    ("root", f"pgkongtls.json: certificates.n1.issuer is not what n1.crt says (edited by hand?); {RESTORE}"),
])
def test_a_revoked_entrys_issuer_edited_away_is_refused_not_dropped_from_the_crl(
    revoked: Path, issuer: str, message: str,
) -> None:
    edit(revoked, lambda d: d["certificates"]["n1"].update(issuer=issuer))
    refused(revoked, ["crl"], message)


def test_crl_of_an_untouched_pki_keeps_the_revoked_serial(revoked: Path) -> None:
    ok("crl", "--dir", str(revoked))
    m = ops.fsio.load_manifest(revoked)
    crls = lifecycle.load_crls(m, lifecycle.verify_files(m, ops.fsio.reader(revoked)),
                               (revoked / "crl.pem").read_bytes())
    assert int(m.certificates["n1"].serial, 16) in {r.serial_number for c in crls for r in c}


@pytest.mark.parametrize("key_file", ["root.key", "intermediate.key", "server.key"])
def test_a_key_file_pointing_at_another_entrys_key_is_refused_by_renew(pki: Path, key_file: str) -> None:
    edit(pki, lambda d: d["certificates"]["client"].update(key_file=key_file))
    refused(pki, ["renew", "client"], f"pgkongtls.json: certificates.client.key_file {key_file!r} is not "
                                       "client.key, the file of client; restore the manifest")


def test_renew_of_an_untouched_pki_leaves_the_root_key_alone(pki: Path) -> None:
    root_key = (pki / "root.key").read_bytes()
    ok("renew", "client", "--dir", str(pki))
    assert (pki / "root.key").read_bytes() == root_key


@pytest.fixture
def expired(pki: Path, now: dt.datetime) -> Path:
    ops.issue(pki, [lifecycle.LeafRequest("n1", "client", None)], days=1, now=now - dt.timedelta(days=3))
    return pki


@pytest.mark.parametrize("field", ["not_after", "not_before"])
def test_a_validity_edited_to_9999_is_refused_by_status(expired: Path, field: str) -> None:
    edit(expired, lambda d: d["certificates"]["n1"].update({field: "9999-12-31T23:59:59Z"}))
    refused(expired, ["status"], f"pgkongtls.json: certificates.n1.{field} is not what n1.crt says "
                                 f"(edited by hand?); {RESTORE}")


@pytest.mark.parametrize(("field", "value"), [("cn", "postgres"), ("serial", "1"), ("sans", ["evil.example"])])
def test_every_derived_field_is_checked_against_the_certificate(pki: Path, field: str, value: Any) -> None:
    edit(pki, lambda d: d["certificates"]["client"].update({field: value}))
    refused(pki, ["status"], f"pgkongtls.json: certificates.client.{field} is not what client.crt says "
                             f"(edited by hand?); {RESTORE}")


def test_status_of_the_untouched_expired_leaf_says_expired(expired: Path) -> None:
    r = run("status", "--dir", str(expired))
    assert r.exit_code != 0 and "n1 expired on" in r.stderr


@pytest.mark.parametrize(("where", "value", "message"), [
    ("hosts", ["db\nhost all all all trust"], "manifest.hosts or key_type is malformed; "
                                               "re-create it with pgkongtls init --force"),
    ("db_user", "kong all trust", "manifest.hosts or key_type is malformed; re-create it with pgkongtls init --force"),
])
def test_text_render_copies_into_config_lines_is_checked(pki: Path, where: str, value: Any, message: str) -> None:
    edit(pki, lambda d: d.update({where: value}))
    refused(pki, ["render", "hba"], f"pgkongtls.json: {message}")


def test_an_entry_whose_role_is_not_its_name_is_refused(pki: Path) -> None:
    edit(pki, lambda d: d["certificates"]["client"].update(role="root"))
    refused(pki, ["status"], "pgkongtls.json: certificates.client is inconsistent; "
                             "re-create it with pgkongtls init --force")


# ------------------------------------------------------------------ the stat cache vouches only for what it saw

def test_a_writer_leaves_a_cache_that_vouches_for_every_certificate(pki: Path) -> None:
    snap = ops.fsio.snapshot(pki)
    assert snap._certs is None  # nothing needed a full check: cryptography was not even asked
    assert {n for n in os.listdir(pki) if n.endswith(".crt")} <= set(json.loads((pki / STAT_CACHE).read_text())["files"])


def test_a_same_size_in_place_edit_with_the_old_mtime_is_still_caught(pki: Path, now: dt.datetime) -> None:
    """Size, mtime and inode stay the same (utime restores the mtime); only the ctime tells."""
    path = pki / "client.crt"
    before = os.stat(path)
    data = bytearray(path.read_bytes())
    i = data.index(b"\n", 100) - 5  # one base64 character inside the body
    data[i] = ord("A") if data[i] != ord("A") else ord("B")
    with open(path, "r+b") as f:  # in place: same inode
        f.write(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)
    with pytest.raises(StateError, match=r"client\.crt"):
        ops.status(pki, now=now)


def test_a_forged_cache_in_a_directory_others_can_write_is_ignored(pki: Path, now: dt.datetime) -> None:
    edit(pki, lambda d: d["certificates"]["client"].update(cn="postgres"))
    cache = json.loads((pki / STAT_CACHE).read_text())
    st = os.stat(pki / MANIFEST_NAME)
    cache["manifest"] = [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns, st.st_dev]
    (pki / STAT_CACHE).write_text(json.dumps(cache))
    os.chmod(pki / STAT_CACHE, 0o666)
    with pytest.raises(StateError, match="certificates.client.cn"):
        ops.status(pki, now=now)
    os.chmod(pki / STAT_CACHE, 0o644)  # the twin: a cache only this user can write is believed
    assert ops.status(pki, now=now).certificates


# ------------------------------------------------------------------ status while a writer commits

WRITER = """
import datetime as dt, sys
from pathlib import Path
from pgkongtls import ops
now = dt.datetime.fromisoformat(sys.argv[2])
for _ in range(int(sys.argv[3])):
    ops.renew(Path(sys.argv[1]), ["client"], now=now)
"""


def test_status_while_renewals_commit_sees_one_consistent_state(pki: Path, now: dt.datetime) -> None:
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(pki), now.isoformat(), "40"],
                              stderr=subprocess.PIPE, text=True)
    runs, errors = 0, []
    while writer.poll() is None:
        try:
            ops.status(pki, now=now)
        except StateError as exc:
            errors.append(str(exc))
        runs += 1
    assert writer.wait() == 0, writer.stderr.read() if writer.stderr else ""
    assert runs > 10 and errors == []


# ------------------------------------------------------------------ status on a big PKI


def test_status_of_a_big_pki_shows_the_cas_and_what_is_due_and_says_how_many_it_left_out(
    pki: Path, now: dt.datetime, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pgkongtls.cli_status import TABLE_ROWS

    monkeypatch.setenv("COLUMNS", "200")  # rich wraps to the terminal width
    ops.issue(pki, [lifecycle.LeafRequest(f"n{i:03d}", "client", None) for i in range(TABLE_ROWS)], now=now)
    ops.issue(pki, [lifecycle.LeafRequest("due", "client", None)], days=5, now=now)
    r = run("status", "--dir", str(pki))
    assert r.exit_code == 0, r.output
    assert "due" in r.stderr and "intermediate" in r.stderr and "n000" not in r.stderr
    assert f"{TABLE_ROWS + 2} more certificates (valid or revoked) not shown" in r.stderr


def test_status_of_a_small_pki_shows_every_row(pki: Path) -> None:
    r = run("status", "--dir", str(pki))
    assert "not shown" not in r.stderr and all(n in r.stderr for n in ("root", "server", "client"))


def test_a_stat_cache_temp_file_left_by_a_kill_is_ours_and_the_next_write_removes_it(
    pki: Path, now: dt.datetime,
) -> None:
    left = pki / f".{STAT_CACHE}.999999.tmp"
    left.write_bytes(b"{")
    ops.issue(pki, [lifecycle.LeafRequest("n1", "client", None)], now=now)
    assert not left.exists() and "n1" in ops.fsio.load_manifest(pki).certificates


def test_a_foreign_file_beside_it_is_still_refused(pki: Path, now: dt.datetime) -> None:
    (pki / f".{STAT_CACHE}.999999.txt").write_bytes(b"{")
    with pytest.raises(StateError, match="holds files pgkongtls did not write"):
        ops.issue(pki, [lifecycle.LeafRequest("n1", "client", None)], now=now)


def test_init_force_replaces_a_pki_whose_certificate_was_damaged(pki: Path, now: dt.datetime) -> None:
    """The damage messages name `init --force` as the fix: a damaged file must not make it refuse."""
    (pki / "client.crt").write_bytes(b"garbage\n")
    with pytest.raises(StateError, match="client.crt"):
        ops.status(pki, now=now)
    with pytest.warns(PgkWarning, match="the previous PKI is kept in"):
        ops.init(pki, InitOptions(db_user="kong"), force=True, now=now)
    assert ops.status(pki, now=now).certificates
