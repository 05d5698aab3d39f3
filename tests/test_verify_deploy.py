"""verify as the gate for deployed files: own hosts per server, key reachable, CRL set, client CN present."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pgkongtls import inputs, ops
from pgkongtls import verify as v
from pgkongtls.lifecycle import LeafRequest
from pgkongtls.pki import InitOptions

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def base() -> Iterator[Path]:
    """0755, unlike pytest's 0700 tmp: the postgres user can enter it."""
    d = Path(tempfile.mkdtemp(prefix="pgkongtls-verify-"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def pki(base: Path) -> Path:
    ops.init(base / "pki", InitOptions(hosts=("db.internal",)), now=NOW)
    os.chmod(base / "pki", 0o755)  # as a deployed ssl directory would be
    return base / "pki"


def ids(d: Path | None, postgresql_conf: Path | None = None) -> list[str]:
    return [f.id for f in v.run_checks(inputs.gather(d, postgresql_conf=postgresql_conf), now=NOW)]


def pg_conf(base: Path, pki: Path, extra: str = "") -> Path:
    p = base / "postgresql.conf"
    p.write_text(f"ssl = on\nssl_cert_file = '{pki}/server.crt'\nssl_key_file = '{pki}/server.key'\n"
                 f"ssl_ca_file = '{pki}/chain.crt'\n{extra}")
    return p


def test_a_replica_is_checked_against_its_own_hosts_not_the_primarys(pki: Path) -> None:
    ops.issue(pki, [LeafRequest(name="replica-1", role="server", cn=None, hosts=("replica1.internal",))], now=NOW)
    assert "server-host" not in ids(pki)


def test_twin_the_primary_is_still_checked_against_the_pki_hosts(pki: Path) -> None:
    ops.issue(pki, [LeafRequest(name="server", role="server", cn=None, hosts=("other.internal",))], now=NOW,
              force=True)
    found = [f for f in v.run_checks(inputs.gather(pki), now=NOW) if f.id == "server-host"]
    assert [f.message for f in found] == [
        'libpq verify-full to db.internal fails: server certificate for "other.internal" does not match host name '
        '"db.internal"']


def test_a_key_the_server_cannot_reach_is_an_error_naming_the_directory(base: Path, pki: Path) -> None:
    if os.geteuid() != 0 or inputs.account("postgres") is None:
        pytest.skip("needs root and a postgres user")
    conf = pg_conf(base, pki)
    assert "key-unreachable" not in ids(None, postgresql_conf=conf)
    os.chmod(base, 0o700)
    found = [f for f in v.run_checks(inputs.gather(None, postgresql_conf=conf), now=NOW) if f.id == "key-unreachable"]
    assert [(f.severity, f.fix) for f in found] == [
        ("error", f"chmod o+x {base}, or install the files with pgkongtls bundle + install")]


def test_revocations_without_a_crl_in_postgresql_conf_are_an_error(base: Path, pki: Path) -> None:
    ops.issue(pki, [LeafRequest(name="kong-node-2", role="client", cn="kong-node-2")], now=NOW)
    assert "pg-no-crl" not in ids(pki, postgresql_conf=pg_conf(base, pki))
    ops.revoke(pki, ["kong-node-2"], reason="keyCompromise", now=NOW)
    found = [f for f in v.run_checks(inputs.gather(pki, postgresql_conf=pg_conf(base, pki)), now=NOW)
             if f.id == "pg-no-crl"]
    assert [(f.severity, f.message) for f in found] == [
        ("error", "kong-node-2 is revoked in the PKI but postgresql.conf sets neither ssl_crl_file nor ssl_crl_dir: "
                  "PostgreSQL still accepts it")]
    assert "pg-no-crl" not in ids(pki, postgresql_conf=pg_conf(base, pki, f"ssl_crl_file = '{pki}/crl.pem'\n"))


def _cn_less_client(pki: Path) -> None:
    """What mkcert makes: a clientAuth leaf with an empty subject, signed by the PKI's intermediate."""
    ca = x509.load_pem_x509_certificate((pki / "intermediate.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((pki / "intermediate.key").read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("kong.internal")]), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))  # type: ignore[arg-type]
    (pki / "client.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def test_a_client_certificate_without_a_cn_is_an_error_without_pg_hba(pki: Path) -> None:
    assert "client-no-cn" not in ids(pki)
    _cn_less_client(pki)
    found = [f for f in v.run_checks(inputs.gather(pki), now=NOW) if f.id == "client-no-cn"]
    assert [f.severity for f in found] == ["error"]
    assert "cert authentication matches the CN against the role" in found[0].message
