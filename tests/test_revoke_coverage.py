"""keyCompromise covers the key, not one certificate; `renew --revoke-old` revokes what a renewal replaced.

The CRL is read back with openssl -crl_check_all (PostgreSQL's flags with ssl_crl_file) for the archived
certificate itself (NAME.crt.<serial>.bak), the file a thief holding the old certificate would present.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from pgkongtls import fsio, lifecycle, ops
from pgkongtls.errors import StateError
from pgkongtls.manifest import Manifest
from pgkongtls.pki import InitOptions

from .clirun import ok
from .test_fsio import snapshot
from .test_lifecycle import clients

NOW = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.timezone.utc)
LATER = NOW + dt.timedelta(days=1)
OPENSSL = shutil.which("openssl")


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    d = tmp_path / "pki"
    ops.init(d, InitOptions(), now=NOW)
    ops.issue(d, clients("n1", "n2"), now=NOW)
    return d


def manifest(d: Path) -> Manifest:
    return fsio.load_manifest(d)


def crl_serials(d: Path) -> dict[int, x509.ReasonFlags | None]:
    m = manifest(d)
    crls = lifecycle.load_crls(m, lifecycle.verify_files(m, fsio.reader(d)), (d / "crl.pem").read_bytes())
    out: dict[int, x509.ReasonFlags | None] = {}
    for crl in crls:
        for r in crl:
            try:
                out[r.serial_number] = r.extensions.get_extension_for_class(x509.CRLReason).value.reason
            except x509.ExtensionNotFound:
                out[r.serial_number] = None
    return out


def openssl_refuses(d: Path, file: str, at: dt.datetime) -> bool:
    """openssl verify -crl_check_all of one certificate file: True when it says 'certificate revoked'."""
    assert OPENSSL
    res = subprocess.run([OPENSSL, "verify", "-purpose", "sslclient", "-attime", str(int(at.timestamp())),
                          "-CAfile", str(d / "chain.crt"), "-crl_check_all", "-CRLfile", str(d / "crl.pem"),
                          str(d / file)], capture_output=True, text=True)
    if res.returncode == 0:
        return False
    assert "certificate revoked" in res.stdout + res.stderr, res.stdout + res.stderr
    return True


def serial(d: Path, name: str) -> str:
    return manifest(d).certificates[name].serial


def reuse_twice(d: Path) -> list[str]:
    """n1 renewed twice with its key: three certificates, one key. Their serials, oldest first."""
    serials = [serial(d, "n1")]
    ops.renew(d, ["n1"], reuse_key=True, now=NOW + dt.timedelta(hours=1))
    serials.append(serial(d, "n1"))
    ops.renew(d, ["n1"], reuse_key=True, now=NOW + dt.timedelta(hours=2))
    return [*serials, serial(d, "n1")]


@pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")
def test_key_compromise_revokes_every_certificate_of_the_key(pki: Path) -> None:
    old1, old2, current = reuse_twice(pki)
    change = ops.revoke(pki, ["n1"], reason="keyCompromise", now=LATER)
    assert [e.name for e in change.done] == ["n1", f"n1@{old1}", f"n1@{old2}"]  # listed, the named one first
    assert crl_serials(pki) == {int(s, 16): x509.ReasonFlags.key_compromise for s in (old1, old2, current)}
    at = LATER + dt.timedelta(hours=1)
    for file in ("n1.crt", f"n1.crt.{old1}.bak", f"n1.crt.{old2}.bak"):
        assert openssl_refuses(pki, file, at), file
    assert not openssl_refuses(pki, "n2.crt", at)  # another key: untouched
    archived = manifest(pki).certificates[f"n1@{old1}"]
    assert (archived.file, archived.key_file, archived.revocation_reason) == (
        f"n1.crt.{old1}.bak", f"n1.key.{old1}.bak", "keyCompromise")
    ops.status(pki, now=at)  # the archived entries agree with their files
    ops.refresh_crl(pki, now=at)  # and stay on the CRL when it is re-signed
    assert set(crl_serials(pki)) == {int(s, 16) for s in (old1, old2, current)}


@pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")
def test_another_reason_revokes_the_named_certificate_only(pki: Path) -> None:
    old1, old2, current = reuse_twice(pki)
    change = ops.revoke(pki, ["n1"], reason="cessationOfOperation", now=LATER)
    assert [e.name for e in change.done] == ["n1"]
    assert set(crl_serials(pki)) == {int(current, 16)}
    assert not openssl_refuses(pki, f"n1.crt.{old1}.bak", LATER)


def test_key_compromise_leaves_certificates_of_other_keys_alone(pki: Path) -> None:
    old = serial(pki, "n1")
    ops.renew(pki, ["n1"], now=NOW + dt.timedelta(hours=1))  # a new key: the backup holds another one
    change = ops.revoke(pki, ["n1"], reason="keyCompromise", now=LATER)
    assert [e.name for e in change.done] == ["n1"]
    assert f"n1@{old}" not in manifest(pki).certificates


def test_an_expired_backup_of_the_key_is_not_listed(tmp_path: Path) -> None:
    d = tmp_path / "pki"
    ops.init(d, InitOptions(), now=NOW)
    ops.issue(d, clients("n1"), days=2, now=NOW)
    old = serial(d, "n1")
    ops.renew(d, ["n1"], reuse_key=True, days=30, now=NOW + dt.timedelta(days=1))
    change = ops.revoke(d, ["n1"], reason="keyCompromise", now=NOW + dt.timedelta(days=3))
    assert [e.name for e in change.done] == ["n1"]  # the old one expired on day 2: nothing accepts it
    assert f"n1@{old}" not in manifest(d).certificates


def test_key_compromise_refusals_change_nothing(pki: Path, tmp_path: Path) -> None:
    reuse_twice(pki)
    ops.revoke(pki, ["n1"], reason="keyCompromise", now=LATER)
    before = snapshot(tmp_path)
    with pytest.raises(StateError) as e:
        ops.revoke(pki, ["n1"], reason="keyCompromise", now=LATER)
    assert str(e.value) == "n1 is already revoked (since 2025-03-02); pgkongtls crl re-signs the CRL"
    assert snapshot(tmp_path) == before


def test_revoke_cli_lists_the_certificates_revoked_with_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    ok("init", "--out", "pki")
    ok("issue", "client", "--dir", "pki", "--name", "n1", "--name", "n2")
    old = [serial(tmp_path / "pki", "n1")]
    ok("renew", "--dir", "pki", "n1", "--reuse-key")
    old.append(serial(tmp_path / "pki", "n1"))
    ok("renew", "--dir", "pki", "n1", "--reuse-key")
    r = ok("revoke", "--dir", "pki", "n1", "--reason", "keyCompromise")
    listed = r.stderr.split("revoked as well, same key: ")[1].splitlines()[0]
    assert sorted(listed.split(", ")) == sorted(f"n1@{s}" for s in old)  # both, whichever second they share
    r = ok("revoke", "--dir", "pki", "n2", "--reason", "keyCompromise")
    assert "revoked as well" not in r.stderr


# ---------------------------------------------------------------- renew --revoke-old

@pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")
def test_renew_revoke_old_puts_the_replaced_certificate_on_the_crl(pki: Path) -> None:
    old = serial(pki, "n1")
    change = ops.renew(pki, ["n1"], revoke_old=True, now=LATER)
    assert change is not None and [e.name for e in change.done] == ["n1"]
    new = serial(pki, "n1")
    assert crl_serials(pki) == {int(old, 16): x509.ReasonFlags.superseded}
    archived = manifest(pki).certificates[f"n1@{old}"]
    assert (archived.file, archived.revocation_reason) == (f"n1.crt.{old}.bak", "superseded")
    at = LATER + dt.timedelta(hours=1)
    assert openssl_refuses(pki, f"n1.crt.{old}.bak", at)
    assert not openssl_refuses(pki, "n1.crt", at) and new != old


def test_renew_without_revoke_old_leaves_the_replaced_certificate_valid(pki: Path) -> None:
    old = serial(pki, "n1")
    ops.renew(pki, ["n1"], now=LATER)
    m = manifest(pki)
    assert m.crl_file is None and f"n1@{old}" not in m.certificates


def test_renew_revoke_old_of_a_revoked_certificate_lists_it_once(pki: Path) -> None:
    old = serial(pki, "n1")
    ops.revoke(pki, ["n1"], reason="keyCompromise", now=NOW)
    ops.renew(pki, ["n1"], revoke_old=True, now=LATER)
    assert crl_serials(pki) == {int(old, 16): x509.ReasonFlags.key_compromise}  # its reason kept


def test_renew_revoke_old_needs_every_ca_key(pki: Path, tmp_path: Path) -> None:
    (pki / "root.key").rename(tmp_path / "offline-root.key")  # renew alone needs the intermediate only
    before = snapshot(pki)
    with pytest.raises(StateError) as e:
        ops.renew(pki, ["n1"], revoke_old=True, now=LATER)
    assert str(e.value) == "root.key is missing; restore it or re-create the PKI with pgkongtls init --force"
    assert snapshot(pki) == before
    ops.renew(pki, ["n1"], now=LATER)  # its twin: without --revoke-old the root key stays offline


def test_renew_cli_revoke_old_says_the_crl_changed_and_to_redeploy_postgres(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    ok("init", "--out", "pki")
    plain = ok("renew", "--dir", "pki", "client")
    assert "crl.pem" not in plain.stderr and "bundle postgres" not in plain.stderr
    r = ok("renew", "--dir", "pki", "client", "--revoke-old")
    lines = r.stderr.splitlines()
    assert any(n.startswith("wrote pki/crl.pem: CRLs of the intermediate and root CA") for n in lines)
    assert ("next: pgkongtls bundle postgres --dir pki --out pki-db-bundle --force; then, on the database host, "
            "the pgkongtls install command it prints (it brings crl.pem)") in lines
