"""A Kong-equivalent PostgreSQL client: Kong's two connection paths, configured from kong.conf text.

Kong connects to PostgreSQL twice, in two ways (FACTS.md, "Kong's real driver"):
  - at start-up, in the master (root), through LuaSocket + LuaSec with
    `protocol = pg_ssl_version` and `cafile` = the combined trust file, and no verify depth
    (`kong_startup.lua`, run by Debian's lua5.1 with lua-socket, lua-sec and lua-luaossl);
  - at runtime, in the nginx workers (user `kong`), through cosockets with the
    `lua_ssl_*` directives, reading pg_ssl_cert/pg_ssl_cert_key for every new connection
    (`kongpg.lua`).
Both share pgmoon's PostgreSQL side (`pgwire.lua`). `connect()` runs both and returns a
`KongRun`: Kong's verdict is OK only when both paths authenticate (Kong that cannot make its
start-up connection does not start).

`translate()` reads kong.conf the way Kong's conf_loader does; `KongEquivalent` runs one nginx
(foreground, `daemon off`, loopback HTTP port) with one `location` per distinct translated
config. A new config restarts nginx once; configs already seen cost one HTTP request.
`deploy()` puts a PKI's Kong-side files where a Kong host would have them, owned and
moded as `render kong` says.
"""

from __future__ import annotations

import ctypes
import dataclasses
import grp
import os
import pwd
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from pgkongtls import render

from .kongconf import (
    SYSTEM_BUNDLES,
    KongConfError,
    KongSettings,
    combine_trusted,
    parse_kong_conf,
    replace_setting,
    translate,
)
from .pg import HOST, free_port
from .pkis import Pki

NGINX = "/usr/sbin/nginx"
MODULES = ("/usr/lib/nginx/modules/ndk_http_module.so", "/usr/lib/nginx/modules/ngx_http_lua_module.so")
LUA = "/usr/bin/lua5.1"
LUA_DIR = Path(__file__).resolve().parent
STARTUP = LUA_DIR / "kong_startup.lua"
#: nginx_user in Kong's defaults: the workers run as this user and group.
KONG_USER = "kong"
__all__ = ["SYSTEM_BUNDLES", "KongConfError", "KongSettings", "combine_trusted", "parse_kong_conf",
           "replace_setting", "translate"]  # re-exported from .kongconf: the tests' one import point


def ensure_kong_user() -> None:
    """The unprivileged `kong` user and group Kong's packages create (nginx_user `kong kong`); idempotent."""
    try:
        pwd.getpwnam(KONG_USER)
        grp.getgrnam(KONG_USER)
        return
    except KeyError:
        pass
    res = subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                          "--shell", "/usr/sbin/nologin", KONG_USER], capture_output=True, text=True)
    if res.returncode not in (0, 9):  # 9: it exists (another run made it meanwhile)
        raise RuntimeError(f"useradd {KONG_USER} failed: {res.stderr.strip()}")


@dataclass(frozen=True)
class KongResult:
    """One connection attempt through one path. `ok` is True only when AuthenticationOk arrived."""

    ok: bool
    stage: str         # connect | sslrequest | setclientcert | tls | startup | auth | query | authenticated
    message: str       # pgmoon's own text (e.g. "authentication exchange unsuccessful", "FATAL: ...")
    path: str = "runtime"  # startup (LuaSocket + LuaSec, root) | runtime (cosocket, worker as kong)
    ssl: bool | None = None
    tls_version: str | None = None
    client_dn: str | None = None
    user: str | None = None
    mechanism: str | None = None     # the SASL mechanism used, e.g. SCRAM-SHA-256-PLUS
    server_error: str | None = None  # the SQLSTATE of PostgreSQL's ErrorResponse, when one came
    error_log: str = ""  # what nginx logged during this attempt (e.g. the certificate verify error)

    @property
    def verify_error(self) -> str | None:
        """OpenSSL's reason when nginx logged a failed certificate check, e.g. '20: unable to get ...'."""
        m = re.search(r"certificate verify error: \((\d+: [^)]*)\)", self.error_log)
        return m.group(1) if m else None

    def __str__(self) -> str:
        return f"{'ok' if self.ok else 'refused'} at {self.stage}: {self.message}" + (
            f" [nginx: {self.verify_error}]" if self.verify_error else "")

    @classmethod
    def parse(cls, body: str, *, path: str, error_log: str = "") -> KongResult:
        fields = dict(line.split("=", 1) for line in body.splitlines() if "=" in line)
        result = cls(ok=fields.get("result") == "ok", stage=fields.get("stage", "?"),
                     message=fields.get("message", body), path=path, mechanism=fields.get("mechanism") or None,
                     server_error=fields.get("server_error") or None, error_log=error_log)
        if not fields.get("row"):
            return result
        ssl, version, dn, user = fields["row"].split("|")  # pg_stat_ssl as the server saw this session
        return dataclasses.replace(result, ssl=ssl == "true", tls_version=version or None, client_dn=dn or None,
                                   user=user)


@dataclass(frozen=True)
class KongRun:
    """Both of Kong's connections for one kong.conf. Kong works only when both authenticate:
    without its start-up connection Kong does not start; the runtime one serves every request."""

    startup: KongResult
    runtime: KongResult

    @property
    def ok(self) -> bool:
        return self.startup.ok and self.runtime.ok

    @property
    def starts(self) -> bool:
        return self.startup.ok

    # What the session looked like, as the workers' connection saw it (the one that serves traffic).
    @property
    def stage(self) -> str:
        return self.runtime.stage

    @property
    def message(self) -> str:
        return self.runtime.message

    @property
    def ssl(self) -> bool | None:
        return self.runtime.ssl

    @property
    def tls_version(self) -> str | None:
        return self.runtime.tls_version

    @property
    def client_dn(self) -> str | None:
        return self.runtime.client_dn

    @property
    def user(self) -> str | None:
        return self.runtime.user

    @property
    def verify_error(self) -> str | None:
        return self.runtime.verify_error

    @property
    def error_log(self) -> str:
        return self.runtime.error_log

    def __str__(self) -> str:
        return f"start-up {self.startup}; runtime {self.runtime}"


@dataclass(frozen=True)
class Deployed:
    """A PKI's Kong-side files on the "Kong host", and `render kong --kong-dir <there>` for them."""

    conf: str
    dir: Path
    client_cert: Path
    client_key: Path
    key_owner: str   # user:group the rendered comment prescribes
    key_mode: int


#: `render kong`'s ownership instruction for the client key (the first one is the recommended one).
_CHOWN = re.compile(r"^#\s+chown (\S+):(\S+) (\S+) && chmod (0[0-7]{3}) \3$", re.M)


def _lua_str(value: str) -> str:
    """A Lua 5.1 string literal: printable ASCII kept, everything else as a decimal escape."""
    return '"' + "".join(
        c if 32 <= ord(c) < 127 and c not in '"\\' else "".join(f"\\{b}" for b in c.encode())
        for c in value
    ) + '"'


def _lua_settings(s: KongSettings, cafile: Path | None) -> str:
    fields = [f"host = {_lua_str(s.pg_host)}", f"ssl = {str(s.pg_ssl).lower()}",
              f"required = {str(s.pg_ssl_required).lower()}", f"verify = {str(s.pg_ssl_verify).lower()}",
              f"protocol = {_lua_str(s.pg_ssl_version)}"]
    if cafile is not None:
        fields.append(f"cafile = {_lua_str(str(cafile))}")
    if s.pg_ssl_cert:
        fields += [f"cert_file = {_lua_str(s.pg_ssl_cert)}", f"key_file = {_lua_str(s.pg_ssl_cert_key or '')}"]
    return "{ " + ", ".join(fields) + " }"


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM nginx if pytest dies without running its finalizers."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class KongEquivalent:
    """One nginx serving /k/<n> per translated kong.conf, plus the start-up path; `stop()` is safe at any time."""

    def __init__(self, base: Path) -> None:
        self.prefix = base / "kong"
        for sub in ("conf", "logs", "ca", "startup"):
            (self.prefix / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.prefix, 0o755)
        self.files = base / "kong-files"  # the "Kong host": where deploy() puts a PKI's Kong-side files
        self.files.mkdir(exist_ok=True)
        os.chmod(self.files, 0o755)
        self.error_log = self.prefix / "logs" / "error.log"
        self.error_log.touch()
        self.port = free_port()
        self._ids: dict[KongSettings, int] = {}
        self._proc: subprocess.Popen[bytes] | None = None

    def deploy(self, pki: Pki, *render_args: str) -> Deployed:
        """Copy `pki`'s Kong-side files (certificates, CA chain, client keys) to the Kong host, give the
        client keys the owner and mode `render kong --kong-dir <there>` prescribes, and return that kong.conf.
        Re-copies on every call, so a renewed PKI is deployed as it is now. Open-source Kong has no key:
        its render names no owner, and no key is copied."""
        m = pki.manifest
        where = self.files / pki.dir.name
        where.mkdir(exist_ok=True)
        os.chmod(where, 0o755)
        conf = pki.render("kong", "--kong-dir", str(where), *render_args)
        settings = parse_kong_conf(conf)
        found = _CHOWN.search(conf)
        if found is None and "pg_ssl_cert_key" in settings:
            raise RuntimeError(f"`render kong` says nothing about who must own the client key:\n{conf}")
        owner, mode = (f"{found.group(1)}:{found.group(2)}", int(found.group(4), 8)) if found else ("", 0)
        for e in m.certificates.values():
            shutil.copyfile(pki.path(e.file), where / e.file)
            os.chmod(where / e.file, 0o644)
            if e.role == "client" and found:
                uid, gid = pwd.getpwnam(found.group(1)).pw_uid, grp.getgrnam(found.group(2)).gr_gid
                _write_key(where / e.key_file, pki.path(e.key_file).read_bytes(), uid, gid, mode)
        trust = render.trust_file_for_clients(m)
        shutil.copyfile(pki.path(trust), where / trust)
        os.chmod(where / trust, 0o644)
        client = m.certificates["client"]
        return Deployed(conf=conf, dir=where, client_cert=Path(settings.get("pg_ssl_cert", where / client.file)),
                        client_key=Path(settings.get("pg_ssl_cert_key", where / client.key_file)),
                        key_owner=owner, key_mode=mode)

    def install_client(self, d: Deployed, cert: Path, key: Path) -> tuple[Path, Path]:
        """Another client certificate (e.g. one minted by a test) beside a deployment, its key owned and
        moded as that deployment's: so a refusal comes from PostgreSQL, not from Kong's workers."""
        owner, group = d.key_owner.split(":")
        shutil.copyfile(cert, d.dir / cert.name)
        os.chmod(d.dir / cert.name, 0o644)
        _write_key(d.dir / key.name, key.read_bytes(), pwd.getpwnam(owner).pw_uid, grp.getgrnam(group).gr_gid,
                   d.key_mode)
        return d.dir / cert.name, d.dir / key.name

    def connect(self, kong_conf: str, *, port: int, user: str = "kong", password: str | None = None,
                database: str = "postgres", edition: str = "enterprise") -> KongRun:
        """Connect to PostgreSQL on 127.0.0.1:`port` exactly as Kong configured by `kong_conf` would,
        once at start-up and once in a worker."""
        settings = translate(kong_conf, edition=edition)
        if settings not in self._ids:
            self._ids[settings] = len(self._ids) + 1
            self._restart()
        i = self._ids[settings]
        return KongRun(startup=self._startup(i, port=port, user=user, password=password, database=database),
                       runtime=self._runtime(i, port=port, user=user, password=password, database=database))

    def _startup(self, i: int, *, port: int, user: str, password: str | None, database: str) -> KongResult:
        cmd = [LUA, str(STARTUP), str(self.prefix / "startup" / f"{i}.lua"), str(port), user, database]
        if password is not None:
            cmd.append(password)
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if "result=" not in res.stdout:
            raise RuntimeError(f"kong_startup.lua gave no result (exit {res.returncode}): {res.stderr}")
        return KongResult.parse(res.stdout, path="startup")

    def _runtime(self, i: int, *, port: int, user: str, password: str | None, database: str) -> KongResult:
        args = {"port": str(port), "user": user, "database": database}
        if password is not None:
            args["password"] = password
        url = f"http://{HOST}:{self.port}/k/{i}?{urllib.parse.urlencode(args)}"
        mark = self.error_log.stat().st_size
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:
                body = resp.read().decode()
        except urllib.error.HTTPError as exc:  # a Lua error in kongpg.lua itself: show nginx's log
            raise RuntimeError(f"kongpg.lua failed ({exc}):\n{self._log_since(mark)}") from None
        return KongResult.parse(body, path="runtime", error_log=self._log_since(mark))

    def _log_since(self, mark: int) -> str:
        with self.error_log.open("rb") as f:
            f.seek(mark)
            return f.read().decode(errors="replace")

    def _nginx_conf(self) -> str:
        settings_lua = []
        locations = []
        for s, i in self._ids.items():
            ca = self.prefix / "ca" / f"{i}.ca_combined"  # Kong's <prefix>/.ca_combined
            ca.write_text(s.trusted_pem)
            cafile = ca if s.trusted_pem else None
            (self.prefix / "startup" / f"{i}.lua").write_text(f"return {_lua_settings(s, cafile)}\n")
            settings_lua.append(f"    [{i}] = {_lua_settings(s, None)}")
            trusted = f"        lua_ssl_trusted_certificate {ca};\n" if cafile else ""
            locations.append(
                f"    location = /k/{i} {{\n{trusted}"
                f"        lua_ssl_verify_depth {s.verify_depth};\n"
                f"        lua_ssl_protocols {s.protocols};\n"
                f"        content_by_lua_block {{ require(\"kongpg\").handler({i}) }}\n    }}\n"
            )
        return "\n".join([
            *(f"load_module {m};" for m in MODULES),
            "daemon off;",
            f"user {KONG_USER} {KONG_USER};  # Kong's nginx_user: the workers read pg_ssl_cert(_key) as this user",
            "worker_processes 1;",
            "error_log logs/error.log info;",
            "pid logs/nginx.pid;",
            "events { worker_connections 64; }",
            "http {",
            "    access_log off;",
            f"    lua_package_path \"{LUA_DIR}/?.lua;;\";",
            "    init_by_lua_block {",
            "  require(\"kongpg\").init({",
            ",\n".join(settings_lua),
            "  })",
            "    }",
            "    server {",
            f"    listen {HOST}:{self.port};",
            "    default_type text/plain;",
            "    location = /ping { return 200 \"pong\\n\"; }",
            "    location = /version { content_by_lua_block { ngx.say(ngx.config.ngx_lua_version) } }",
            *locations,
            "    }",
            "}",
            "",
        ])

    def restart(self) -> None:
        """`kong restart`: new workers, which read the trust file and the client certificate again."""
        self._restart()

    def _restart(self) -> None:
        self.stop()
        (self.prefix / "conf" / "nginx.conf").write_text(self._nginx_conf())
        mark = self.error_log.stat().st_size
        self._proc = subprocess.Popen(
            [NGINX, "-p", f"{self.prefix}/", "-c", "conf/nginx.conf", "-e", "logs/error.log"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + 15
        while True:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode() if self._proc.stderr else ""
                self._proc = None
                raise RuntimeError(f"nginx exited at start: {err}\n{self._log_since(mark)}")
            try:
                with urllib.request.urlopen(f"http://{HOST}:{self.port}/ping", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"nginx did not answer within 15 s\n{self._log_since(mark)}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Fast shutdown of the foreground master (and so its worker), waiting for it to exit."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        if self._proc.stderr:
            self._proc.stderr.close()
        self._proc = None

    def worker_user(self) -> str:
        """The user the running nginx worker has (read from /proc), to prove it is not root."""
        if self._proc is None:
            raise RuntimeError("nginx is not running")
        kids = Path(f"/proc/{self._proc.pid}/task/{self._proc.pid}/children").read_text().split()
        if not kids:
            raise RuntimeError("nginx has no worker process")
        uid = os.stat(f"/proc/{kids[0]}").st_uid
        return pwd.getpwuid(uid).pw_name

    def versions(self) -> dict[str, str]:
        """nginx (and the OpenSSL it runs with), lua-nginx-module, and the start-up path's Lua and LuaSec."""
        res = subprocess.run([NGINX, "-V"], capture_output=True, text=True, check=True)
        version = re.search(r"nginx/(\S+)", res.stderr)
        running = re.search(r"running with (OpenSSL [^)]*)", res.stderr)
        text = (version.group(1) if version else "?") + (f" (running with {running.group(1)})" if running else "")
        if self._proc is not None:
            with urllib.request.urlopen(f"http://{HOST}:{self.port}/version", timeout=5) as resp:
                n = int(resp.read().decode().strip())  # e.g. 10023 for 0.10.23
            text += f", lua-nginx-module {n // 1000000}.{n // 1000 % 1000}.{n % 1000}"
        lua = subprocess.run([LUA, "-e", 'local s = require "ssl"; local so = require "socket"; '
                              'print(_VERSION .. ", LuaSec " .. s._VERSION .. ", " .. so._VERSION)'],
                             capture_output=True, text=True)
        return {"nginx": text, "Kong start-up path": lua.stdout.strip() or lua.stderr.strip()}


def _write_key(path: Path, data: bytes, uid: int, gid: int, mode: int) -> None:
    """A key staged 0600 beside `path`, given its owner and mode, then renamed over it: never readable
    by anyone else, even for a moment."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    os.replace(tmp, path)
