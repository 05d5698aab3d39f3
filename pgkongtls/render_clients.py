"""Connection strings for the database's other clients: URL-only drivers and pgjdbc.

node-postgres takes only the URL form (a keyword string becomes a host named
`base`), and pgjdbc needs its key as PKCS#8 DER (`pgkongtls export`): FACTS.md,
"Other clients of the same database". Pure functions returning `str`.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from pgkongtls.consumers import PG_DEFAULT_PORT
from pgkongtls.errors import InputError
from pgkongtls.manifest import Manifest
from pgkongtls.render import Files, _header, _no_controls, _path, client_entry, server_host, trust_file_for_clients

#: What `pgkongtls export --format pk8` is told to write beside the PEM files.
PK8_SUFFIX = ".pk8"


def _authority(host: str, port: int) -> str:
    _no_controls(host, "--host")
    shown = f"[{host}]" if ":" in host else quote(host, safe="")
    return shown if port == PG_DEFAULT_PORT else f"{shown}:{port}"


def _check_port(port: int) -> int:
    if not 0 < port < 65536:
        raise InputError(f"--port {port} is not a TCP port (1-65535)")
    return port


def render_libpq_url(m: Manifest, files: Files, *, host: str | None = None, user: str | None = None,
                     database: str | None = None, port: int = PG_DEFAULT_PORT) -> str:
    """`postgresql://` URL with verify-full and the PEM file paths (node-postgres, other URL-only drivers)."""
    client = client_entry(m, files.client)
    cert, key = client.file, client.key_file
    user = user or m.db_user
    query = urlencode({
        "sslmode": "verify-full", "sslrootcert": _path(files.kong_dir, trust_file_for_clients(m), "--kong-dir"),
        "sslcert": _path(files.kong_dir, cert, "--kong-dir"), "sslkey": _path(files.kong_dir, key, "--kong-dir"),
    }, safe="/", quote_via=quote)
    url = (f"postgresql://{quote(user, safe='')}@{_authority(server_host(m, files.server, host), _check_port(port))}"
           f"/{quote(database or user, safe='')}?{query}")
    lines = _header(m, "libpq connection URL with full verification",
                    "node-postgres: new Client({connectionString: URL}); the URL's host is the name checked") + [
        "# (its ssl* parameters replace a separate `ssl` object: to reach an address while checking a DNS",
        "#  name, drop them from the URL and pass ssl: {ca, cert, key, servername} instead)",
    ]
    return "\n".join([*lines, url]) + "\n"


def render_jdbc(m: Manifest, files: Files, *, host: str | None = None, user: str | None = None,
                database: str | None = None, port: int = PG_DEFAULT_PORT, pki_dir: str = "pki") -> str:
    """pgjdbc URL: verify-full, the PEM trust and certificate, and the key as PKCS#8 DER."""
    client = client_entry(m, files.client)
    name, cert = client.name, client.file
    user = user or m.db_user
    pk8 = _path(files.kong_dir, name + PK8_SUFFIX, "--kong-dir")
    query = urlencode({
        "user": user, "sslmode": "verify-full",
        "sslrootcert": _path(files.kong_dir, trust_file_for_clients(m), "--kong-dir"),
        "sslcert": _path(files.kong_dir, cert, "--kong-dir"), "sslkey": pk8,
    }, safe="/", quote_via=quote)
    lines = _header(m, "pgjdbc URL with full verification",
                    f"pgjdbc cannot read PEM keys: pgkongtls export --dir {pki_dir} {name} --format pk8 --out {name}{PK8_SUFFIX}",
                    ) + [f"# then install it as {pk8} (0600, owned by the application's user)"]
    authority = _authority(server_host(m, files.server, host), _check_port(port))
    return "\n".join([*lines, f"jdbc:postgresql://{authority}/{quote(database or user, safe='')}?{query}"]) + "\n"
