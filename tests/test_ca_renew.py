"""`renew intermediate|root`: the same CA key, subject and SKI; every old leaf keeps verifying with the new
certificate alone (openssl -x509_strict, a mutual-TLS handshake under Python 3.13's strict context); the old
certificate stays in chain.crt until `rotate finish`. Library tests, the clock injected.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from pgkongtls import certs, fsio, lifecycle, ops, ops_ca
from pgkongtls.errors import InputError, StateError
from pgkongtls.lifecycle.ca import RENEWED, check_leaves
from pgkongtls.manifest import MANIFEST_NAME, fingerprint, loads
from pgkongtls.pki import InitOptions

from .test_fsio import snapshot

NOW = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.timezone.utc)
LATER = NOW + dt.timedelta(days=1700)  # the intermediate (1825 days) is due, the leaves were renewed in between
TESTS = Path(__file__).resolve().parent
OPENSSL = shutil.which("openssl")


def cert_of(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificates(path.read_bytes())[0]


def pem_certs(path: Path) -> list[str]:
    return [fingerprint(c) for c in x509.load_pem_x509_certificates(path.read_bytes())]


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    """An intermediate PKI minted at NOW, with its leaves renewed shortly before LATER (as they would be)."""
    d = tmp_path / "pki"
    ops.init(d, InitOptions(db_user="kong", hosts=("db.internal",)), now=NOW)
    ops.issue(d, [lifecycle.LeafRequest(name="n1", role="client", cn="n1")], now=NOW)
    ops.renew(d, ["server", "client", "n1"], days=100, now=LATER - dt.timedelta(days=1))
    return d


def split(d: Path, name: str) -> Path:
    """openssl verify reads the first certificate of a file only: the leaf alone."""
    out = d / f"{name}.leaf.pem"
    out.write_bytes(cert_of(d / f"{name}.crt").public_bytes(certs.serialization.Encoding.PEM))
    return out


def strict(d: Path, name: str, *, root: Path, untrusted: Path | None, purpose: str) -> subprocess.CompletedProcess[str]:
    assert OPENSSL
    args = [OPENSSL, "verify", "-x509_strict", "-purpose", purpose, "-attime", str(int(LATER.timestamp()) + 60),
            "-CAfile", str(root)]
    if untrusted is not None:
        args += ["-untrusted", str(untrusted)]
    return subprocess.run([*args, str(split(d, name))], capture_output=True, text=True)


# ---------------------------------------------------------------- the new certificate

@pytest.mark.parametrize("level", ["intermediate", "root"])
def test_renewal_keeps_key_subject_and_every_extension_with_a_new_serial_and_validity(pki: Path, level: str) -> None:
    old = cert_of(pki / f"{level}.crt")
    r = ops_ca.renew_ca(pki, level, now=LATER)
    new = cert_of(pki / f"{level}.crt")
    assert new.public_key() == old.public_key() and new.subject == old.subject and new.issuer == old.issuer
    assert list(new.extensions) == list(old.extensions)  # SKI, AKI, basicConstraints, keyUsage: same, same criticality
    assert new.serial_number != old.serial_number
    assert new.not_valid_before_utc == LATER - certs.BACKDATE
    assert new.not_valid_after_utc - new.not_valid_before_utc == old.not_valid_after_utc - old.not_valid_before_utc
    m = fsio.load_manifest(pki)
    assert m.phase == RENEWED and r.old.serial == format(old.serial_number, "x")
    assert m.certificates[level].sha256 == fingerprint(new)
    assert (pki / f"{level}.crt.{r.old.serial}.bak").read_bytes() == old.public_bytes(certs.serialization.Encoding.PEM)


def test_a_renewed_intermediate_never_outlives_its_root(pki: Path) -> None:
    late = NOW + dt.timedelta(days=3000)  # the root has 650 days left, the intermediate's lifetime is 1825
    ops_ca.renew_ca(pki, "intermediate", now=late)  # expired already: renewing it is the way back
    assert cert_of(pki / "intermediate.crt").not_valid_after_utc <= cert_of(pki / "root.crt").not_valid_after_utc


def test_days_beyond_the_root_is_refused_and_names_the_limit(pki: Path) -> None:
    before = snapshot(pki)
    with pytest.raises(InputError) as e:
        ops_ca.renew_ca(pki, "intermediate", days=3000, now=LATER)
    assert str(e.value) == ("--days 3000 outlives the root CA (it expires 2035-02-27); use --days 1950 or less, "
                            "or renew the root first")
    assert snapshot(pki) == before


# ---------------------------------------------------------------- old leaves, new CA alone

@pytest.mark.parametrize(("name", "purpose"), [("server", "sslserver"), ("client", "sslclient"), ("n1", "sslclient")])
def test_old_leaves_verify_with_the_renewed_intermediate_alone_under_openssl_x509_strict(
    pki: Path, tmp_path: Path, name: str, purpose: str,
) -> None:
    ops_ca.renew_ca(pki, "intermediate", now=LATER)
    out = strict(pki, name, root=pki / "root.crt", untrusted=pki / "intermediate.crt", purpose=purpose)
    assert out.returncode == 0, out.stdout + out.stderr


def test_twin_an_intermediate_with_the_same_name_but_another_key_does_not_verify_them(pki: Path, tmp_path: Path) -> None:
    """What the test above rules out: a CA certificate that merely has the same subject."""
    root = certs.Issued(cert=cert_of(pki / "root.crt"),
                        key=lifecycle.load_key((pki / "root.key").read_bytes(), "root.key", None))
    cn = cert_of(pki / "intermediate.crt").subject.rfc4514_string().removeprefix("CN=")
    other = certs.make_intermediate(cn=cn, key=certs.generate_key("ecdsa-p256"), issuer=root, now=LATER)
    (tmp_path / "other.crt").write_bytes(certs.cert_pem(other.cert))
    out = strict(pki, "server", root=pki / "root.crt", untrusted=tmp_path / "other.crt", purpose="sslserver")
    assert out.returncode != 0 and "unable to get local issuer certificate" in out.stdout + out.stderr


@pytest.mark.parametrize("name", ["intermediate", "server", "client"])
def test_the_intermediate_and_old_leaves_verify_with_the_renewed_root_alone(pki: Path, name: str) -> None:
    ops_ca.renew_ca(pki, "root", now=LATER)
    purpose = {"intermediate": "any", "server": "sslserver", "client": "sslclient"}[name]
    untrusted = None if name == "intermediate" else pki / "intermediate.crt"
    out = strict(pki, name, root=pki / "root.crt", untrusted=untrusted, purpose=purpose)
    assert out.returncode == 0, out.stdout + out.stderr


def test_old_leaves_handshake_with_the_new_ca_alone_under_python_313_strict(tmp_path: Path, py313: str) -> None:
    """The server still sends the old intermediate it bundles; both sides trust only the new certificates.
    At the real clock (the handshake cannot take an injected one), so on a PKI minted now."""
    d, now = tmp_path / "fresh", certs.utcnow()
    ops.init(d, InitOptions(db_user="kong", hosts=("db.internal",)), now=now)
    ops_ca.renew_ca(d, "intermediate", now=now)
    ops_ca.renew_ca(d, "root", now=now)
    (d / "new-only.crt").write_bytes((d / "intermediate.crt").read_bytes() + (d / "root.crt").read_bytes())
    assert pem_certs(d / "server.crt")[1] != pem_certs(d / "new-only.crt")[0]  # it bundles the old intermediate
    args = [str(d / f) for f in ("server.crt", "server.key", "new-only.crt", "client.crt", "client.key", "new-only.crt")]
    for python in (sys.executable, py313):
        out = subprocess.run([python, str(TESTS / "tls_pair.py"), *args, "db.internal"], capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0 and out.stdout.startswith("OK TLSv1."), (python, out.stdout, out.stderr)


def test_a_leaf_that_does_not_verify_with_the_new_ca_is_named(pki: Path, tmp_path: Path) -> None:
    m = fsio.load_manifest(pki)
    found = lifecycle.verify_files(m, fsio.reader(pki))
    other = tmp_path / "other"
    ops.init(other, InitOptions(), now=NOW)
    with pytest.raises(StateError, match=r"^client does not verify with the renewed intermediate CA \(self-check "
                                         r"failed, this is a pgkongtls bug: .+\); renew client first$"):
        check_leaves(m, found, [cert_of(other / "root.crt")], [cert_of(other / "intermediate.crt")],
                     level="intermediate", now=LATER)


# ---------------------------------------------------------------- trust files, phase, finish

def test_chain_keeps_the_old_certificate_beside_the_new_until_finish(pki: Path) -> None:
    old_int, root = fingerprint(cert_of(pki / "intermediate.crt")), fingerprint(cert_of(pki / "root.crt"))
    r = ops_ca.renew_ca(pki, "intermediate", now=LATER)
    new_int = fingerprint(cert_of(pki / "intermediate.crt"))
    assert pem_certs(pki / "chain.crt") == [new_int, old_int, root]
    assert r.checked == ("client", "n1", "server")
    ops_ca.finish(pki)
    assert pem_certs(pki / "chain.crt") == [new_int, root]
    m = fsio.load_manifest(pki)
    assert m.phase is None and set(m.certificates) == {"root", "intermediate", "server", "client", "n1"}
    assert (pki / f"intermediate.crt.{r.old.serial}.bak").exists()  # the archive stays


def test_status_shows_the_phase_and_the_old_certificate_as_superseded(pki: Path) -> None:
    r = ops_ca.renew_ca(pki, "intermediate", now=LATER)
    s = ops.status(pki, now=LATER)
    assert s.phase == RENEWED
    rows = {c.name: c.state for c in s.certificates}
    assert rows[f"intermediate@{r.old.serial}"] == "superseded" and rows["intermediate"] == "valid"
    assert [(n.name, n.remedy) for n in s.notices] == [(f"intermediate@{r.old.serial}", lifecycle.Remedy.FINISH)]
    ops_ca.finish(pki)
    assert ops.status(pki, now=LATER).notices == ()


def test_twin_without_a_renewal_there_is_nothing_to_finish(pki: Path) -> None:
    before = snapshot(pki)
    with pytest.raises(StateError) as e:
        ops_ca.finish(pki)
    assert str(e.value) == ("rotate finish refused: the PKI is in phase steady (no rotation); "
                            "next is pgkongtls rotate --dir PKI begin")
    assert snapshot(pki) == before


def test_day2_commands_keep_working_after_a_renewal(pki: Path) -> None:
    """issue, revoke (a CRL per level that openssl accepts for the old leaves) and a second renewal."""
    ops_ca.renew_ca(pki, "intermediate", now=LATER)
    ops.issue(pki, [lifecycle.LeafRequest(name="n2", role="client", cn="n2")], now=LATER)
    ops.revoke(pki, ["n1"], now=LATER)
    ops_ca.renew_ca(pki, "root", now=LATER)
    assert OPENSSL
    base = [OPENSSL, "verify", "-x509_strict", "-purpose", "sslclient", "-attime", str(int(LATER.timestamp()) + 60),
            "-CAfile", str(pki / "chain.crt"), "-crl_check_all", "-CRLfile", str(pki / "crl.pem")]
    good = subprocess.run([*base, str(split(pki, "client"))], capture_output=True, text=True)
    assert good.returncode == 0, good.stdout + good.stderr
    bad = subprocess.run([*base, str(split(pki, "n1"))], capture_output=True, text=True)
    assert bad.returncode != 0 and "certificate revoked" in bad.stdout + bad.stderr
    assert ops.status(pki, now=LATER).expired == []


def test_a_chain_root_pki_has_no_intermediate_to_renew(tmp_path: Path) -> None:
    d = tmp_path / "pki"
    ops.init(d, InitOptions(chain="root"), now=NOW)
    before = snapshot(d)
    with pytest.raises(InputError) as e:
        ops_ca.renew_ca(d, "intermediate", now=LATER)
    assert str(e.value) == "this PKI has no intermediate CA (it was made with --chain root); renew root"
    assert snapshot(d) == before
    ops_ca.renew_ca(d, "root", now=LATER)
    assert loads((d / MANIFEST_NAME).read_text()).phase == RENEWED


# ---------------------------------------------------------------- encrypted CA keys: the root key signs both

@pytest.fixture
def locked(tmp_path: Path) -> Path:
    d = tmp_path / "locked"
    ops.init(d, InitOptions(), now=NOW, ca_passphrase=b"s3cret")
    return d


@pytest.mark.parametrize(("passphrase", "message"), [
    (None, "root.key is encrypted; pass --ca-passphrase-file"),
    (b"wrong", "wrong CA passphrase for root.key; check --ca-passphrase-file"),
])
def test_renewing_the_intermediate_needs_the_root_key(locked: Path, passphrase: bytes | None, message: str) -> None:
    before = snapshot(locked)
    with pytest.raises(InputError) as e:
        ops_ca.renew_ca(locked, "intermediate", ca_passphrase=passphrase, now=NOW + dt.timedelta(days=10))
    assert str(e.value) == message
    assert snapshot(locked) == before


def test_renewing_with_the_passphrase_leaves_the_intermediate_key_untouched(locked: Path) -> None:
    key = (locked / "intermediate.key").read_bytes()
    ops_ca.renew_ca(locked, "intermediate", ca_passphrase=b"s3cret", now=NOW + dt.timedelta(days=10))
    assert (locked / "intermediate.key").read_bytes() == key
    assert fsio.load_manifest(locked).phase == RENEWED


# ---------------------------------------------------------------- status: a CA that ends before what it issued

def test_status_warns_when_a_ca_expires_before_a_leaf_it_issued(pki: Path) -> None:
    m = fsio.load_manifest(pki)
    inter = m.certificates["intermediate"]
    late = dataclasses.replace(m.certificates["n1"], not_after="2099-01-01T00:00:00Z")  # as if minted elsewhere
    s = lifecycle.compute_status(m.with_cert(late), now=LATER - dt.timedelta(days=1), warn_days=1)
    assert [(n.name, n.message, n.remedy) for n in s.notices] == [
        ("intermediate", f"the intermediate CA expires on {inter.not_after[:10]}, before n1 it issued",
         lifecycle.Remedy.RENEW_CA)]


def test_twin_no_warning_while_every_leaf_ends_before_its_ca(pki: Path) -> None:
    s = lifecycle.compute_status(fsio.load_manifest(pki), now=LATER - dt.timedelta(days=1), warn_days=1)
    assert s.notices == ()
