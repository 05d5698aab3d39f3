"""`--eku server,client`: a server certificate that also passes as a client certificate, opt-in only.

Charts whose probes present the server's certificate as a client certificate (Bitnami's) need
clientAuth on it; everything else keeps the strict one-purpose leaf.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509 import verification as v
from cryptography.x509.oid import ExtendedKeyUsageOID

from pgkongtls import SERVER_EKUS, certs, ops
from pgkongtls.errors import InputError, PgkWarning
from pgkongtls.lifecycle import LeafRequest
from pgkongtls.pki import InitOptions

NOW = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.timezone.utc)
SERVER, CLIENT = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH


def leaf(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificates(path.read_bytes())[0]


def ekus(cert: x509.Certificate) -> tuple[list[x509.ObjectIdentifier], bool]:
    ext = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    return list(ext.value), ext.critical


def as_client(d: Path, cert: x509.Certificate) -> None:
    """cryptography's strict client verifier over the PKI's chain.crt (raises VerificationError)."""
    *inter, root = x509.load_pem_x509_certificates((d / "chain.crt").read_bytes())
    ca_policy, ee_policy = certs.client_policy()
    (v.PolicyBuilder().store(v.Store([root])).time(NOW + dt.timedelta(minutes=1))
     .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy).build_client_verifier().verify(cert, inter))


def openssl_purpose(d: Path, name: str, purpose: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", "verify", "-x509_strict", "-attime", str(int(NOW.timestamp()) + 60), "-purpose", purpose,
         "-CAfile", str(d / "chain.crt"), str(d / f"{name}.crt")], capture_output=True, text=True, check=False)


@pytest.fixture
def dual(tmp_path: Path) -> Path:
    d = tmp_path / "pki"
    with pytest.warns(PgkWarning):
        ops.init(d, InitOptions(hosts=("pg.db.svc",), server_eku="server,client"), now=NOW)
    return d


def test_default_server_certificate_is_server_only_and_fails_as_a_client(tmp_path: Path) -> None:
    d = tmp_path / "pki"
    ops.init(d, InitOptions(), now=NOW)
    assert ekus(leaf(d / "server.crt")) == ([SERVER], False)
    with pytest.raises(v.VerificationError):
        as_client(d, leaf(d / "server.crt"))


def test_init_eku_server_client_adds_client_auth_not_critical(dual: Path) -> None:
    assert ekus(leaf(dual / "server.crt")) == ([SERVER, CLIENT], False)
    as_client(dual, leaf(dual / "server.crt"))
    assert ekus(leaf(dual / "client.crt")) == ([CLIENT], False)  # Kong's leaf keeps one purpose


@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl not installed")
@pytest.mark.parametrize(("eku", "client_ok"), [("server,client", True), ("server", False)])
def test_openssl_strict_agrees_on_the_client_purpose(tmp_path: Path, eku: str, client_ok: bool) -> None:
    d = tmp_path / "pki"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PgkWarning)
        ops.init(d, InitOptions(server_eku=eku), now=NOW)
    assert openssl_purpose(d, "server", "sslserver").returncode == 0
    res = openssl_purpose(d, "server", "sslclient")
    assert (res.returncode == 0) is client_ok, res.stdout + res.stderr
    if not client_ok:
        assert "error 26 at 0 depth lookup: unsuitable certificate purpose" in res.stderr


def test_issue_server_with_eku_warns_why_and_renew_keeps_it(dual: Path) -> None:
    req = LeafRequest(name="probe", role="server", cn=None, hosts=("pg2.db.svc",), also_client=True)
    with pytest.warns(PgkWarning, match=r"^the server certificate for pg2\.db\.svc also carries clientAuth "
                                        r"\(--eku server,client\), for charts whose probes present it as a client "
                                        r"certificate \(Bitnami\)"):
        ops.issue(dual, [req], now=NOW)
    assert ekus(leaf(dual / "probe.crt")) == ([SERVER, CLIENT], False)
    with pytest.warns(PgkWarning):
        ops.renew(dual, ["probe"], now=NOW + dt.timedelta(days=1))
    assert ekus(leaf(dual / "probe.crt")) == ([SERVER, CLIENT], False)


def test_renew_of_a_plain_server_certificate_stays_plain(tmp_path: Path) -> None:
    d = tmp_path / "pki"
    ops.init(d, InitOptions(), now=NOW)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PgkWarning)  # no dual-purpose warning either
        ops.renew(d, ["server"], now=NOW + dt.timedelta(days=1))
    assert ekus(leaf(d / "server.crt")) == ([SERVER], False)


def test_also_client_is_ignored_for_a_client_request(dual: Path) -> None:
    ops.issue(dual, [LeafRequest(name="node", role="client", cn="kong", also_client=True)], now=NOW)
    assert ekus(leaf(dual / "node.crt")) == ([CLIENT], False)


def test_unknown_eku_choice_is_refused_naming_the_choices() -> None:
    assert SERVER_EKUS == ("server", "server,client")
    with pytest.raises(InputError, match=r"^unknown --eku 'client'; use one of: server, server,client$"):
        certs.server_also_client("client")
