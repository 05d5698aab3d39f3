"""`prune` and `renew --keep-backups`: archived files go once nobody can need them, never sooner (#17).

Past the newest N backups per certificate, a backup is removed only after its certificate expired: an
unrevoked one that has not may still be in service, a revoked one is still on a CRL PostgreSQL needs.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from pgkongtls import DEFAULT_KEEP_BACKUPS, fsio, lifecycle, ops
from pgkongtls.errors import InputError
from pgkongtls.lifecycle import LeafRequest
from pgkongtls.pki import InitOptions

from .clirun import run
from .test_fsio import snapshot

NOW = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.timezone.utc)
HOUR = dt.timedelta(hours=1)


def backups(d: Path, stem: str = "n1") -> list[str]:
    return sorted(n for n in os.listdir(d) if n.startswith(f"{stem}.") and n.endswith(".bak"))


def renewed(d: Path, times: int, *, name: str = "n1", keep: int = 99) -> list[str]:
    """`name` (1-day certificates) renewed `times` times, an hour apart: the archived serials, oldest first."""
    serials = []
    for i in range(times):
        serials.append(fsio.load_manifest(d).certificates[name].serial)
        ops.renew(d, [name], days=1, now=NOW + (i + 1) * HOUR, keep_backups=keep)
    return serials


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    d = tmp_path / "pki"
    ops.init(d, InitOptions(), now=NOW)
    ops.issue(d, [LeafRequest(name=n, role="client", cn=None) for n in ("n1", "n2")], days=1, now=NOW)
    return d


def files_of(serials: list[str], stem: str = "n1") -> list[str]:
    return sorted(f"{stem}.{ext}.{s}.bak" for s in serials for ext in ("crt", "key"))


def test_prune_removes_expired_backups_past_the_newest_n(pki: Path) -> None:
    serials = renewed(pki, 5)
    assert len(backups(pki)) == 10
    pruned = ops.prune(pki, keep_backups=3, now=NOW + dt.timedelta(days=3))  # every backup has expired
    assert sorted(pruned.removed) == files_of(serials[:2])
    assert backups(pki) == files_of(serials[2:])
    assert (pki / "n1.crt").exists() and (pki / "n1.key").exists()  # the certificate in service stays
    ops.status(pki, now=NOW + dt.timedelta(days=3))


def test_prune_keeps_backups_that_have_not_expired(pki: Path, tmp_path: Path) -> None:
    serials = renewed(pki, 5)
    before = snapshot(tmp_path)
    pruned = ops.prune(pki, keep_backups=0, now=NOW + 6 * HOUR)  # still valid: may still be deployed
    assert (pruned.removed, sorted(pruned.kept_valid)) == ((), sorted(f"n1.crt.{s}.bak" for s in serials))
    assert snapshot(tmp_path) == before


def test_a_revoked_backup_stays_while_its_crl_entry_is_needed(pki: Path) -> None:
    ops.revoke(pki, ["n1"], now=NOW)
    old = fsio.load_manifest(pki).certificates["n1"].serial
    renewed(pki, 1)  # n1@old: archived and on the CRL
    ops.prune(pki, keep_backups=0, now=NOW + 2 * HOUR)
    assert f"n1@{old}" in fsio.load_manifest(pki).certificates and backups(pki) == files_of([old])
    later = NOW + dt.timedelta(days=3)
    ops.prune(pki, keep_backups=0, now=later)  # expired: no CRL needs to list it any more
    m = fsio.load_manifest(pki)
    assert f"n1@{old}" not in m.certificates and backups(pki) == []
    ops.refresh_crl(pki, now=later)
    crls = lifecycle.load_crls(m := fsio.load_manifest(pki), lifecycle.verify_files(m, fsio.reader(pki)),
                               (pki / "crl.pem").read_bytes())
    assert [r.serial_number for c in crls for r in c] == []


def test_renew_keep_backups_prunes_the_renewed_names_only(pki: Path) -> None:
    n1 = renewed(pki, 4)
    n2 = renewed(pki, 4, name="n2")
    last = fsio.load_manifest(pki).certificates["n1"].serial
    ops.renew(pki, ["n1"], days=1, now=NOW + dt.timedelta(days=3), keep_backups=2)
    # n1 has 5 backups then, the one just made included; the 2 newest stay, the 3 older had expired
    assert backups(pki) == files_of([n1[3], last])
    assert backups(pki, "n2") == files_of(n2, "n2")  # not renewed: untouched


def test_renew_keeps_the_default_number_of_backups(pki: Path) -> None:
    renewed(pki, DEFAULT_KEEP_BACKUPS + 2)
    ops.renew(pki, ["n1"], days=1, now=NOW + dt.timedelta(days=3))
    assert len(backups(pki)) == 2 * DEFAULT_KEEP_BACKUPS


def test_negative_keep_is_refused(pki: Path) -> None:
    with pytest.raises(InputError, match=r"^--keep-backups must be 0 or more, got -1$"):
        ops.prune(pki, keep_backups=-1, now=NOW)


def test_prune_cli_prints_the_removed_files(pki: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(pki.parent)
    serials = renewed(pki, 2)  # 1-day certificates from 2025: long expired by the CLI's clock
    r = run("prune", "--dir", "pki", "--keep-backups", "1")
    assert r.exit_code == 0, r.output
    assert sorted(r.stdout.splitlines()) == files_of(serials[:1])
    assert r.stderr == "removed 2 archived files from pki\n"
    r = run("prune", "--dir", "pki", "--keep-backups", "-1")
    assert r.exit_code == 2 and "Invalid value for '--keep-backups': -1 is not in the range x>=0." in r.stderr
