"""A stolen key is refused by real PostgreSQL in every certificate that carries it (#11).

`renew --reuse-key` leaves the previous certificate (NAME.crt.<serial>.bak) valid with the same key: a thief
who copied both before the renewal keeps logging in with it. After `revoke --reason keyCompromise NAME`,
deployed through the CLI (Cluster.apply: the rendered config and crl.pem), PostgreSQL 15 with ssl_crl_file
refuses the old certificate as well as the current one. Its twin: another reason revokes the named
certificate only, and the old one still logs in, which is what the test would see without the fix.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from .clients import Refused, libpq_connect
from .pg import Cluster
from .pkis import DB_IP, DB_NAME, Pki, PkiFactory, cli

pytestmark = pytest.mark.realstack

_FRESH = itertools.count()


def login(pki: Pki, cluster: Cluster, cert: Path, key: Path) -> str:
    """libpq verify-full with this certificate and key: the session's client DN, or the refusal text."""
    try:
        row = libpq_connect(port=cluster.port, host=DB_NAME, hostaddr=DB_IP, sslrootcert=pki.trust_file,
                            sslcert=cert, sslkey=key)
    except Refused as e:
        return f"refused: {e}"
    return row.client_dn or ""


def reused(pkis: PkiFactory, cluster: Cluster) -> tuple[Pki, Path, Path]:
    """A fresh PKI with kong-node-1 and -2; node 2 renewed with its key. The old node-2 certificate and key.

    Both nodes have the CN kong (the db user, the default), so no ident map changes when one is revoked:
    only the CRL can refuse a certificate here.
    """
    pki = pkis.fresh("intermediate", tag=f"compromise-{next(_FRESH)}")
    cli("issue", "client", "--dir", str(pki.dir), "--name", "kong-node-1", "--name", "kong-node-2")
    old = pki.manifest.certificates["kong-node-2"].serial
    cli("renew", "--dir", str(pki.dir), "kong-node-2", "--reuse-key")
    cert, key = pki.path(f"kong-node-2.crt.{old}.bak"), pki.path(f"kong-node-2.key.{old}.bak")
    cluster.apply(pki, auth="cert")
    assert login(pki, cluster, cert, key) == "/CN=kong"  # the old certificate works before any revocation
    return pki, cert, key


def test_key_compromise_refuses_the_old_certificate_of_the_same_key(
        pkis: PkiFactory, cluster: Cluster, record: Callable[..., None]) -> None:
    pki, old_cert, old_key = reused(pkis, cluster)
    out = cli("revoke", "--dir", str(pki.dir), "kong-node-2", "--reason", "keyCompromise")
    assert out == ""  # people's output goes to stderr
    applied = cluster.apply(pki, auth="cert")  # crl.pem and ssl_crl_file, reloaded
    assert "ssl_crl_file" in applied.postgres_conf
    seen = login(pki, cluster, old_cert, old_key)
    record(case="keyCompromise, old certificate of the same key", client="libpq verify-full", expected="refused",
           observed=seen.splitlines()[0], column="lifecycle")
    assert seen.startswith("refused:") and "certificate revoked" in seen, seen
    current = login(pki, cluster, pki.cert_file("kong-node-2"), pki.key_file("kong-node-2"))
    assert current.startswith("refused:") and "certificate revoked" in current, current
    assert login(pki, cluster, pki.cert_file("kong-node-1"), pki.key_file("kong-node-1")) == "/CN=kong"


def test_another_reason_leaves_the_old_certificate_logging_in(
        pkis: PkiFactory, cluster: Cluster, record: Callable[..., None]) -> None:
    pki, old_cert, old_key = reused(pkis, cluster)
    cli("revoke", "--dir", str(pki.dir), "kong-node-2", "--reason", "cessationOfOperation")
    cluster.apply(pki, auth="cert")
    current = login(pki, cluster, pki.cert_file("kong-node-2"), pki.key_file("kong-node-2"))
    assert "certificate revoked" in current, current
    seen = login(pki, cluster, old_cert, old_key)
    record(case="cessationOfOperation, old certificate of the same key", client="libpq verify-full",
           expected="auth ok (only the named certificate is revoked)", observed=seen, column="lifecycle")
    assert seen == "/CN=kong"
