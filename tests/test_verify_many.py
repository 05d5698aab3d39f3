"""Library tests for verify's run-wide shortcuts (#18): one OpenSSL store per run, each leaf's chain built
once, strict first, a bundled CA's conversion reused. A damaged leaf among many must still be found, and
only that one: the shared store and the remembered verdicts must not let one leaf's result leak to another.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pgkongtls import inputs, lifecycle, ops
from pgkongtls import verify as v
from pgkongtls.certs import utcnow
from pgkongtls.pki import InitOptions, cert_pem, key_pem

NAMES = [f"node-{i:02d}" for i in range(24)]
DAMAGED = "node-13"


@pytest.fixture(scope="module")
def now() -> dt.datetime:
    return utcnow()


@pytest.fixture(scope="module")
def many_template(tmp_path_factory: pytest.TempPathFactory, now: dt.datetime) -> Path:
    d = tmp_path_factory.mktemp("many") / "pki"
    ops.init(d, InitOptions(), now=now)
    ops.issue(d, [lifecycle.LeafRequest(n, "client", "{name}") for n in NAMES], now=now)
    return d


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory, now: dt.datetime) -> Path:
    d = tmp_path_factory.mktemp("other") / "pki"
    ops.init(d, InitOptions(), now=now)
    return d


@pytest.fixture
def many(many_template: Path, tmp_path: Path) -> Path:
    d = tmp_path / "pki"
    shutil.copytree(many_template, d)
    return d


def chain_findings(d: Path, now: dt.datetime) -> set[tuple[str, str]]:
    return {(f.id, Path(f.file).name) for f in v.run_checks(inputs.gather(d), now=now) if f.id.startswith("chain-")}


def test_every_leaf_of_an_untouched_pki_chains(many: Path, now: dt.datetime) -> None:
    """The twin of the two below: nothing to find when nothing was damaged."""
    assert chain_findings(many, now) == set()


def test_a_foreign_leaf_among_many_is_found_and_only_it(many: Path, other_pki: Path, now: dt.datetime) -> None:
    for ext in ("crt", "key"):
        shutil.copy(other_pki / f"client.{ext}", many / f"{DAMAGED}.{ext}")
    assert chain_findings(many, now) == {("chain-broken", f"{DAMAGED}.crt")}


def test_a_non_strict_leaf_among_many_is_found_and_only_it(many: Path, now: dt.datetime) -> None:
    """Signed by the PKI's own intermediate, so it chains; no authorityKeyIdentifier, so X509_STRICT refuses it:
    the strict-first order must still tell chain-strict from chain-broken."""
    ca = x509.load_pem_x509_certificates((many / "intermediate.crt").read_bytes())[0]
    ca_key = serialization.load_pem_private_key((many / "intermediate.key").read_bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, DAMAGED)]))
            .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))  # type: ignore[arg-type]
    (many / f"{DAMAGED}.crt").write_bytes(cert_pem(leaf, ca))
    (many / f"{DAMAGED}.key").write_bytes(key_pem(key))
    assert chain_findings(many, now) == {("chain-strict", f"{DAMAGED}.crt")}


def revoked_findings(d: Path, now: dt.datetime) -> list[str]:
    return [f.message for f in v.run_checks(inputs.gather(d), now=now) if f.id == "cert-revoked"]


def test_a_revoked_certificate_in_a_live_entry_among_many_is_found(many: Path, now: dt.datetime) -> None:
    """check_pki and check_pki_crl share each leaf's chain: the CRL verdict must be that leaf's own."""
    ops.revoke(many, ["node-01"], reason="keyCompromise", now=now)
    assert revoked_findings(many, now) == []  # the twin: the revoked entry itself is not in service
    for ext in ("crt", "key"):
        shutil.copy(many / f"node-01.{ext}", many / f"{DAMAGED}.{ext}")
    [msg] = revoked_findings(many, now)
    assert msg.startswith("node-01 (serial ")
