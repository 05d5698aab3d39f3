"""pgbouncer between Kong/libpq and PostgreSQL, verify-full on both hops, from `render pgbouncer`.

Kong (and libpq) check the pooler's certificate `pgbouncer`; pgbouncer (auth_type = cert) takes
the client CN as the user; upstream it presents `pgbouncer-up` (CN pgbouncer), which PostgreSQL
maps to `kong` through the rendered pg_ident.conf.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from pgkongtls.render_topology import pooler_files

from .clients import Refused, libpq_connect
from .kong import KongEquivalent
from .pg import HOST, PG_BIN, Cluster, mkdir_owned, write_owned
from .pkis import DB_IP, Pki, PkiFactory, cli, mint_client
from .topo import Pgbouncer, resolved

pytestmark = pytest.mark.realstack
POOLER = "pgbouncer.pgkongtls.test"


@dataclass
class Pooled:
    pki: Pki
    pg: Cluster
    pgb: Pgbouncer
    rendered: str


def _pooler(base: Path, name: str, pki: Pki, pg: Cluster, replace_up: tuple[Path, Path] | None = None) -> Pgbouncer:
    """A pooler host directory holding the files `render pgbouncer` lists, then pgbouncer on it."""
    ssl = mkdir_owned(base / f"{name}-ssl", 0o755)
    for f in pooler_files(pki.manifest, server="pgbouncer", client="pgbouncer-up"):
        src = pki.path(f)
        if replace_up and f in ("pgbouncer-up.crt", "pgbouncer-up.key"):
            src = replace_up[0] if f.endswith(".crt") else replace_up[1]
        write_owned(ssl / f, src.read_bytes(), 0o600 if f.endswith(".key") else 0o644)
    rendered = pki.render("pgbouncer", "--server", "pgbouncer", "--client", "pgbouncer-up", "--upstream",
                          f"{HOST}:{pg.port}", "--pg-dir", str(ssl))
    return Pgbouncer(base, name, rendered, ssl / "userlist.txt", extra=("admin_users = kong",))


@pytest.fixture(scope="module")
def pooled(realstack_base: Path, pkis: PkiFactory) -> Iterator[Pooled]:
    pki = pkis.fresh("intermediate", "ecdsa-p256", tag="pgbouncer")
    cli("issue", "server", "--dir", str(pki.dir), "--name", "pgbouncer", "--db-host", POOLER, "--db-host", DB_IP)
    cli("issue", "client", "--dir", str(pki.dir), "--name", "pgbouncer-up", "--cn", "pgbouncer")
    pg = Cluster(realstack_base, name="pgb-pg")
    pgb: Pgbouncer | None = None
    try:
        pg.start()
        pg.ensure_role("kong")
        pg.sql("CREATE DATABASE kong OWNER kong")
        pg_dir = pg.install_files(pki.dir.name, pki.server_side_files())
        pg.configure(postgres_conf=pki.render("postgres", "--pg-dir", str(pg_dir)), hba=pki.render("hba", "--user", "kong"),
                     ident=pki.render("ident", "--user", "kong"))
        pgb = _pooler(realstack_base, "pgb", pki, pg)
        yield Pooled(pki=pki, pg=pg, pgb=pgb, rendered=pgb.ini.read_text())
    finally:
        if pgb is not None:
            pgb.stop()
        pg.destroy()


def _admin(p: Pooled, command: str) -> list[dict[str, str]]:
    """pgbouncer's admin console over verify-full TLS with Kong's certificate (simple query protocol: psql)."""
    conninfo = (f"host={POOLER} hostaddr={DB_IP} port={p.pgb.port} dbname=pgbouncer user=kong sslmode=verify-full "
                f"sslrootcert={p.pki.trust_file} sslcert={p.pki.client_cert} sslkey={p.pki.client_key}")
    res = subprocess.run([str(PG_BIN / "psql"), "-X", "-A", "-F", "\t", "-P", "footer=off", conninfo, "-c", command],
                         capture_output=True, text=True, timeout=30, check=True)
    head, *rows = res.stdout.splitlines()
    return [dict(zip(head.split("\t"), r.split("\t"), strict=True)) for r in rows]


def test_libpq_through_the_pooler_verify_full_on_both_hops(pooled: Pooled, record: Callable[..., None]) -> None:
    row = libpq_connect(port=pooled.pgb.port, host=POOLER, hostaddr=DB_IP, sslrootcert=pooled.pki.trust_file,
                        sslcert=pooled.pki.client_cert, sslkey=pooled.pki.client_key, dbname="kong")
    record(case="libpq -> pgbouncer -> PostgreSQL", client="libpq verify-full", expected="upstream TLS as /CN=pgbouncer",
           observed=str(row))
    # pg_stat_ssl is PostgreSQL's view of the pooler's server connection
    assert (row.ssl, row.user, row.client_dn) == (True, "kong", "/CN=pgbouncer")
    clients = [c for c in _admin(pooled, "SHOW CLIENTS") if c["database"] == "pgbouncer"]
    servers = [s for s in _admin(pooled, "SHOW SERVERS") if s["database"] == "kong"]
    assert clients and all(c["tls"].startswith("TLSv1.3") for c in clients), clients
    assert servers and all(s["tls"].startswith("TLSv1.3") for s in servers), servers


def test_libpq_refuses_the_pooler_under_another_name(pooled: Pooled) -> None:
    with pytest.raises(Refused, match='does not match host name "db.pgkongtls.test"'):
        libpq_connect(port=pooled.pgb.port, host="db.pgkongtls.test", hostaddr=DB_IP, sslrootcert=pooled.pki.trust_file,
                      sslcert=pooled.pki.client_cert, sslkey=pooled.pki.client_key, dbname="kong")


def test_pooler_refuses_a_cn_that_is_not_the_user(pooled: Pooled, tmp_path: Path) -> None:
    """auth_type = cert has no map: the rendered comment says the CN must be the user."""
    other_cn = mint_client(pooled.pki, tmp_path, cn="kong-gw", now=dt.datetime.now(dt.timezone.utc))
    with pytest.raises(Refused, match="FATAL:  certificate authentication failed$"):
        libpq_connect(port=pooled.pgb.port, host=POOLER, hostaddr=DB_IP, sslrootcert=pooled.pki.trust_file,
                      sslcert=other_cn.cert, sslkey=other_cn.key, dbname="kong")


def test_kong_through_the_pooler(pooled: Pooled, kong: KongEquivalent, record: Callable[..., None]) -> None:
    conf = kong.deploy(pooled.pki, "--via", "pgbouncer").conf
    assert f"\npg_host = {POOLER}\npg_port = 6432\n" in conf
    res = kong.connect(resolved(conf, "pg_host", DB_IP), port=pooled.pgb.port, database="kong")
    record(case="Kong -> pgbouncer -> PostgreSQL", client="Kong EE", expected="auth ok", observed=str(res))
    assert res.ok, res
    assert (res.ssl, res.user, res.client_dn) == (True, "kong", "/CN=pgbouncer")


def test_untrusted_pooler_certificate_is_a_timeout_for_the_client_and_probe_names_it(
        realstack_base: Path, pooled: Pooled, other: Pki, tmp_path: Path, record: Callable[..., None]) -> None:
    foreign = mint_client(other, tmp_path, cn="pgbouncer", now=dt.datetime.now(dt.timezone.utc))
    bad = _pooler(realstack_base, "pgb-foreign", pooled.pki, pooled.pg, replace_up=(foreign.cert, foreign.key))
    try:
        with pytest.raises(psycopg.OperationalError) as exc:
            psycopg.connect(host=POOLER, hostaddr=DB_IP, port=bad.port, dbname="kong", user="kong",
                            sslmode="verify-full", sslrootcert=str(pooled.pki.trust_file),
                            sslcert=str(pooled.pki.client_cert), sslkey=str(pooled.pki.client_key), connect_timeout=3)
        assert "timeout expired" in str(exc.value)
    finally:
        bad.stop()
    res = subprocess.run([sys.executable, "-m", "pgkongtls", "probe", f"{HOST}:{pooled.pg.port}", "--ca",
                          str(pooled.pki.trust_file), "--cert", str(foreign.cert), "--key", str(foreign.key),
                          "--user", "kong", "--json"], capture_output=True, text=True, timeout=60)
    record(case="pooler's upstream cert from another CA", client="libpq via pgbouncer / probe",
           expected="timeout expired / probe names the CA", observed=f"{str(exc.value).strip()} / {res.stdout[:300]}")
    assert res.returncode == 1
    report = json.loads(res.stdout)
    assert "unknown ca" in json.dumps(report), report
