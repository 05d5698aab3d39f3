"""`install --reload`: reload PostgreSQL and report what it refused, one line per problem.

Why `pg_ctl reload` and not `SELECT pg_reload_conf()`: pg_ctl signals the postmaster
found through postmaster.pid, so it needs no login (the block just installed at the
top of pg_hba.conf cannot lock it out) and works the same on a Debian cluster
(data directory from postgresql.conf's `data_directory`) and an initdb one (the
config directory is the data directory). It runs as the server's OS user, since
pg_ctl refuses root. PostgreSQL never fails a reload loudly, so afterwards psql
(as that user, over the socket in postmaster.pid) waits for the new
pg_conf_load_time(), reads the error views, the log, and a TLS handshake shows
whether the new certificate is really served.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import re
import socket
import ssl
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from pgkongtls import fsio
from pgkongtls import install as ins
from pgkongtls.consumers import PG_FILE_ERROR_VIEWS, PG_RELOAD_FAILURE_PATTERNS
from pgkongtls.errors import StateError

_SSL_REQUEST = struct.pack("!ii", 8, 80877103)
_DEBIAN_CONF = re.compile(r"/etc/postgresql/([0-9.]+)/([^/]+)")


@dataclass(frozen=True)
class Server:
    """A running cluster as postmaster.pid describes it."""

    data_dir: Path
    port: int
    socket_dir: str
    listen: str
    bin_dir: Path


def find(conf_dir: Path) -> Server:
    conf = fsio.read_text(conf_dir / "postgresql.conf") or ""
    data_dir = Path(ins.pg_setting(conf, "data_directory") or conf_dir)
    pid = fsio.read_text(data_dir / "postmaster.pid")
    if pid is None:
        raise StateError(f"PostgreSQL is not running from {data_dir} (no postmaster.pid); start it, or leave out --reload")
    lines = pid.splitlines() + [""] * 8
    version = (fsio.read_text(data_dir / "PG_VERSION") or "").strip()
    bin_dir = Path(f"/usr/lib/postgresql/{version}/bin")
    if not (bin_dir / "pg_ctl").exists():
        found = [Path(d) for d in os.get_exec_path() if os.access(Path(d) / "pg_ctl", os.X_OK)]
        if not found:
            raise StateError("pg_ctl is not on PATH; install PostgreSQL's server binaries or reload by hand")
        bin_dir = found[0]
    return Server(data_dir, int(lines[3] or 5432), lines[4].strip(), lines[5].strip(), bin_dir)


def _as(os_user: str, argv: list[str]) -> subprocess.CompletedProcess[str]:
    if pwd.getpwuid(os.geteuid()).pw_name != os_user:
        argv = ["runuser", "-u", os_user, "--", *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def _psql(s: Server, os_user: str, query: str) -> list[str]:
    host = s.socket_dir or (s.listen if s.listen not in ("", "*") else "127.0.0.1")
    res = _as(os_user, [str(s.bin_dir / "psql"), "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1",
                        "-h", host, "-p", str(s.port), "-d", "postgres", "-c", query])
    if res.returncode != 0:
        last = res.stderr.strip().splitlines()[-1] if res.stderr.strip() else f"exit {res.returncode}"
        raise StateError(f"psql as {os_user} failed: {last}")
    return [ln for ln in res.stdout.splitlines() if ln]


def log_file(conf_dir: Path, s: Server, os_user: str, given: Path | None) -> Path | None:
    """--pg-log, else the logging collector's current file, else Debian's per-cluster log."""
    if given is not None:
        return given
    current = _psql(s, os_user, "SELECT pg_current_logfile()")
    if current:
        return s.data_dir / current[0]
    m = _DEBIAN_CONF.fullmatch(str(conf_dir).rstrip("/"))
    return Path(f"/var/log/postgresql/postgresql-{m.group(1)}-{m.group(2)}.log") if m else None


def served_sha256(host: str, port: int, timeout: float = 10) -> str | None:
    """SHA-256 of the leaf certificate the server sends now; None when it does not do TLS."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(_SSL_REQUEST)
        if sock.recv(1) != b"S":
            return None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        with ctx.wrap_socket(sock) as tls:
            der = tls.getpeercert(binary_form=True)
            try:
                tls.unwrap()  # close_notify, then EOF: PostgreSQL logs nothing (a reset would be logged)
            except (OSError, ssl.SSLError):
                pass
    return hashlib.sha256(der).hexdigest() if der else None


def reload(conf_dir: Path, os_user: str, *, server_cert_sha256: str | None, pg_log: Path | None = None,
           timeout: float = 15) -> list[str]:
    """Reload and return PostgreSQL's complaints, one line each ([] when it took everything)."""
    s = find(conf_dir)
    log = log_file(conf_dir, s, os_user, pg_log)
    mark = fsio.log_size(log) if log else 0
    before = _psql(s, os_user, "SELECT pg_conf_load_time()")
    res = _as(os_user, [str(s.bin_dir / "pg_ctl"), "reload", "-D", str(s.data_dir)])
    if res.returncode != 0:
        return [f"pg_ctl reload failed: {(res.stderr or res.stdout).strip()}"]
    deadline = time.monotonic() + timeout
    while _psql(s, os_user, "SELECT pg_conf_load_time()") == before:
        if time.monotonic() > deadline:
            return [f"PostgreSQL did not reload within {timeout:.0f} s; see its log"]
        time.sleep(0.05)
    errors = [line for view, expr in PG_FILE_ERROR_VIEWS
              for line in _psql(s, os_user, f"SELECT '{view}: ' || {expr} FROM {view} WHERE error IS NOT NULL")]
    if log is not None:
        errors += [f"server log: {ln.strip()}" for ln in fsio.read_log_since(log, mark).splitlines()
                   if any(p in ln for p in PG_RELOAD_FAILURE_PATTERNS)]
    if server_cert_sha256 and s.listen:
        host = "127.0.0.1" if s.listen in ("*", "0.0.0.0") else "::1" if s.listen == "::" else s.listen
        served = served_sha256(host, s.port)
        if served != server_cert_sha256:
            errors.append(f"PostgreSQL on {host}:{s.port} still serves another certificate: the SSL "
                          "configuration was not reloaded (the log says why)")
    return errors
