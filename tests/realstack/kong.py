"""A Kong-equivalent PostgreSQL client: nginx + lua-nginx-module, configured from kong.conf text.

`translate()` reads kong.conf the way Kong's conf_loader does and turns it into
what Kong would put in its nginx template; `KongEquivalent` runs one nginx
(foreground, `daemon off`, loopback HTTP port) with one `location` per distinct
translated config, and `kongpg.lua` does pgmoon's connection sequence. A new
config restarts nginx once; configs already seen cost one HTTP request.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import re
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from pgkongtls.consumers import SYSTEM_BUNDLES

from .pg import HOST, free_port

NGINX = "/usr/sbin/nginx"
MODULES = ("/usr/lib/nginx/modules/ndk_http_module.so", "/usr/lib/nginx/modules/ngx_http_lua_module.so")
LUA_DIR = Path(__file__).resolve().parent
#: Kong's defaults for the keys this client reads (FACTS.md, "Kong").
DEFAULTS = {
    "pg_host": "127.0.0.1",
    "pg_ssl": "off",
    "pg_ssl_required": "off",
    "pg_ssl_verify": "off",
    "lua_ssl_trusted_certificate": "system",
    "lua_ssl_verify_depth": "1",
    "lua_ssl_protocols": "TLSv1.2 TLSv1.3",
}
ENTERPRISE_ONLY = ("pg_ssl_required", "pg_ssl_version", "pg_ssl_cert", "pg_ssl_cert_key")


class KongConfError(ValueError):
    """kong.conf text Kong itself would refuse (same wording where Kong has one)."""


def parse_kong_conf(text: str) -> dict[str, str]:
    """`key = value` lines; `#` starts a comment unless escaped as `\\#` (Kong's conf_loader)."""
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise KongConfError(f"not a 'key = value' line: {raw!r}")
        value = re.sub(r"\s*(?<!\\)#.*$", "", value).replace("\\#", "#").strip()
        out[key.strip().lower()] = value
    return out


def replace_setting(text: str, key: str, value: str) -> str:
    """kong.conf text with the one `key = ...` line changed to `key = value` (it must be there)."""
    lines = text.splitlines(keepends=True)
    hits = [i for i, ln in enumerate(lines) if re.match(rf"\s*{re.escape(key)}\s*=", ln)]
    if len(hits) != 1:
        raise KongConfError(f"{key} appears {len(hits)} times in the kong.conf text, expected once")
    lines[hits[0]] = f"{key} = {value}\n"
    return "".join(lines)


def _bool(conf: dict[str, str], key: str) -> bool:
    value = conf[key].lower()
    if value in ("on", "true"):
        return True
    if value in ("off", "false"):
        return False
    raise KongConfError(f"{key} must be a boolean (on/off/true/false), got {conf[key]!r}")


@dataclass(frozen=True)
class KongSettings:
    """What Kong derives from kong.conf for its PostgreSQL connection."""

    pg_host: str
    pg_ssl: bool
    pg_ssl_required: bool
    pg_ssl_verify: bool
    pg_ssl_cert: str | None
    pg_ssl_cert_key: str | None
    trusted_pem: str          # the combined lua_ssl_trusted_certificate file's contents
    verify_depth: int
    protocols: str


def combine_trusted(value: str) -> str:
    """lua_ssl_trusted_certificate: comma list of `system`, paths or PEM text, concatenated into one."""
    parts: list[str] = []
    for entry in (e.strip() for e in value.split(",")):
        if not entry:
            continue
        if entry == "system":
            found = next((p for p in SYSTEM_BUNDLES if os.path.exists(p)), None)
            if found:  # Kong silently drops `system` when no bundle exists
                parts.append(Path(found).read_text())
        elif entry.startswith("-----BEGIN"):
            parts.append(entry)
        elif os.path.exists(entry):
            parts.append(Path(entry).read_text())
        else:
            raise KongConfError(f"lua_ssl_trusted_certificate: no such file at {entry}")
    return "".join(p if p.endswith("\n") else p + "\n" for p in parts)


def translate(text: str, *, edition: str = "enterprise") -> KongSettings:
    """kong.conf text -> the settings Kong's nginx and pgmoon would use.

    Open-source Kong does not know the Enterprise-only keys and ignores them, so
    with `edition="oss"` they are dropped before anything reads them.
    """
    if edition not in ("enterprise", "oss"):
        raise ValueError(f"unknown edition {edition!r}")
    given = parse_kong_conf(text)
    if edition == "oss":
        given = {k: v for k, v in given.items() if k not in ENTERPRISE_ONLY}
    conf = {**DEFAULTS, **given}
    cert, key = conf.get("pg_ssl_cert"), conf.get("pg_ssl_cert_key")
    pg_ssl = _bool(conf, "pg_ssl")
    if pg_ssl and edition == "enterprise":
        if cert and not key:
            raise KongConfError("pg_ssl_cert_key must be specified")
        if key and not cert:
            raise KongConfError("pg_ssl_cert must be specified")
        for k, path in (("pg_ssl_cert", cert), ("pg_ssl_cert_key", key)):
            if path and not os.path.exists(path):
                raise KongConfError(f"{k}: no such file at {path}")
    depth = conf["lua_ssl_verify_depth"]
    if not depth.isdigit():
        raise KongConfError(f"lua_ssl_verify_depth must be a non-negative integer, got {depth!r}")
    return KongSettings(
        pg_host=conf["pg_host"], pg_ssl=pg_ssl, pg_ssl_required=_bool(conf, "pg_ssl_required"),
        pg_ssl_verify=_bool(conf, "pg_ssl_verify"), pg_ssl_cert=cert or None, pg_ssl_cert_key=key or None,
        trusted_pem=combine_trusted(conf["lua_ssl_trusted_certificate"]), verify_depth=int(depth),
        protocols=" ".join(conf["lua_ssl_protocols"].split()),
    )


@dataclass(frozen=True)
class KongResult:
    """One connection attempt. `ok` is True only when AuthenticationOk arrived."""

    ok: bool
    stage: str         # connect | sslrequest | setclientcert | tls | startup | auth | query | authenticated
    message: str
    ssl: bool | None = None
    tls_version: str | None = None
    client_dn: str | None = None
    user: str | None = None
    error_log: str = ""  # what nginx logged during this attempt (e.g. the certificate verify error)

    @property
    def verify_error(self) -> str | None:
        """OpenSSL's reason when nginx logged a failed certificate check, e.g. '20: unable to get ...'."""
        m = re.search(r"certificate verify error: \((\d+: [^)]*)\)", self.error_log)
        return m.group(1) if m else None

    def __str__(self) -> str:
        return f"{'ok' if self.ok else 'refused'} at {self.stage}: {self.message}" + (
            f" [nginx: {self.verify_error}]" if self.verify_error else "")


def _lua_str(value: str) -> str:
    """A Lua 5.1 string literal: printable ASCII kept, everything else as a decimal escape."""
    return '"' + "".join(
        c if 32 <= ord(c) < 127 and c not in '"\\' else "".join(f"\\{b}" for b in c.encode())
        for c in value
    ) + '"'


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM nginx if pytest dies without running its finalizers."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class KongEquivalent:
    """One nginx serving /k/<n> per translated kong.conf; `stop()` is safe at any time."""

    def __init__(self, base: Path) -> None:
        self.prefix = base / "kong"
        for sub in ("conf", "logs", "ca"):
            (self.prefix / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.prefix, 0o755)
        self.error_log = self.prefix / "logs" / "error.log"
        self.error_log.touch()
        self.port = free_port()
        self._ids: dict[KongSettings, int] = {}
        self._proc: subprocess.Popen[bytes] | None = None

    def connect(self, kong_conf: str, *, port: int, user: str = "kong", password: str | None = None,
                database: str = "postgres", edition: str = "enterprise") -> KongResult:
        """Connect to PostgreSQL on 127.0.0.1:`port` exactly as Kong configured by `kong_conf` would."""
        settings = translate(kong_conf, edition=edition)
        if settings not in self._ids:
            self._ids[settings] = len(self._ids) + 1
            self._restart()
        args = {"port": str(port), "user": user, "database": database}
        if password is not None:
            args["password"] = password
        url = f"http://{HOST}:{self.port}/k/{self._ids[settings]}?{urllib.parse.urlencode(args)}"
        mark = self.error_log.stat().st_size
        with urllib.request.urlopen(url, timeout=30) as resp:
            body = resp.read().decode()
        fields = dict(line.split("=", 1) for line in body.splitlines() if "=" in line)
        result = KongResult(ok=fields.get("result") == "ok", stage=fields.get("stage", "?"),
                            message=fields.get("message", body), error_log=self._log_since(mark))
        if not fields.get("row"):
            return result
        ssl, version, dn, user_ = fields["row"].split("|")  # pg_stat_ssl as the server saw this session
        return dataclasses.replace(result, ssl=ssl == "true", tls_version=version or None, client_dn=dn or None,
                                   user=user_)

    def _log_since(self, mark: int) -> str:
        with self.error_log.open("rb") as f:
            f.seek(mark)
            return f.read().decode(errors="replace")

    def _nginx_conf(self) -> str:
        settings_lua = ",\n".join(
            f"    [{i}] = {{ host = {_lua_str(s.pg_host)}, ssl = {str(s.pg_ssl).lower()}, "
            f"required = {str(s.pg_ssl_required).lower()}, verify = {str(s.pg_ssl_verify).lower()}"
            + (f", cert_file = {_lua_str(s.pg_ssl_cert)}, key_file = {_lua_str(s.pg_ssl_cert_key or '')}"
               if s.pg_ssl_cert else "") + " }"
            for s, i in self._ids.items()
        )
        locations = []
        for s, i in self._ids.items():
            ca = self.prefix / "ca" / f"{i}.crt"
            ca.write_text(s.trusted_pem)
            trusted = f"        lua_ssl_trusted_certificate {ca};\n" if s.trusted_pem else ""
            locations.append(
                f"    location = /k/{i} {{\n{trusted}"
                f"        lua_ssl_verify_depth {s.verify_depth};\n"
                f"        lua_ssl_protocols {s.protocols};\n"
                f"        content_by_lua_block {{ require(\"kongpg\").handler({i}) }}\n    }}\n"
            )
        return "\n".join([
            *(f"load_module {m};" for m in MODULES),
            "daemon off;",
            "worker_processes 1;",
            "error_log logs/error.log info;",
            "pid logs/nginx.pid;",
            "events { worker_connections 64; }",
            "http {",
            "    access_log off;",
            f"    lua_package_path \"{LUA_DIR}/?.lua;;\";",
            "    # pg_ssl_cert / pg_ssl_cert_key are read here, by the master (root): workers run as nobody",
            "    init_by_lua_block {",
            "  require(\"kongpg\").init({",
            settings_lua,
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

    def versions(self) -> dict[str, str]:
        """nginx (and the OpenSSL it runs with) and lua-nginx-module, as the binary and module report them."""
        res = subprocess.run([NGINX, "-V"], capture_output=True, text=True, check=True)
        version = re.search(r"nginx/(\S+)", res.stderr)
        running = re.search(r"running with (OpenSSL [^)]*)", res.stderr)
        text = (version.group(1) if version else "?") + (f" (running with {running.group(1)})" if running else "")
        if self._proc is not None:
            with urllib.request.urlopen(f"http://{HOST}:{self.port}/version", timeout=5) as resp:
                n = int(resp.read().decode().strip())  # e.g. 10023 for 0.10.23
            text += f", lua-nginx-module {n // 1000000}.{n // 1000 % 1000}.{n % 1000}"
        return {"nginx": text}
