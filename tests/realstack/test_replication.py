"""Streaming replication over mutual TLS on the real server: a primary and a standby on loopback.

The standby's data comes from the `pg_basebackup` line `render standby` prints (run as printed,
with the replication certificate), its postgresql.conf is exactly `render standby`, and the
primary's pg_hba/pg_ident are `render hba/ident --replication replicator`. The standby's PKI
directory has a space and a quote in its name, so the conninfo quoting is read back by the server.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from pgkongtls.render import Files
from pgkongtls.render_topology import primary_conninfo

from .clients import Refused, libpq_connect
from .kong import KongEquivalent
from .pg import HOST, PG_BIN, Cluster
from .pkis import DB_IP, Pki, PkiFactory, cli, mint_client
from .topo import REPLICATOR, STANDBY_NAMES, Pair, configure_primary, make_standby, ro_view, start_as_standby, topology_pki

pytestmark = pytest.mark.realstack


@pytest.fixture(scope="module")
def pair(realstack_base: Path, pkis: PkiFactory) -> Iterator[Pair]:
    pki = topology_pki(pkis, "repl")
    primary = Cluster(realstack_base, name="topo-primary")
    made: list[Cluster] = [primary]
    try:
        primary.start()
        primary.ensure_role("kong")
        configure_primary(primary, pki)
        p = make_standby(realstack_base, "topo-standby", primary, pki)
        made.append(p.standby)
        start_as_standby(p)
        yield p
    finally:
        for c in reversed(made):
            c.destroy()


def _replication_session(cluster: Cluster, pki: Pki, cert: Path, key: Path) -> subprocess.CompletedProcess[str]:
    """A physical replication connection as `replicator` (IDENTIFY_SYSTEM), verify-full, with `cert`."""
    conninfo = (f"host={HOST} port={cluster.port} user={REPLICATOR} replication=true sslmode=verify-full "
                f"sslrootcert={pki.trust_file} sslcert={cert} sslkey={key} connect_timeout=10")
    return subprocess.run([str(PG_BIN / "psql"), "-X", "-At", conninfo, "-c", "IDENTIFY_SYSTEM"], capture_output=True,
                          text=True, timeout=30)


def test_standby_streams_over_mutual_tls_as_the_replication_identity(pair: Pair, record: Callable[..., None]) -> None:
    rows = pair.primary.sql(
        "SELECT r.usename, r.application_name, r.state, s.ssl, s.version, s.client_dn"
        " FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)")
    record(case="standby db-2 streaming", client="walsender (pg_stat_ssl)", expected="streaming, TLS, /CN=replicator",
           observed=str(rows))
    assert len(rows) == 1
    usename, app, state, ssl, version, dn = rows[0]
    assert (usename, app, state, ssl, dn) == (REPLICATOR, "db-2", "streaming", True, f"/CN={REPLICATOR}")
    assert version in ("TLSv1.2", "TLSv1.3")
    pair.primary.sql("CREATE TABLE IF NOT EXISTS topo_probe (v text)")
    pair.primary.sql("INSERT INTO topo_probe VALUES ('over mtls')")
    deadline = time.monotonic() + 10
    seen: list[tuple[object, ...]] = []
    while time.monotonic() < deadline and not seen:
        try:
            seen = pair.standby.sql("SELECT v FROM topo_probe WHERE v = 'over mtls'")
        except psycopg.errors.UndefinedTable:  # the CREATE has not been replayed yet
            pass
        time.sleep(0.05)
    assert seen == [("over mtls",)]
    assert pair.standby.sql("SELECT pg_is_in_recovery()") == [(True,)]


def test_primary_conninfo_quoting_survives_postgresql_conf(pair: Pair) -> None:
    """The server reads back exactly the libpq conninfo the library built (space and quote in the paths)."""
    ssl_dir = pair.standby.ssl_root / "it's a dir"
    want = primary_conninfo(pair.pki.manifest, Files(pg_dir=str(ssl_dir), kong_dir="/", server="db-2"),
                            client=REPLICATOR, host=HOST, port=pair.primary.port, application_name="db-2")
    assert "'" in want and " a dir" in want
    assert pair.standby.sql("SHOW primary_conninfo") == [(want,)]
    (status, conninfo), = pair.standby.sql("SELECT status, conninfo FROM pg_stat_wal_receiver")
    assert status == "streaming"
    # what the walreceiver's libpq used (the view prints values unquoted)
    assert f" sslcert={ssl_dir}/replicator.crt sslkey={ssl_dir}/replicator.key " in conninfo, conninfo


@pytest.mark.parametrize("name", STANDBY_NAMES)
def test_node_certificate_covers_its_own_and_the_service_name(pair: Pair, name: str) -> None:
    row = libpq_connect(port=pair.standby.port, host=name, hostaddr=DB_IP, sslrootcert=pair.pki.trust_file,
                        sslcert=pair.pki.client_cert, sslkey=pair.pki.client_key)
    assert (row.ssl, row.user, row.client_dn) == (True, "kong", "/CN=kong")


def test_node_certificate_does_not_cover_another_nodes_name(pair: Pair) -> None:
    with pytest.raises(Refused, match='server certificate for "db-2.pgkongtls.test" .*does not match host name '
                                      '"db-1.pgkongtls.test"'):
        libpq_connect(port=pair.standby.port, host="db-1.pgkongtls.test", hostaddr=DB_IP,
                      sslrootcert=pair.pki.trust_file, sslcert=pair.pki.client_cert, sslkey=pair.pki.client_key)


def test_kong_reads_from_the_replica_and_writes_to_the_primary(pair: Pair, kong: KongEquivalent,
                                                               record: Callable[..., None]) -> None:
    conf = kong.deploy(pair.pki, "--ro-server", "db-2").conf
    assert "\npg_ro_host = db-2.pgkongtls.test\n" in conf
    rw = kong.connect(conf, port=pair.primary.port)
    ro = kong.connect(ro_view(conf, resolve={"db-2.pgkongtls.test": DB_IP}), port=pair.standby.port)
    record(case="pg_ro_host = standby db-2", client="Kong EE", expected="auth ok on both", observed=f"{rw} / {ro}")
    assert rw.ok and ro.ok, (rw, ro)
    assert (rw.client_dn, ro.client_dn) == ("/CN=kong", "/CN=kong")


def test_replication_certificate_from_another_pki_is_refused(pair: Pair, other: Pki, tmp_path: Path) -> None:
    good = _replication_session(pair.primary, pair.pki, pair.pki.cert_file(REPLICATOR), pair.pki.key_file(REPLICATOR))
    assert good.returncode == 0, good.stderr  # the positive twin on the same server, same command
    foreign = mint_client(other, tmp_path, cn=REPLICATOR, now=dt.datetime.now(dt.timezone.utc))
    mark = pair.primary.log_mark()
    res = _replication_session(pair.primary, pair.pki, foreign.cert, foreign.key)
    log = pair.primary.wait_log(mark, "could not accept SSL connection")
    assert res.returncode != 0
    assert "unknown ca" in res.stderr, res.stderr
    assert "could not accept SSL connection: certificate verify failed" in log, log


def test_revoked_replication_certificate_is_refused(pkis: PkiFactory, new_cluster: Callable[[], Cluster]) -> None:
    pki = topology_pki(pkis, "repl-revoked")
    cli("issue", "client", "--dir", str(pki.dir), "--name", "replicator-2", "--cn", REPLICATOR)
    cli("revoke", "--dir", str(pki.dir), REPLICATOR)
    primary = new_cluster()
    pg_dir = configure_primary(primary, pki)
    assert "\nssl_crl_file = " in pki.render("postgres", "--pg-dir", str(pg_dir))
    fresh = _replication_session(primary, pki, pki.cert_file("replicator-2"), pki.key_file("replicator-2"))
    assert fresh.returncode == 0, fresh.stderr
    mark = primary.log_mark()
    res = _replication_session(primary, pki, pki.cert_file(REPLICATOR), pki.key_file(REPLICATOR))
    log = primary.wait_log(mark, "could not accept SSL connection")
    assert res.returncode != 0
    assert "certificate revoked" in res.stderr, res.stderr
    assert "could not accept SSL connection: certificate verify failed" in log, log
