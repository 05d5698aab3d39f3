"""The independent clients: libpq (psycopg), `openssl s_client`, and asyncpg on Python >= 3.13.

Each returns what the server said about the session (pg_stat_ssl) or the
client's own refusal text, so tests can assert the specific reason.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from .pg import HOST

PY313_SCRIPT = Path(__file__).resolve().parent / "py313_asyncpg.py"


class Refused(Exception):
    """The connection was refused; str() is the client's (or PostgreSQL's) own error text."""


@dataclass(frozen=True)
class SslRow:
    """pg_stat_ssl for the session, as the server sees it."""

    ssl: bool
    version: str | None
    client_dn: str | None
    user: str


_SSL_QUERY = "SELECT ssl, version, client_dn, current_user FROM pg_stat_ssl WHERE pid = pg_backend_pid()"


def libpq_connect(*, port: int, host: str, hostaddr: str | None = None, sslrootcert: Path | None = None,
                  sslcert: Path | None = None, sslkey: Path | None = None, user: str = "kong",
                  password: str | None = None, sslmode: str = "verify-full", dbname: str = "postgres") -> SslRow:
    """psycopg (libpq) with `sslmode` (verify-full by default). No `sslcert` means no client
    certificate at all (sslcertmode=disable), not libpq's ~/.postgresql default. Raises Refused."""
    params: dict[str, Any] = {"host": host, "port": port, "user": user, "dbname": dbname, "sslmode": sslmode,
                              "connect_timeout": 10}
    if hostaddr:
        params["hostaddr"] = hostaddr
    if sslrootcert:
        params["sslrootcert"] = str(sslrootcert)
    if sslcert:
        params["sslcert"], params["sslkey"] = str(sslcert), str(sslkey)
    elif psycopg.pq.version() >= 160000:
        params["sslcertmode"] = "disable"
    else:
        params["sslcert"] = "/nonexistent/pgkongtls-no-client-cert"
    if password is not None:
        params["password"] = password
    try:
        with psycopg.connect(**params) as conn:
            row = conn.execute(_SSL_QUERY).fetchone()
    except psycopg.OperationalError as exc:
        raise Refused(str(exc)) from None
    assert row is not None
    return SslRow(ssl=row[0], version=row[1], client_dn=row[2], user=row[3])


@dataclass(frozen=True)
class SClientResult:
    """`openssl s_client -starttls postgres`, with a StartupMessage sent through the TLS session."""

    returncode: int
    verify_code: int | None       # "Verify return code: N"
    verify_error: str | None      # "verify error:num=N:TEXT" (the failing check), when any
    authenticated: bool           # AuthenticationOk came back through the session
    server_error: str | None      # PostgreSQL's ErrorResponse message, when it sent one
    output: str = field(repr=False)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.verify_code == 0 and self.authenticated


def _startup(user: str, database: str) -> bytes:
    body = struct.pack("!i", 196608) + f"user\0{user}\0database\0{database}\0\0".encode()
    return struct.pack("!i", len(body) + 4) + body + b"X" + struct.pack("!i", 4)  # then Terminate


def s_client(*, port: int, cafile: Path, verify_depth: int, cert: Path | None = None, key: Path | None = None,
             verify_hostname: str | None = None, user: str = "kong", database: str = "postgres",
             protocol: str | None = None) -> SClientResult:
    """An independent TLS client: `-verify_return_error -verify_depth N`, optional client cert.

    It sends a StartupMessage for `user` over the session, so `authenticated` proves the
    server accepted the client certificate too, not only that the handshake finished.
    `protocol` pins one TLS version with s_client's own flag, e.g. "-tls1_2".
    """
    cmd = ["openssl", "s_client", "-starttls", "postgres", "-connect", f"{HOST}:{port}", "-CAfile", str(cafile),
           "-verify_return_error", "-verify_depth", str(verify_depth), "-ign_eof"]
    if cert:
        cmd += ["-cert", str(cert), "-key", str(key)]
    if verify_hostname:
        cmd += ["-verify_hostname", verify_hostname]
    if protocol:
        cmd.append(protocol)
    res = subprocess.run(cmd, input=_startup(user, database), capture_output=True, timeout=30)
    out = res.stdout.decode(errors="replace") + res.stderr.decode(errors="replace")
    code = re.search(r"Verify return code: (\d+)", out)
    verr = re.search(r"verify error:num=(\d+:[^\n]*)", out)
    perr = re.search(rb"E....S[A-Z]+\0V[A-Z]+\0C[0-9A-Z]{5}\0M([^\0]*)\0", res.stdout, re.S)
    return SClientResult(
        returncode=res.returncode, verify_code=int(code.group(1)) if code else None,
        verify_error=verr.group(1) if verr else None,
        authenticated=b"R\0\0\0\x08\0\0\0\0" in res.stdout,
        server_error=perr.group(1).decode(errors="replace") if perr else None, output=out,
    )


@dataclass(frozen=True)
class PyResult:
    """asyncpg through `ssl.create_default_context(cafile=...)` under Python >= 3.13."""

    ok: bool
    strict: bool                  # VERIFY_X509_STRICT was set on the context
    error: str | None = None
    ssl: bool | None = None
    version: str | None = None
    client_dn: str | None = None
    user: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


def py313_python() -> str:
    """$PGKONGTLS_PY313 (set by scripts/test), or skip the test with the reason."""
    exe = os.environ.get("PGKONGTLS_PY313")
    if not exe:
        pytest.skip("PGKONGTLS_PY313 is not set: no Python >= 3.13 with asyncpg (run through ./scripts/test)")
    return exe


def py313_connect(*, host: str, port: int, cafile: Path, cert: Path | None = None, key: Path | None = None,
                  user: str = "kong", password: str | None = None, resolve: str | None = None,
                  relaxed: bool = False) -> PyResult:
    """Run py313_asyncpg.py under $PGKONGTLS_PY313; `resolve=NAME:IP` pins NAME to IP in that process."""
    cmd = [py313_python(), str(PY313_SCRIPT), "--host", host, "--port", str(port), "--cafile", str(cafile),
           "--user", user]
    if cert:
        cmd += ["--cert", str(cert), "--key", str(key)]
    if password is not None:
        cmd += ["--password", password]
    if resolve:
        cmd += ["--resolve", resolve]
    if relaxed:
        cmd.append("--relaxed")
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    try:
        d = json.loads(res.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise RuntimeError(f"py313_asyncpg.py gave no result (exit {res.returncode}): {res.stderr}") from None
    return PyResult(ok=d["ok"], strict=d["strict"], error=d.get("error"), ssl=d.get("ssl"), version=d.get("version"),
                    client_dn=d.get("client_dn"), user=d.get("user"), raw=d)


def _bundled_openssl() -> str | None:
    """The OpenSSL inside psycopg[binary] (its libpq does not use the system one)."""
    try:
        import psycopg_binary
    except ImportError:
        return None
    libs = Path(psycopg_binary.__file__).resolve().parent.parent / "psycopg_binary.libs"
    for lib in sorted(libs.glob("libcrypto*.so*")):
        fn = ctypes.CDLL(str(lib)).OpenSSL_version
        fn.restype, fn.argtypes = ctypes.c_char_p, [ctypes.c_int]
        return str(fn(0).decode())
    return None


def versions() -> dict[str, str]:
    """The openssl CLI, and psycopg with its libpq and that libpq's OpenSSL, for "Verified against"."""
    v = psycopg.pq.version()
    ossl = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
    lib = f"libpq {v // 10000}.{v % 10000}"
    bundled = _bundled_openssl()
    return {"OpenSSL (system, openssl CLI)": ossl.removeprefix("OpenSSL "),
            "psycopg": f"{psycopg.__version__} ({psycopg.pq.__impl__}), {lib}"
                       + (f" with its bundled {bundled}" if bundled else "")}
