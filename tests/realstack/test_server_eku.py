"""`--eku server,client` on the real server: a chart probe (Bitnami's) that presents the server's own
certificate as a client certificate gets in only when that certificate carries clientAuth.

The probe certificates are issued with `--cn kong`, so the rendered `cert` line maps them to the
role kong exactly as Kong's own certificate: the two twins differ in their EKU and nothing else.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .clients import Refused, libpq_connect, s_client
from .pg import Cluster
from .pkis import DB_IP, DB_NAME, Pki, PkiFactory, cli

pytestmark = pytest.mark.realstack


@pytest.fixture(scope="module")
def probe_pki(pkis: PkiFactory) -> Pki:
    """One PKI with two server certificates for the same host and CN, with and without clientAuth."""
    pki = pkis.fresh("intermediate", "ecdsa-p256", tag="eku")
    for name, eku in (("probe-dual", "server,client"), ("probe-plain", "server")):
        cli("issue", "server", "--dir", str(pki.dir), "--name", name, "--db-host", DB_NAME, "--cn", "kong",
            "--eku", eku)
    return pki


def _as_client(cluster: Cluster, pki: Pki, name: str) -> object:
    return libpq_connect(port=cluster.port, host=DB_NAME, hostaddr=DB_IP, sslrootcert=pki.trust_file,
                         sslcert=pki.cert_file(name), sslkey=pki.key_file(name), user="kong")


def test_server_certificate_with_client_eku_logs_in_as_a_client(cluster: Cluster, probe_pki: Pki) -> None:
    cluster.apply(probe_pki, auth="cert", server="probe-dual")
    row = _as_client(cluster, probe_pki, "probe-dual")
    assert (row.user, row.client_dn) == ("kong", "/CN=kong")  # type: ignore[attr-defined]


def test_server_certificate_without_client_eku_is_refused_for_its_purpose(cluster: Cluster, probe_pki: Pki) -> None:
    """Twin: the same CN and CA, serverAuth only: OpenSSL in PostgreSQL refuses it during the handshake."""
    cluster.apply(probe_pki, auth="cert", server="probe-dual")
    mark = cluster.log_mark()
    with pytest.raises(Refused, match="alert unsupported certificate"):  # OpenSSL's alert for a wrong purpose
        _as_client(cluster, probe_pki, "probe-plain")
    assert "could not accept SSL connection: certificate verify failed" in cluster.wait_log(mark, r"verify failed")


def test_dual_server_certificate_still_serves_verify_full(cluster: Cluster, probe_pki: Pki) -> None:
    """Adding clientAuth takes nothing away: libpq verify-full accepts it as the server's certificate."""
    cluster.apply(probe_pki, auth="cert", server="probe-dual")
    row = libpq_connect(port=cluster.port, host=DB_NAME, hostaddr=DB_IP, sslrootcert=probe_pki.trust_file,
                        sslcert=probe_pki.client_cert, sslkey=probe_pki.client_key, user="kong")
    assert row.user == "kong"  # type: ignore[attr-defined]
    res = s_client(port=cluster.port, cafile=probe_pki.trust_file, verify_depth=probe_pki.verify_depth,
                   cert=probe_pki.client_cert, key=probe_pki.client_key, verify_hostname=DB_NAME)
    assert res.ok, res
    served = res.output.split("-----BEGIN CERTIFICATE-----", 1)[1].split("-----END CERTIFICATE-----", 1)[0]
    issued = Path(probe_pki.cert_file("probe-dual")).read_text()
    assert served.strip() == issued.split("-----BEGIN CERTIFICATE-----", 1)[1].split("-----END", 1)[0].strip()
