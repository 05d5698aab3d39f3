"""pg_ident maps on the real server: the rendered `cert map=pgkongtls` admits a CN that differs
from the role, and PostgreSQL 15 refuses `map=` on the other methods, which is why
`render hba` only maps with --auth cert.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .clients import Refused, libpq_connect
from .kong import KongEquivalent
from .pg import Cluster, ClusterError
from .pkis import DB_IP, DB_NAME, CliError, Pki, PkiFactory

pytestmark = pytest.mark.realstack

CLIENT_CN = "kong-gw"


@pytest.fixture(scope="module")
def mapped(pkis: PkiFactory) -> Pki:
    """A PKI whose client certificate says CN=kong-gw, while Kong logs in as the role `kong`."""
    return pkis.get("intermediate", "ecdsa-p256", db_user=CLIENT_CN)


def _libpq(cluster: Cluster, pki: Pki) -> dict[str, object]:
    return {"port": cluster.port, "host": DB_NAME, "hostaddr": DB_IP, "sslrootcert": pki.trust_file,
            "sslcert": pki.client_cert, "sslkey": pki.client_key, "user": "kong"}


def test_rendered_cert_map_admits_a_cn_that_differs_from_the_role(cluster: Cluster, mapped: Pki,
                                                                  record: Callable[..., None]) -> None:
    applied = cluster.apply(mapped, auth="cert", user="kong")
    assert "hostssl all kong all cert map=pgkongtls\n" in applied.hba
    assert f"pgkongtls {CLIENT_CN} kong\n" in applied.ident
    row = libpq_connect(**_libpq(cluster, mapped))  # type: ignore[arg-type]
    record(case=f"CN {CLIENT_CN} mapped to role kong", client="libpq verify-full", expected="auth ok",
           observed=f"{row.user} {row.client_dn}")
    assert (row.user, row.client_dn) == ("kong", f"/CN={CLIENT_CN}")


def test_rendered_cert_map_admits_kong(cluster: Cluster, kong: KongEquivalent, mapped: Pki,
                                       record: Callable[..., None]) -> None:
    cluster.apply(mapped, auth="cert", user="kong")
    res = kong.connect(kong.deploy(mapped).conf, port=cluster.port, user="kong")
    record(case=f"CN {CLIENT_CN} mapped to role kong", client="Kong EE", expected="auth ok", observed=str(res))
    assert res.ok, res
    assert (res.user, res.client_dn) == ("kong", f"/CN={CLIENT_CN}")


def test_without_the_rendered_ident_the_same_cn_is_refused(cluster: Cluster, mapped: Pki) -> None:
    """Twin: the same hba line with an empty pg_ident.conf, so the map is what admits the CN."""
    applied = cluster.apply(mapped, auth="cert", user="kong")
    cluster.configure(postgres_conf=applied.postgres_conf, hba=applied.hba, ident="")
    with pytest.raises(Refused, match='certificate authentication failed for user "kong"$'):
        libpq_connect(**_libpq(cluster, mapped))  # type: ignore[arg-type]


@pytest.mark.parametrize("method", ["trust clientcert=verify-full", "scram-sha-256 clientcert=verify-full"])
def test_postgresql_refuses_map_on_other_methods(cluster: Cluster, mapped: Pki, method: str,
                                                 record: Callable[..., None]) -> None:
    """Measured answer to "would PG 15 take map= here?": no, so render must not write it."""
    applied = cluster.apply(mapped, auth="cert", user="kong")
    try:
        mark = cluster.log_mark()
        cluster.write_config(postgres_conf=applied.postgres_conf, hba=f"hostssl all kong all {method} map=pgkongtls\n",
                             ident=applied.ident)
        with pytest.raises(ClusterError) as exc:
            cluster.reload()
        log = cluster.wait_log(mark, "pg_hba.conf was not reloaded")
        record(case=f"map= on '{method.split()[0]} clientcert=verify-full'", client="PostgreSQL reload",
               expected='"map" only valid for ... cert', observed=str(exc.value))
        assert ('authentication option "map" is only valid for authentication methods '
                "ident, peer, gssapi, sspi, and cert") in str(exc.value)
        assert "pg_hba.conf was not reloaded" in log
    finally:
        cluster.apply(mapped, auth="cert", user="kong")
    auth = "verify-full" if method.startswith("trust") else "scram"
    with pytest.raises(CliError, match="only --auth cert can map them; use --auth cert"):
        mapped.render("hba", "--auth", auth, "--user", "kong")
