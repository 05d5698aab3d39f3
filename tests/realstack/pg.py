"""A throwaway PostgreSQL 15 cluster whose TLS settings come only from `pgkongtls render`.

PostgreSQL refuses to run as root, so every server-side step (initdb, pg_ctl)
runs as the `postgres` user through `runuser`, on directories owned by it.
One cluster serves a whole session: `apply()` swaps the PKI and the rendered
snippets in, then `reload()` runs `pg_reload_conf()` and proves the postmaster
took the new files (PostgreSQL only logs a failed reload, it never raises).

Layout under the cluster's directory (owned by postgres, mode 0700):
    data/                 the data directory; postgresql.conf ends with
                          `include 'pgkongtls.conf'`, which holds EXACTLY the
                          rendered `render postgres` output
    sock/                 unix socket directory (superuser set-up connections)
    ssl/<pki dir name>/   the PKI files as the database host would hold them
    server.log            pg_ctl -l
"""

from __future__ import annotations

import itertools
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

if TYPE_CHECKING:
    from .pkis import Pki

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_USER = "postgres"
HOST = "127.0.0.1"
#: The pg_hba.conf line the fixtures add for set-up: the superuser over the unix socket only.
SETUP_HBA_LINE = "local all postgres trust"
#: Set for every role the fixtures create, so `--auth scram` has something to check.
DEFAULT_PASSWORD = "kong-test-password"

#: initdb's own pg_hba.conf for a deployed cluster: the broad host lines stay, as on a real server.
INITDB_AUTH = ("--auth-local=trust", "--auth-host=scram-sha-256")
_BUNDLES = itertools.count()

#: Postmaster log lines that mean a reload (or a start) did not take the files we wrote.
_RELOAD_FAILURES = re.compile(
    r"(was not reloaded|contains errors|could not load|FATAL:|invalid value for parameter"
    r"|unrecognized configuration parameter)"
)


def cli_stderr(*args: str, cwd: Path | None = None) -> str:
    """`python -m pgkongtls ARGS` for commands that talk to people: their stderr, or CliError."""
    from .pkis import CliError

    res = subprocess.run([sys.executable, "-m", "pgkongtls", *args], capture_output=True, text=True, timeout=120,
                         cwd=cwd)
    if res.returncode != 0:
        raise CliError(f"pgkongtls {' '.join(args)} exited {res.returncode}: {res.stderr.strip()}")
    return res.stderr


class ClusterError(RuntimeError):
    """A start, stop or reload did not do what was asked; the message carries the server log."""


def free_port() -> int:
    """A loopback port that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _postgres_ids() -> tuple[int, int]:
    pw = pwd.getpwnam(PG_USER)
    return pw.pw_uid, pw.pw_gid


def as_postgres(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run one PostgreSQL binary as the postgres user (it refuses root)."""
    return subprocess.run(
        ["runuser", "-u", PG_USER, "--", *args], capture_output=True, text=True, check=check, timeout=timeout,
    )


def write_owned(path: Path, data: bytes, mode: int) -> None:
    """Create or replace a file owned by postgres, with its final mode from the first byte."""
    uid, gid = _postgres_ids()
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)
    os.replace(tmp, path)


def mkdir_owned(path: Path, mode: int = 0o700) -> Path:
    """A directory owned by postgres (parents must already be traversable by it)."""
    uid, gid = _postgres_ids()
    path.mkdir(mode=mode, exist_ok=True)
    os.chown(path, uid, gid)
    os.chmod(path, mode)
    return path


@dataclass(frozen=True)
class Applied:
    """What `Cluster.apply` put in place: the rendered texts and where the PKI files went."""

    key: tuple[Any, ...]
    pg_dir: Path
    postgres_conf: str
    hba: str
    ident: str


class Cluster:
    """One PostgreSQL 15 cluster on 127.0.0.1:`port`; `stop()` is safe to call at any time.

    With `deployed=True` the cluster keeps the pg_hba.conf and pg_ident.conf initdb wrote
    (`host all all 127.0.0.1/32 scram-sha-256` included), its ssl directory `ssl-deployed/`
    belongs to postgres, and `apply`/`deploy` go through `pgkongtls bundle postgres` +
    `pgkongtls install --reload`: the harness copies no certificate and writes no TLS setting.
    """

    def __init__(self, base: Path, *, name: str = "pg", deployed: bool = False) -> None:
        self.dir = mkdir_owned(base / name)
        self.data_dir = self.dir / "data"
        self.socket_dir = mkdir_owned(self.dir / "sock")
        self.ssl_root = mkdir_owned(self.dir / "ssl", 0o755)
        self.log_file = self.dir / "server.log"
        self.port = free_port()
        self.applied: Applied | None = None
        self._running = False
        self.deployed = deployed
        auth = INITDB_AUTH if deployed else ("--auth=trust",)
        as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data_dir), *auth, "--no-sync",
                    "-U", PG_USER, "--encoding=UTF8", "--locale=C")
        write_owned(self.log_file, b"", 0o600)
        self._base_conf = (self.data_dir / "postgresql.conf").read_text()
        self.initdb_hba = (self.data_dir / "pg_hba.conf").read_text()
        self.initdb_ident = (self.data_dir / "pg_ident.conf").read_text()
        self.deploy_ssl_dir = mkdir_owned(self.dir / "ssl-deployed") if deployed else None
        self._hand_written = False
        if deployed:
            self._write_main_conf()
        else:
            self.write_config(postgres_conf="", hba="", ident="")

    # ---- configuration files -------------------------------------------------
    def _main_conf(self) -> str:
        return self._base_conf + "\n".join([
            "",
            "# --- realstack fixture: this cluster's own settings",
            f"listen_addresses = '{HOST}'",
            f"port = {self.port}",
            f"unix_socket_directories = '{self.socket_dir}'",
            "fsync = off",
            "full_page_writes = off",
            "max_connections = 30",
            "shared_buffers = 16MB",
            "log_connections = on",
            *([] if self.deployed and not self._hand_written else [
                "# --- exactly the output of `pgkongtls render postgres`", "include 'pgkongtls.conf'"]),
            "",
        ])

    def _write_main_conf(self) -> None:
        write_owned(self.data_dir / "postgresql.conf", self._main_conf().encode(), 0o600)

    def write_config(self, *, postgres_conf: str, hba: str, ident: str) -> None:
        """Write the three files verbatim (hba gets the one set-up line first); no reload.

        Use this directly only for configs that did not come from `apply` (e.g. the
        source document's own files, or a line PostgreSQL is expected to refuse).
        """
        self.applied = None
        self._hand_written = True
        self._write_main_conf()
        write_owned(self.data_dir / "pgkongtls.conf", postgres_conf.encode(), 0o600)
        hba_text = f"# realstack fixture: superuser set-up over the unix socket\n{SETUP_HBA_LINE}\n{hba}"
        write_owned(self.data_dir / "pg_hba.conf", hba_text.encode(), 0o600)
        write_owned(self.data_dir / "pg_ident.conf", ident.encode(), 0o600)

    def configure(self, *, postgres_conf: str, hba: str, ident: str) -> None:
        """`write_config`, then reload (or start, when the server is down) and prove it took."""
        self.write_config(postgres_conf=postgres_conf, hba=hba, ident=ident)
        if self._running:
            self.reload()
        else:
            self.start()

    def install_files(self, name: str, files: dict[str, Path]) -> Path:
        """Copy PKI files to ssl/<name>/ as the database host holds them: owned by postgres,
        keys (`*.key`) 0600 as the rendered comment prescribes, certificates 0644."""
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name.startswith("."):
            raise ValueError(f"install_files: {name!r} is not a plain directory name")
        target = mkdir_owned(self.ssl_root / name, 0o755)
        for name, src in files.items():
            write_owned(target / name, src.read_bytes(), 0o600 if name.endswith(".key") else 0o644)
        return target

    def apply(self, pki: Pki, *, auth: str = "cert", edition: str = "enterprise", min_tls: str = "TLSv1.2",
              user: str | None = None, hba_args: tuple[str, ...] = (), server: str = "server",
              postgres_args: tuple[str, ...] = ()) -> Applied:
        """Serve `pki` with snippets rendered by the real CLI, then reload.

        postgresql.conf includes exactly `render postgres --pg-dir <ssl dir> [postgres_args]`, pg_hba.conf is
        exactly `render hba --auth AUTH --edition EDITION [--user USER] [hba_args]` after the set-up
        line, and pg_ident.conf is exactly `render ident [--user USER]`. A no-op when that exact
        set-up is already live.
        """
        if self.deployed:
            if hba_args or postgres_args or user not in (None, pki.manifest.db_user):
                raise ValueError("a deployed cluster takes what `bundle postgres` renders: "
                                 "no hba_args, no postgres_args, no other user")
            return self.deploy(pki, auth=auth, edition=edition, min_tls=min_tls, server=server)
        key = (str(pki.dir), pki.state, auth, edition, min_tls, user, hba_args, server, postgres_args)
        if self.applied is not None and self.applied.key == key and self._running:
            return self.applied
        pg_dir = self.install_files(pki.dir.name, pki.server_side_files())
        pg_args = ["--pg-dir", str(pg_dir), "--min-tls", min_tls, *postgres_args]
        if server != "server":
            pg_args += ["--server", server]
        conf = pki.render("postgres", *pg_args)
        user_args = ("--user", user) if user else ()
        hba = pki.render("hba", "--auth", auth, "--edition", edition, *user_args, *hba_args)
        ident = pki.render("ident", *user_args)
        self.configure(postgres_conf=conf, hba=hba, ident=ident)
        self.applied = Applied(key=key, pg_dir=pg_dir, postgres_conf=conf, hba=hba, ident=ident)
        return self.applied

    def _back_to_initdb(self) -> None:
        """After hand-written files (configure/write_config): initdb's own files again, which
        `install` then edits; the harness file pgkongtls.conf goes, since install owns that name."""
        self._hand_written = False
        self._write_main_conf()
        write_owned(self.data_dir / "pg_hba.conf", self.initdb_hba.encode(), 0o600)
        write_owned(self.data_dir / "pg_ident.conf", self.initdb_ident.encode(), 0o600)
        (self.data_dir / "pgkongtls.conf").unlink(missing_ok=True)

    def bundle(self, pki: Pki, *args: str) -> Path:
        """`pgkongtls bundle postgres --dir PKI --out <new dir> --ssl-dir <this cluster's> ARGS`.

        It records that ssl dir and the data directory as the PKI's postgres deploy paths (what
        `render postgres` and the hints then use); every harness render passes --pg-dir, so a shared
        PKI renders as before."""
        from .pkis import cli

        assert self.deploy_ssl_dir is not None, "bundle/install need Cluster(deployed=True)"
        out = self.dir.parent / f"bundle-{self.dir.name}-{next(_BUNDLES)}"
        cli("bundle", "postgres", "--dir", str(pki.dir), "--out", str(out), "--ssl-dir", str(self.deploy_ssl_dir),
            "--pg-conf-dir", str(self.data_dir), *args)
        return out

    def install(self, bundle: Path, *args: str) -> str:
        """`pgkongtls install BUNDLE --pg-conf-dir <data dir> --pg-log <server.log> [--reload] ARGS`;
        reloads when the server runs, else starts it. Returns install's stderr."""
        reload = ["--reload"] if self._running else []
        res = cli_stderr("install", str(bundle), "--pg-conf-dir", str(self.data_dir), "--pg-log", str(self.log_file),
                      *reload, *args)
        self.applied = None
        if not self._running:
            self.start()
        return res

    def deploy(self, pki: Pki, *, auth: str = "cert", edition: str = "enterprise", min_tls: str = "TLSv1.2",
               server: str = "server") -> Applied:
        """bundle + install --reload through the real CLI; a no-op when that exact set-up is live."""
        key = ("deployed", str(pki.dir), pki.state, auth, edition, min_tls, server)
        if self.applied is not None and self.applied.key == key and self._running:
            return self.applied
        if self._hand_written:
            self._back_to_initdb()
        out = self.bundle(pki, "--auth", auth, "--edition", edition, "--min-tls", min_tls, "--server", server)
        self.install(out)
        self._check_file_errors()
        assert self.deploy_ssl_dir is not None
        self.applied = Applied(key=key, pg_dir=self.deploy_ssl_dir,
                               postgres_conf=(out / "pgkongtls.conf").read_text(),
                               hba=(out / "pg_hba.conf.snippet").read_text(),
                               ident=(out / "pg_ident.conf.snippet").read_text())
        return self.applied

    # ---- process control -----------------------------------------------------
    def start(self) -> None:
        """pg_ctl -w start; raises ClusterError with the log lines it wrote when it will not start."""
        mark = self.log_mark()
        for _attempt in range(3):
            res = as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_file),
                              "-w", "-t", "30", "start", check=False)
            if res.returncode == 0:
                self._running = True
                self._check_file_errors()
                return
            log = self.log_since(mark)
            if "could not bind" in log or "Address already in use" in log:
                self.port = free_port()  # another process took the port: pick a fresh one
                self._write_main_conf()
                mark = self.log_mark()
                continue
            break
        raise ClusterError(f"PostgreSQL did not start:\n{res.stdout}{res.stderr}\n--- server.log:\n{self.log_since(mark)}")

    def stop(self) -> None:
        """pg_ctl stop -m fast when the server is up (finalizers call this unconditionally)."""
        if (self.data_dir / "postmaster.pid").exists():
            as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-w", "-t", "30", "stop", "-m", "fast",
                        check=False)
        self._running = False

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self._running

    # ---- SQL as the superuser over the unix socket ---------------------------
    def connect(self, dbname: str = "postgres") -> psycopg.Connection[Any]:
        return psycopg.connect(host=str(self.socket_dir), port=self.port, user=PG_USER, dbname=dbname,
                               autocommit=True, connect_timeout=10)

    def sql(self, query: str, params: tuple[Any, ...] | None = None, *, dbname: str = "postgres") -> list[tuple[Any, ...]]:
        """Run one statement as the superuser; returns its rows ([] when it returns none)."""
        with self.connect(dbname) as conn:
            cur = conn.execute(query, params)  # type: ignore[arg-type]
            return list(cur.fetchall()) if cur.description else []

    def ensure_role(self, name: str, password: str | None = DEFAULT_PASSWORD) -> None:
        """A LOGIN role, with a SCRAM password (None removes the password)."""
        with self.connect() as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
            ident = psycopg.sql.Identifier(name)
            if not exists:
                conn.execute(psycopg.sql.SQL("CREATE ROLE {} LOGIN").format(ident))
            conn.execute("SET password_encryption = 'scram-sha-256'")
            conn.execute(psycopg.sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                ident, psycopg.sql.Literal(password) if password is not None else psycopg.sql.SQL("NULL")))

    # ---- reload ----------------------------------------------------------------
    def reload(self) -> None:
        """pg_reload_conf(), wait until the postmaster has re-read the files, and prove it took them.

        The postmaster handles SIGHUP (config, hba, ident, SSL context) before it forks
        another backend, so a fresh connection that sees a newer pg_conf_load_time()
        sees the whole reload. Raises ClusterError with PostgreSQL's own words otherwise.
        """
        mark = self.log_mark()
        with self.connect() as conn:
            before = conn.execute("SELECT pg_conf_load_time()").fetchone()[0]  # type: ignore[index]
            conn.execute("SELECT pg_reload_conf()")
        deadline = time.monotonic() + 15
        while True:
            with self.connect() as conn:
                now = conn.execute("SELECT pg_conf_load_time()").fetchone()[0]  # type: ignore[index]
            if now > before:
                break
            if time.monotonic() > deadline:
                raise ClusterError(f"reload not seen within 15 s\n--- server.log:\n{self.log_since(mark)}")
            time.sleep(0.02)
        self._check_file_errors()
        bad = [ln for ln in self.postmaster_log(mark) if _RELOAD_FAILURES.search(ln)]
        if bad:
            raise ClusterError("PostgreSQL did not take the new configuration:\n" + "\n".join(bad))

    def _check_file_errors(self) -> None:
        """Errors PostgreSQL finds in the files on disk (the same parser the reload uses)."""
        errors: list[str] = []
        with self.connect() as conn:
            for view, cols in (("pg_file_settings", "sourcefile, sourceline, name"),
                               ("pg_hba_file_rules", "line_number"),
                               ("pg_ident_file_mappings", "line_number")):
                rows = conn.execute(f"SELECT {cols}, error FROM {view} WHERE error IS NOT NULL").fetchall()
                errors += [f"{view}: {' '.join(map(str, r))}" for r in rows]
        if errors:
            raise ClusterError("PostgreSQL refuses the configuration files:\n" + "\n".join(errors))

    # ---- server log ----------------------------------------------------------------
    def log_mark(self) -> int:
        """An offset into server.log; pass it to `log_since` to read only what came after."""
        return self.log_file.stat().st_size if self.log_file.exists() else 0

    def log_since(self, mark: int) -> str:
        with self.log_file.open("rb") as f:
            f.seek(mark)
            return f.read().decode(errors="replace")

    def postmaster_log(self, mark: int) -> list[str]:
        """The postmaster's own lines after `mark`: reload results, not some client's FATAL."""
        pid = (self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0].strip()
        return [ln for ln in self.log_since(mark).splitlines() if f" [{pid}] " in ln]

    def wait_log(self, mark: int, pattern: str, timeout: float = 5) -> str:
        """The log text after `mark` once `pattern` (a regex) shows up; the server logs asynchronously."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_since(mark)
            if re.search(pattern, text) or time.monotonic() > deadline:
                return text
            time.sleep(0.02)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

