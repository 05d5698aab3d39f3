"""Real-stack pieces for more than one database: a PKI with node, replication and pooler identities,
a primary and a streaming standby built by `pg_basebackup` over mutual TLS, and Kong's read-only view.

Everything the servers read comes from `pgkongtls render`; the only files copied are the ones
the rendered comments list (`render_topology.standby_files`, `Pki.server_side_files`).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from pgkongtls.render_topology import standby_files

from .pg import HOST, PG_BIN, PG_USER, Cluster, ClusterError, mkdir_owned, write_owned
from .pkis import Pki, PkiFactory, cli

REPLICATOR = "replicator"
#: The standby's own names: its node name and the shared service name (multi-SAN node certificate).
STANDBY_NAMES = ("db-2.pgkongtls.test", "db.pgkongtls.test")
#: A directory name PostgreSQL and libpq must read back exactly: a space and a quote in a conninfo
#: inside a postgresql.conf string.
ODD_DIR = "it's a dir"


def topology_pki(pkis: PkiFactory, tag: str) -> Pki:
    """A PKI of our own with a replication identity and the standby's multi-SAN server certificate."""
    pki = pkis.fresh("intermediate", "ecdsa-p256", tag=tag)
    cli("issue", "client", "--dir", str(pki.dir), "--name", REPLICATOR, "--cn", REPLICATOR)
    cli("issue", "server", "--dir", str(pki.dir), "--name", "db-2", *[a for h in STANDBY_NAMES for a in ("--db-host", h)])
    return pki


def configure_primary(primary: Cluster, pki: Pki) -> Path:
    """Serve `pki` on `primary` with `render postgres/hba/ident --replication`; the role exists."""
    pg_dir = primary.install_files(pki.dir.name, pki.server_side_files())
    conf = pki.render("postgres", "--pg-dir", str(pg_dir))
    primary.configure(postgres_conf=conf, hba=pki.render("hba", "--replication", REPLICATOR),
                      ident=pki.render("ident", "--replication", REPLICATOR))
    primary.ensure_role(REPLICATOR)
    primary.sql(f"ALTER ROLE {REPLICATOR} WITH REPLICATION")  # what the rendered comment tells the operator
    return pg_dir


def install_odd(cluster: Cluster, pki: Pki, names: list[str]) -> Path:
    """The files a rendered comment lists, under ssl/<ODD_DIR>/ (owned by postgres, keys 0600)."""
    target = mkdir_owned(cluster.ssl_root / ODD_DIR, 0o755)
    for name in names:
        write_owned(target / name, pki.path(name).read_bytes(), 0o600 if name.endswith(".key") else 0o644)
    return target


def rendered_basebackup(standby_conf: str) -> str:
    """The `pg_basebackup ...` command the rendered standby snippet prints, as a shell command line."""
    m = re.search(r"^#   (pg_basebackup .*)$", standby_conf, re.M)
    assert m, standby_conf
    return m.group(1)


@dataclass
class Pair:
    """A primary and a standby streaming from it."""

    pki: Pki
    primary: Cluster
    standby: Cluster
    standby_conf: str
    basebackup_log: str


def run_basebackup(standby: Cluster, command: str) -> subprocess.CompletedProcess[str]:
    """Run the rendered command line as postgres, DATADIR being the standby's data directory."""
    line = command.replace("pg_basebackup ", f"{PG_BIN / 'pg_basebackup'} ", 1).replace("DATADIR", str(standby.data_dir))
    return subprocess.run(["runuser", "-u", PG_USER, "--", "sh", "-c", line], capture_output=True, text=True,
                          timeout=60)


def make_standby(base: Path, name: str, primary: Cluster, pki: Pki) -> Pair:
    """`render standby`, then its own pg_basebackup over mTLS, its config, standby.signal, start."""
    standby = Cluster(base, name=name)  # initdb'd data directory, replaced below
    ssl_dir = install_odd(standby, pki, standby_files(pki.manifest, client=REPLICATOR, server="db-2"))
    conf = pki.render("standby", "--client", REPLICATOR, "--primary", f"{HOST}:{primary.port}", "--server", "db-2",
                      "--pg-dir", str(ssl_dir))
    shutil.rmtree(standby.data_dir)
    res = run_basebackup(standby, rendered_basebackup(conf))
    if res.returncode != 0:
        standby.destroy()
        raise ClusterError(f"pg_basebackup failed: {res.stderr}")
    # pg_basebackup copied the primary's files; the standby's own come from the renderer
    standby.configure(postgres_conf=conf, hba=pki.render("hba"), ident=pki.render("ident"))
    return Pair(pki=pki, primary=primary, standby=standby, standby_conf=conf, basebackup_log=res.stderr)


def start_as_standby(pair: Pair) -> None:
    """standby.signal (as the rendered comment says), then restart into recovery and wait for streaming."""
    write_owned(pair.standby.data_dir / "standby.signal", b"", 0o600)
    pair.standby.restart()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if pair.primary.sql("SELECT state FROM pg_stat_replication WHERE application_name = 'db-2'") == [("streaming",)]:
            return
        time.sleep(0.05)
    raise ClusterError("standby did not stream within 20 s:\n" + pair.standby.log_since(0)[-3000:])


def ro_view(kong_conf: str, *, resolve: dict[str, str]) -> str:
    """The kong.conf Kong's read-only connector effectively uses: each pg_ro_X replaces pg_X (Kong's
    conf_loader inherits the rest), with `resolve` standing in for DNS (like libpq's hostaddr)."""
    lines = kong_conf.splitlines()
    ro = {}
    for ln in lines:
        m = re.match(r"\s*pg_ro_(\w+)\s*=\s*(.*?)\s*$", ln)
        if m:
            ro[m.group(1)] = resolve.get(m.group(2), m.group(2))
    assert ro, "no pg_ro_* key in the rendered kong.conf"
    out = [ln for ln in lines if not re.match(rf"\s*pg_(ro_\w+|{'|'.join(ro)})\s*=", ln)]
    return "\n".join(out + [f"pg_{k} = {v}" for k, v in ro.items()]) + "\n"


def resolved(kong_conf: str, key: str, address: str) -> str:
    """kong.conf with `key`'s DNS name replaced by `address`: the test has no DNS (like libpq's hostaddr)."""
    out, n = re.subn(rf"(?m)^{re.escape(key)} = .*$", f"{key} = {address}", kong_conf)
    assert n == 1, f"{key} is not in the rendered kong.conf once"
    return out


PGBOUNCER = "/usr/sbin/pgbouncer"


class Pgbouncer:
    """Debian's pgbouncer as the postgres user (it refuses root), from a rendered pgbouncer.ini.

    The fixture appends only what is this test machine's (listen address and port, log, pid,
    socket directory, short waits); TLS and auth settings are the rendered ones."""

    def __init__(self, base: Path, name: str, rendered: str, userlist_path: Path, extra: tuple[str, ...] = ()) -> None:
        from .pg import free_port

        self.dir = mkdir_owned(base / name)
        self.port = free_port()
        self.log = self.dir / "pgbouncer.log"
        self.pid = self.dir / "pgbouncer.pid"
        userline = re.search(r'^; ("[^"]*" "[^"]*")$', rendered, re.M)
        assert userline, "the rendered pgbouncer.ini names no auth_file line"
        write_owned(userlist_path, (userline.group(1) + "\n").encode(), 0o600)
        local = [f"listen_addr = {HOST}", f"listen_port = {self.port}", f"unix_socket_dir = {self.dir}",
                 f"logfile = {self.log}", f"pidfile = {self.pid}", "server_login_retry = 1", *extra]
        self.ini = self.dir / "pgbouncer.ini"
        write_owned(self.ini, (rendered + "\n; --- realstack fixture: this machine's own settings\n"
                               + "\n".join(local) + "\n").encode(), 0o600)
        res = subprocess.run(["runuser", "-u", PG_USER, "--", PGBOUNCER, "-d", str(self.ini)], capture_output=True,
                             text=True, timeout=30)
        if res.returncode != 0:
            raise ClusterError(f"pgbouncer did not start: {res.stderr}\n{self.log_text()}")
        deadline = time.monotonic() + 10
        import socket

        while True:
            try:
                socket.create_connection((HOST, self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise ClusterError(f"pgbouncer not listening:\n{self.log_text()}") from None
                time.sleep(0.02)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        import os
        import signal

        try:
            pid = int(self.pid.read_text().strip())
        except (OSError, ValueError):
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.02)
