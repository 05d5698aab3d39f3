"""`rotate begin | reissue | finish`: trust old and new CAs, re-issue every leaf, drop the old CAs.

Library tests with the clock injected; chains and CRLs are checked with openssl verify -x509_strict
-crl_check_all, PostgreSQL's flags once ssl_crl_file is set.
"""

from __future__ import annotations

import datetime as dt
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pgkongtls import fsio, lifecycle, ops, ops_ca, pkiload
from pgkongtls.errors import InputError, StateError
from pgkongtls.lifecycle.ca import BEGUN, REISSUED
from pgkongtls.manifest import fingerprint
from pgkongtls.pki import InitOptions

from .test_fsio import snapshot

NOW = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.timezone.utc)
T1, T2, T3 = (NOW + dt.timedelta(days=d) for d in (10, 11, 12))
OPENSSL = shutil.which("openssl")


def cert_of(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificates(path.read_bytes())[0]


def fps(path: Path) -> list[str]:
    return [fingerprint(c) for c in x509.load_pem_x509_certificates(path.read_bytes())]


def crl_issuers(path: Path) -> list[str]:
    return [c.issuer.rfc4514_string() for c in pkiload.parse_crls(path.read_bytes(), path.name)]


def leaf_file(d: Path, name: str, tmp: Path) -> Path:
    """The leaf alone (openssl verify reads one certificate), copied before a phase replaces it."""
    out = tmp / f"{name}-{fingerprint(cert_of(d / f'{name}.crt'))[:8]}.pem"
    out.write_bytes(cert_of(d / f"{name}.crt").public_bytes(serialization.Encoding.PEM))
    return out


def verify(leaf: Path, *, trust: Path, crl: Path | None, at: dt.datetime, purpose: str = "sslclient") -> str:
    """openssl verify as PostgreSQL checks a client (-crl_check_all when a CRL is loaded); '' when it passes."""
    assert OPENSSL
    args = [OPENSSL, "verify", "-x509_strict", "-purpose", purpose, "-attime", str(int(at.timestamp()) + 60),
            "-CAfile", str(trust)]
    if crl is not None:
        args += ["-crl_check_all", "-CRLfile", str(crl)]
    out = subprocess.run([*args, str(leaf)], capture_output=True, text=True)
    return "" if out.returncode == 0 else out.stdout + out.stderr


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    """An intermediate PKI with a node certificate and a CRL (so every phase must keep one per CA level)."""
    d = tmp_path / "pki"
    ops.init(d, InitOptions(db_user="kong", hosts=("db.internal",)), now=NOW)
    ops.issue(d, [lifecycle.LeafRequest(name="n1", role="client", cn="n1"),
                  lifecycle.LeafRequest(name="n2", role="client", cn="n2")], now=NOW)
    ops.revoke(d, ["n2"], now=NOW)
    return d


# ---------------------------------------------------------------- begin

def test_begin_mints_new_cas_and_keeps_the_old_ones_trusted(pki: Path, tmp_path: Path) -> None:
    old_root, old_int = cert_of(pki / "root.crt"), cert_of(pki / "intermediate.crt")
    old_files = {n: (pki / n).read_bytes() for n in ("root.crt", "root.key", "intermediate.crt", "intermediate.key")}
    ops_ca.begin(pki, now=T1)
    m = fsio.load_manifest(pki)
    new_root, new_int = cert_of(pki / "root.crt"), cert_of(pki / "intermediate.crt")
    assert m.phase == BEGUN
    assert new_root.public_key() != old_root.public_key() and new_root.subject != old_root.subject
    assert new_int.issuer == new_root.subject and new_int.subject != old_int.subject
    assert fps(pki / "chain.crt") == [fingerprint(c) for c in (new_int, old_int, new_root, old_root)]
    for level, old in (("root", old_root), ("intermediate", old_int)):
        serial = format(old.serial_number, "x")
        assert m.certificates[f"{level}@{serial}"].sha256 == fingerprint(old)
        for ext in ("crt", "key"):
            bak = pki / f"{level}.{ext}.{serial}.bak"
            assert bak.read_bytes() == old_files[f"{level}.{ext}"]
        assert stat.S_IMODE((pki / f"{level}.key.{serial}.bak").stat().st_mode) == 0o600
    assert m.certificates["server"].issuer == f"intermediate@{format(old_int.serial_number, 'x')}"


def test_begin_writes_a_crl_for_every_level_of_both_and_old_leaves_still_pass(pki: Path, tmp_path: Path) -> None:
    ops_ca.begin(pki, now=T1)
    subjects = {cert_of(f).subject.rfc4514_string() for f in pki.glob("*.crt*") if "root" in f.name or "intermediate" in f.name}
    assert sorted(crl_issuers(pki / "crl.pem")) == sorted(subjects) and len(subjects) == 4
    for name, want in (("client", ""), ("n1", "")):
        assert verify(leaf_file(pki, name, tmp_path), trust=pki / "chain.crt", crl=pki / "crl.pem", at=T1) == want
    assert "certificate revoked" in verify(leaf_file(pki, "n2", tmp_path), trust=pki / "chain.crt",
                                           crl=pki / "crl.pem", at=T1)


def test_begin_with_another_key_type_and_reissue_follow_it(pki: Path) -> None:
    ops_ca.begin(pki, key_type="ecdsa-p384", now=T1)
    assert isinstance(k := cert_of(pki / "root.crt").public_key(), ec.EllipticCurvePublicKey) and k.curve.name == "secp384r1"
    ops_ca.reissue(pki, now=T2)
    key = cert_of(pki / "server.crt").public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp384r1"
    assert fsio.load_manifest(pki).key_type == "ecdsa-p384"


def test_begin_on_an_encrypted_pki_needs_the_passphrase_and_encrypts_the_new_keys(tmp_path: Path) -> None:
    d = tmp_path / "locked"
    ops.init(d, InitOptions(), now=NOW, ca_passphrase=b"s3cret")
    before = snapshot(d)
    with pytest.raises(InputError, match=r"^root.key is encrypted; pass --ca-passphrase-file$"):
        ops_ca.begin(d, now=T1)
    assert snapshot(d) == before
    ops_ca.begin(d, ca_passphrase=b"s3cret", now=T1)
    for name in ("root.key", "intermediate.key"):
        assert pkiload.parse_key((d / name).read_bytes(), name).encrypted
        assert pkiload.decrypt_key((d / name).read_bytes(), b"s3cret") is not None
    ops_ca.reissue(d, ca_passphrase=b"s3cret", now=T2)
    ops_ca.finish(d, now=T3)
    assert fsio.load_manifest(d).phase is None


# ---------------------------------------------------------------- reissue

def test_reissue_reissues_every_leaf_in_service_with_the_same_names_subjects_and_files(pki: Path, tmp_path: Path) -> None:
    ops_ca.begin(pki, now=T1)
    before = fsio.load_manifest(pki)
    olds = {n: cert_of(pki / f"{n}.crt") for n in ("server", "client", "n1")}
    ops_ca.reissue(pki, now=T2)
    m = fsio.load_manifest(pki)
    assert m.phase == REISSUED
    for name, old in olds.items():
        new = cert_of(pki / f"{name}.crt")
        e, was = m.certificates[name], before.certificates[name]
        assert (e.cn, e.sans, e.file, e.key_file, e.issuer) == (was.cn, was.sans, was.file, was.key_file, "intermediate")
        assert new.subject == old.subject and new.public_key() != old.public_key()
        assert new.issuer == cert_of(pki / "intermediate.crt").subject
        assert (pki / f"{name}.crt.{was.serial}.bak").exists()
    (tmp_path / "new-only.crt").write_bytes((pki / "intermediate.crt").read_bytes() + (pki / "root.crt").read_bytes())
    assert verify(leaf_file(pki, "server", tmp_path), trust=tmp_path / "new-only.crt", crl=None, at=T2,
                  purpose="sslserver") == ""
    assert verify(leaf_file(pki, "client", tmp_path), trust=pki / "chain.crt", crl=pki / "crl.pem", at=T2) == ""
    assert m.certificates["n2"] == before.certificates["n2"]  # the revoked one stays, for the old CA's CRL


def test_twin_a_crl_without_the_new_cas_refuses_the_reissued_clients(pki: Path, tmp_path: Path) -> None:
    """Why begin re-signs crl.pem for every level of both: with CRL_CHECK_ALL a level without one refuses."""
    (tmp_path / "old-crl.pem").write_bytes((pki / "crl.pem").read_bytes())
    ops_ca.begin(pki, now=T1)
    ops_ca.reissue(pki, now=T2)
    client = leaf_file(pki, "client", tmp_path)
    assert verify(client, trust=pki / "chain.crt", crl=pki / "crl.pem", at=T2) == ""
    assert "unable to get certificate CRL" in verify(client, trust=pki / "chain.crt", crl=tmp_path / "old-crl.pem", at=T2)


# ---------------------------------------------------------------- finish

def test_finish_drops_the_old_cas_their_crls_and_their_revoked_leaves(pki: Path, tmp_path: Path) -> None:
    old_client = leaf_file(pki, "client", tmp_path)
    n2_serial = fsio.load_manifest(pki).certificates["n2"].serial
    ops_ca.begin(pki, now=T1)
    ops_ca.reissue(pki, now=T2)
    ops_ca.finish(pki, now=T3)
    m = fsio.load_manifest(pki)
    assert m.phase is None and set(m.certificates) == {"root", "intermediate", "server", "client", "n1"}
    assert fps(pki / "chain.crt") == [fingerprint(cert_of(pki / n)) for n in ("intermediate.crt", "root.crt")]
    assert sorted(crl_issuers(pki / "crl.pem")) == sorted(
        cert_of(pki / n).subject.rfc4514_string() for n in ("intermediate.crt", "root.crt"))
    assert not [p.name for p in pki.iterdir() if p.name.startswith("n2.")]  # a dead CA's revoked leaf: deleted
    assert n2_serial not in (pki / "pgkongtls.json").read_text()
    ops.refresh_crl(pki, now=T3)  # the next write finds nothing it did not write
    assert verify(leaf_file(pki, "client", tmp_path), trust=pki / "chain.crt", crl=pki / "crl.pem", at=T3) == ""
    # the twin: a client still holding its old certificate is refused now
    assert "unable to get local issuer certificate" in verify(old_client, trust=pki / "chain.crt", crl=pki / "crl.pem", at=T3)
    assert ops.status(pki, now=T3).notices == ()


def test_finish_refuses_while_the_revoked_client_is_still_the_old_cas(pki: Path) -> None:
    """A revoked leaf is not re-issued; the manifest's own client would vanish with its CA: renew it first."""
    ops.revoke(pki, ["client"], now=NOW)
    ops_ca.begin(pki, now=T1)
    ops_ca.reissue(pki, now=T2)
    before = snapshot(pki)
    with pytest.raises(StateError) as e:
        ops_ca.finish(pki, now=T3)
    assert str(e.value) == "client is revoked and still from the old CA; renew it first: pgkongtls renew --dir PKI client"
    assert snapshot(pki) == before
    ops.renew(pki, ["client"], now=T3)
    ops_ca.finish(pki, now=T3)
    assert fsio.load_manifest(pki).certificates["client"].issuer == "intermediate"


def test_day2_commands_during_a_rotation(pki: Path, tmp_path: Path) -> None:
    """issue takes the new CA; revoking an old leaf lands on the old CA's CRL, which openssl then applies."""
    ops_ca.begin(pki, now=T1)
    ops.issue(pki, [lifecycle.LeafRequest(name="n3", role="client", cn="n3")], now=T1)
    assert cert_of(pki / "n3.crt").issuer == cert_of(pki / "intermediate.crt").subject
    ops.revoke(pki, ["n1"], now=T1)
    assert "certificate revoked" in verify(leaf_file(pki, "n1", tmp_path), trust=pki / "chain.crt",
                                           crl=pki / "crl.pem", at=T1)
    assert verify(leaf_file(pki, "n3", tmp_path), trust=pki / "chain.crt", crl=pki / "crl.pem", at=T1) == ""
    ops_ca.reissue(pki, now=T2)
    assert fsio.load_manifest(pki).certificates["n3"].serial == format(cert_of(pki / "n3.crt").serial_number, "x")


def test_a_root_only_pki_rotates_its_root(tmp_path: Path) -> None:
    d = tmp_path / "pki"
    ops.init(d, InitOptions(chain="root"), now=NOW)
    old = cert_of(d / "root.crt")
    ops_ca.begin(d, now=T1)
    assert fps(d / "chain.crt") == [fingerprint(cert_of(d / "root.crt")), fingerprint(old)]
    ops_ca.reissue(d, now=T2)
    ops_ca.finish(d, now=T3)
    assert cert_of(d / "server.crt").issuer == cert_of(d / "root.crt").subject != old.subject


# ---------------------------------------------------------------- each phase in its place

PHASES = {"steady": [], "begun": ["begin"], "reissued": ["begin", "reissue"]}
WRONG = [
    ("steady", "reissue", "rotate reissue refused: the PKI is in phase steady (no rotation); "
                          "next is pgkongtls rotate --dir PKI begin"),
    ("steady", "finish", "rotate finish refused: the PKI is in phase steady (no rotation); "
                         "next is pgkongtls rotate --dir PKI begin"),
    ("begun", "begin", "rotate begin refused: the PKI is in phase begun; next is pgkongtls rotate --dir PKI reissue, "
                       "once every host has the new chain.crt and crl.pem"),
    ("begun", "finish", "rotate finish refused: the PKI is in phase begun; next is pgkongtls rotate --dir PKI "
                        "reissue, once every host has the new chain.crt and crl.pem"),
    ("begun", "renew-root", "renew root refused: the PKI is in phase begun; next is pgkongtls rotate --dir PKI "
                            "reissue, once every host has the new chain.crt and crl.pem"),
    ("reissued", "begin", "rotate begin refused: the PKI is in phase reissued; next is pgkongtls rotate --dir PKI "
                          "finish, once every host has its re-issued certificate"),
    ("reissued", "reissue", "rotate reissue refused: the PKI is in phase reissued; next is pgkongtls rotate --dir "
                            "PKI finish, once every host has its re-issued certificate"),
]


def run_phase(d: Path, what: str, now: dt.datetime) -> None:
    {"begin": lambda: ops_ca.begin(d, now=now), "reissue": lambda: ops_ca.reissue(d, now=now),
     "finish": lambda: ops_ca.finish(d, now=now), "renew-root": lambda: ops_ca.renew_ca(d, "root", now=now)}[what]()


@pytest.mark.parametrize(("phase", "command", "message"), WRONG, ids=[f"{p}-{c}" for p, c, _ in WRONG])
def test_a_phase_out_of_order_is_refused_in_one_line_and_changes_nothing(
    pki: Path, phase: str, command: str, message: str,
) -> None:
    for step in PHASES[phase]:
        run_phase(pki, step, T1)
    before = snapshot(pki)
    with pytest.raises(StateError) as e:
        run_phase(pki, command, T2)
    assert str(e.value) == message
    assert snapshot(pki) == before


def test_status_names_each_phase_and_what_is_next(pki: Path) -> None:
    got = []
    for step in ("begin", "reissue", "finish"):
        run_phase(pki, step, T1)
        s = ops.status(pki, now=T1)
        got.append((s.phase, [n.remedy for n in s.notices]))
    assert got == [(BEGUN, [lifecycle.Remedy.REISSUE]), (REISSUED, [lifecycle.Remedy.FINISH]), (None, [])]
