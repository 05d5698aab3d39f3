"""A three-node Patroni 3.0 cluster (Debian's patroni + etcd 3.4) on loopback, TLS from `render patroni`.

Each node's patroni.yml is exactly the rendered fragment plus a `bootstrap:` section; the
machine's own settings (name, ports, directories, etcd address) come from Patroni's PATRONI_*
environment variables, so no TLS setting is written by the test. etcd itself is plaintext on
loopback (its TLS is not pgkongtls's). The leader is killed (Patroni with SIGKILL, its
PostgreSQL with an immediate stop): a new leader is elected, the other replica follows it over
mutual TLS, and libpq with a host list reconnects to the new primary.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from .clients import Refused, libpq_connect
from .kong import KongEquivalent
from .pg import HOST, PG_BIN, PG_USER, _postgres_ids, free_port, mkdir_owned, write_owned
from .pkis import DB_IP, Pki, PkiFactory, cli

pytestmark = pytest.mark.realstack
PATRONI = "/usr/bin/patroni"
ETCD = "/usr/bin/etcd"
SERVICE = "db.pgkongtls.test"
SOCKET_DIR = "/var/run/postgresql"
#: Node 3's certificate leaves out the service name on purpose.
NODES = {"db-1": (SERVICE,), "db-2": (SERVICE,), "db-3": ()}
BOOTSTRAP = """
bootstrap:
  dcs:
    ttl: 10
    loop_wait: 1
    retry_timeout: 3
    maximum_lag_on_failover: 104857600
    postgresql:
      use_pg_rewind: false
  initdb:
    - encoding: UTF8
    - locale: C
"""

if not (os.path.exists(PATRONI) and os.path.exists(ETCD)):  # scripts/test installs them
    pytest.skip("Debian's patroni and etcd-server are not installed", allow_module_level=True)


@dataclass
class Node:
    name: str
    pg_port: int
    api_port: int
    data: Path
    proc: subprocess.Popen[bytes]
    log: Path

    def sql(self, q: str) -> list[tuple[str, ...]]:
        """As the postgres OS user over the socket: the rendered pg_hba admits it only by peer."""
        res = subprocess.run(["runuser", "-u", PG_USER, "--", str(PG_BIN / "psql"), "-X", "-At", "-F", "|", "-h",
                              SOCKET_DIR, "-p", str(self.pg_port), "-d", "postgres", "-c", q],
                             capture_output=True, text=True, timeout=10)
        if res.returncode != 0:
            raise RuntimeError(res.stderr)
        return [tuple(line.split("|")) for line in res.stdout.splitlines()]

    def role(self) -> str | None:
        try:
            return "replica" if self.sql("SELECT pg_is_in_recovery()") == [("t",)] else "primary"
        except RuntimeError:
            return None


def _wait(what: str, check: object, timeout: float, nodes: list[Node]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.2)
    logs = "\n".join(f"--- {n.name}\n{n.log.read_text(errors='replace')[-2000:]}" for n in nodes)
    raise AssertionError(f"{what} not within {timeout} s\n{logs}")


@dataclass
class PatroniCluster:
    pki: Pki
    nodes: list[Node]


@pytest.fixture(scope="module")
def patroni_cluster(realstack_base: Path, pkis: PkiFactory) -> Iterator[PatroniCluster]:
    pki = pkis.fresh("intermediate", "ecdsa-p256", tag="patroni")
    for name, extra in NODES.items():
        hosts = [f"{name}.pgkongtls.test", *extra, DB_IP]
        cli("issue", "server", "--dir", str(pki.dir), "--name", name, *[a for h in hosts for a in ("--db-host", h)])
    cli("issue", "client", "--dir", str(pki.dir), "--name", "replicator", "--cn", "replicator")
    cli("issue", "client", "--dir", str(pki.dir), "--name", "patroni", "--cn", "patroni")
    base = mkdir_owned(realstack_base / "patroni", 0o755)
    uid, gid = _postgres_ids()
    etcd_dir = mkdir_owned(base / "etcd")
    client_port, peer_port = free_port(), free_port()
    etcd_log = (base / "etcd.log").open("wb")
    etcd = subprocess.Popen(
        [ETCD, "--name", "e", "--data-dir", str(etcd_dir), "--listen-client-urls", f"http://{HOST}:{client_port}",
         "--advertise-client-urls", f"http://{HOST}:{client_port}", "--listen-peer-urls", f"http://{HOST}:{peer_port}",
         "--initial-advertise-peer-urls", f"http://{HOST}:{peer_port}",
         "--initial-cluster", f"e=http://{HOST}:{peer_port}"],
        stdout=etcd_log, stderr=subprocess.STDOUT, user=uid, group=gid)
    nodes: list[Node] = []
    try:
        for name in NODES:
            d = mkdir_owned(base / name)
            ssl = mkdir_owned(d / "ssl", 0o755)
            m = pki.manifest
            for f in sorted({m.certificates[n].file for n in (name, "replicator", "patroni")}
                            | {m.certificates[n].key_file for n in (name, "replicator", "patroni")} | {"chain.crt"}):
                write_owned(ssl / f, pki.path(f).read_bytes(), 0o600 if f.endswith(".key") else 0o644)
            fragment = pki.render("patroni", "--node", name, "--replication", "replicator", "--ctl-client", "patroni",
                                  "--pg-dir", str(ssl))
            cfg = d / "patroni.yml"
            write_owned(cfg, (fragment + BOOTSTRAP).encode(), 0o600)
            pg_port, api_port = free_port(), free_port()
            env = {**{k: v for k, v in os.environ.items() if not k.startswith("PATRONI_")},
                   "PATRONI_NAME": name, "PATRONI_SCOPE": "pgkongtls",
                   "PATRONI_ETCD3_HOSTS": f"'{HOST}:{client_port}'",
                   "PATRONI_RESTAPI_LISTEN": f"{HOST}:{api_port}", "PATRONI_RESTAPI_CONNECT_ADDRESS": f"{HOST}:{api_port}",
                   "PATRONI_POSTGRESQL_LISTEN": f"{HOST}:{pg_port}",
                   "PATRONI_POSTGRESQL_CONNECT_ADDRESS": f"{HOST}:{pg_port}",
                   "PATRONI_POSTGRESQL_DATA_DIR": str(d / "data"), "PATRONI_POSTGRESQL_BIN_DIR": str(PG_BIN),
                   "PATRONI_POSTGRESQL_PGPASS": str(d / "pgpass"), "HOME": str(d)}
            log = d / "patroni.log"
            proc = subprocess.Popen([PATRONI, str(cfg)], stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env,
                                    user=uid, group=gid, cwd=d)
            nodes.append(Node(name=name, pg_port=pg_port, api_port=api_port, data=d / "data", proc=proc, log=log))
            if len(nodes) == 1:  # let db-1 bootstrap first, so it is the first leader
                _wait("db-1 bootstrap", lambda: nodes[0].role() == "primary", 40, nodes)
                nodes[0].sql("CREATE ROLE kong LOGIN")
        _wait("both replicas streaming", lambda: nodes[0].sql(
            "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming' AND application_name LIKE 'db-%'"
            " ORDER BY 1") == [("db-2",), ("db-3",)], 40, nodes)
        yield PatroniCluster(pki=pki, nodes=nodes)
    finally:
        for n in nodes:
            if n.proc.poll() is None:
                n.proc.terminate()
        for n in nodes:
            try:
                n.proc.wait(20)
            except subprocess.TimeoutExpired:
                n.proc.kill()
            subprocess.run(["runuser", "-u", PG_USER, "--", str(PG_BIN / "pg_ctl"), "-D", str(n.data), "stop", "-m",
                            "immediate"], capture_output=True)
        etcd.send_signal(signal.SIGTERM)
        etcd.wait(10)
        etcd_log.close()
        shutil.rmtree(base, ignore_errors=True)


def _multi_host(pc: PatroniCluster, nodes: list[Node]) -> str:
    """libpq over every node (own names), read-write only, verify-full, Kong's client certificate."""
    params = {
        "host": ",".join(f"{n.name}.pgkongtls.test" for n in nodes), "hostaddr": ",".join(DB_IP for _ in nodes),
        "port": ",".join(str(n.pg_port) for n in nodes), "target_session_attrs": "read-write",
        "sslmode": "verify-full", "sslrootcert": str(pc.pki.trust_file), "sslcert": str(pc.pki.client_cert),
        "sslkey": str(pc.pki.client_key), "user": "kong", "dbname": "postgres", "connect_timeout": "3",
    }
    with psycopg.connect(**params) as c:  # type: ignore[arg-type]
        row = c.execute("SELECT inet_server_port(), ssl, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
                        ).fetchone()
    assert row is not None
    return f"{row[0]}|{row[1]}|{row[2]}"


def test_leader_killed_new_leader_replicas_follow_over_tls_and_clients_reconnect(
        patroni_cluster: PatroniCluster, kong: KongEquivalent) -> None:
    pc = patroni_cluster
    first, *rest = pc.nodes
    assert _multi_host(pc, pc.nodes) == f"{first.pg_port}|True|/CN=kong"
    walsenders = first.sql("SELECT r.usename, s.ssl, s.client_dn FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)"
                           " WHERE r.state = 'streaming' AND r.application_name LIKE 'db-%'")
    assert sorted(walsenders) == [("replicator", "t", "/CN=replicator")] * 2

    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(10)
    subprocess.run(["runuser", "-u", PG_USER, "--", str(PG_BIN / "pg_ctl"), "-D", str(first.data), "stop", "-m",
                    "immediate"], capture_output=True, check=True)
    _wait("a new leader", lambda: any(n.role() == "primary" for n in rest), 40, pc.nodes)
    leader = next(n for n in rest if n.role() == "primary")
    follower = next(n for n in rest if n is not leader)
    _wait("the other replica streaming from the new leader",
          lambda: leader.sql("SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'")
          == [(follower.name,)], 40, pc.nodes)
    walsender = leader.sql("SELECT r.application_name, s.ssl, s.client_dn FROM pg_stat_replication r "
                           "JOIN pg_stat_ssl s USING (pid) WHERE r.state = 'streaming' AND r.application_name LIKE 'db-%'")
    assert walsender == [(follower.name, "t", "/CN=replicator")]
    assert _multi_host(pc, pc.nodes) == f"{leader.pg_port}|True|/CN=kong"
    res = kong.connect(kong.deploy(pc.pki).conf, port=leader.pg_port)
    assert res.ok and res.client_dn == "/CN=kong", res


def test_node_without_the_service_name_refused_by_libpq_accepted_by_kong(
        patroni_cluster: PatroniCluster, kong: KongEquivalent) -> None:
    pc = patroni_cluster
    by_name = {n.name: n for n in pc.nodes}
    live = [n for n in pc.nodes if n.role() is not None]
    db3 = by_name["db-3"]
    assert db3 in live
    common = {"hostaddr": DB_IP, "sslrootcert": pc.pki.trust_file, "sslcert": pc.pki.client_cert,
              "sslkey": pc.pki.client_key}
    with pytest.raises(Refused, match=f'does not match host name "{SERVICE}"'):
        libpq_connect(port=db3.pg_port, host=SERVICE, **common)  # type: ignore[arg-type]
    twin = next(n for n in live if n is not db3)  # its certificate covers the service name
    assert libpq_connect(port=twin.pg_port, host=SERVICE, **common).ssl  # type: ignore[arg-type]
    res = kong.connect(kong.deploy(pc.pki).conf, port=db3.pg_port)
    assert res.ok, res  # Kong checks no host name (FACTS.md): it takes db-3 under any name
