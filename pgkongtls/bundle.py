"""Plan a bundle: exactly the files one host needs from the PKI, and never a CA key.

Pure: a manifest, a file reader and options in, a `Bundle` out (every file with
its content, destination, owner and mode). `fsio` writes it; `install` reads it
back on the host. The description (`bundle.json`) is what `install` trusts, so
it is parsed strictly here, with one-line errors.
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import shlex
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pgkongtls import render as r
from pgkongtls.consumers import (
    KONG_KEY_OWNED,
    KONG_OS_USER,
    PG_KEY_OWNED,
    PG_OS_USER,
    PUBLIC_FILE,
)
from pgkongtls.errors import InputError, StateError
from pgkongtls.manifest import Manifest

DESCRIPTION = "bundle.json"
FORMAT = 1
HOSTS = ("postgres", "kong")
DEFAULT_OS_USER = {"postgres": PG_OS_USER, "kong": KONG_OS_USER}
#: File kinds; the last four are snippets that `install` merges into the host's own config files.
KINDS = ("key", "certificate", "trust", "crl", "postgresql.conf", "pg_hba.conf", "pg_ident.conf", "kong.conf")
SNIPPETS = {
    "postgresql.conf": "pgkongtls.conf", "pg_hba.conf": "pg_hba.conf.snippet",
    "pg_ident.conf": "pg_ident.conf.snippet", "kong.conf": "kong.conf.snippet",
}
#: Where each snippet goes on the host (relative to --pg-conf-dir, or the --kong-conf file).
SNIPPET_TARGET = {
    "postgresql.conf": "pgkongtls.conf (or include_dir's directory), included from postgresql.conf",
    "pg_hba.conf": "marked block at the top of pg_hba.conf", "pg_ident.conf": "marked block in pg_ident.conf",
    "kong.conf": "marked block in kong.conf",
}

Reader = Callable[[str], "bytes | None"]


@dataclass(frozen=True)
class BundleFile:
    """One file of a bundle; `destination` is None for snippets (they join the host's config files)."""

    name: str
    kind: str
    content: bytes
    destination: str | None
    owner: str
    group: str
    mode: int

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def private(self) -> bool:
        return self.kind == "key"


@dataclass(frozen=True)
class Bundle:
    """What one host gets: its files, where they go, and which PKI they came from."""

    host: str
    ssl_dir: str
    os_user: str
    pki: str
    files: tuple[BundleFile, ...]
    #: The host's postgresql.conf directory or kong.conf, when known: `install` then needs no option.
    config: str | None = None

    def file(self, kind: str) -> BundleFile | None:
        return next((f for f in self.files if f.kind == kind), None)


@dataclass(frozen=True)
class Options:
    """`bundle postgres|kong` options (the snippets are rendered with them)."""

    ssl_dir: str | None = None
    server: str = "server"
    client: str = "client"
    edition: str = "enterprise"
    auth: str | None = None
    min_tls: str | None = None  # None: the TLS profile's (render postgres's default)
    config: str | None = None


def _ca_keys(m: Manifest, read: Reader) -> tuple[set[str], list[bytes]]:
    names = {e.key_file for e in m.certificates.values() if e.role in ("root", "intermediate")}
    contents = [data for n in sorted(names) if (data := read(n))]
    return names, contents


def _check_no_ca_key(files: list[BundleFile], m: Manifest, read: Reader) -> None:
    """The rule this module exists for: refuse, whatever the manifest says, to ship a CA key."""
    names, contents = _ca_keys(m, read)
    for f in files:
        body = f.content.strip()
        if f.name in names or any(c.strip() and c.strip() in body for c in contents):
            raise StateError(f"{f.name} would put a CA key into the bundle; restore {f.name}/the manifest, "
                             "a CA key never leaves the PKI directory")
        if not f.private and b"PRIVATE KEY" in f.content:
            raise StateError(f"{f.name} contains a private key but is not the host's own key; restore it")


def _read(read: Reader, name: str) -> bytes:
    data = read(name)
    if data is None:
        raise StateError(f"{name} is missing from the PKI directory; restore it or re-issue it")
    return data


def check_config(path: str) -> str:
    """--pg-conf-dir / --kong-conf as recorded: absolute, one line."""
    r._no_controls(path, "--pg-conf-dir/--kong-conf")
    if not path.startswith("/"):
        raise InputError(f"{path!r} must be an absolute path (it is used on the host as it is)")
    return posixpath.normpath(path)


def check_ssl_dir(ssl_dir: str) -> str:
    """An absolute directory that can go into postgresql.conf and kong.conf as it is."""
    r.kong_value(ssl_dir, "--ssl-dir")
    if not ssl_dir.startswith("/") or posixpath.normpath(ssl_dir) in ("/", "//"):
        raise InputError(f"--ssl-dir {ssl_dir!r} must be an absolute directory other than /")
    return posixpath.normpath(ssl_dir)


def _entry(m: Manifest, name: str, role: str, option: str) -> Any:
    e = m.certificates.get(name)
    if e is None or e.role != role or e.revoked:
        state = "revoked" if e is not None and e.revoked else f"not a {role} certificate"
        names = ", ".join(sorted(x.name for x in m.by_role(role) if not x.revoked)) or "none"
        raise InputError(f"{option} {name!r} is {state} in this PKI; use one of: {names}")
    return e


def _file(name: str, kind: str, data: bytes, ssl_dir: str, owned: tuple[str | None, str | None, int],
          host: str) -> BundleFile:
    """None in `owned` is the server's OS user (`install --pg-os-user/--kong-os-user` may name another)."""
    owner, group, mode = owned
    user = DEFAULT_OS_USER[host]
    return BundleFile(name=name, kind=kind, content=data, destination=posixpath.join(ssl_dir, name),
                      owner=owner or user, group=group or user, mode=mode)


def _snippet(kind: str, text: str) -> BundleFile:
    return BundleFile(name=SNIPPETS[kind], kind=kind, content=text.encode(), destination=None,
                      owner="root", group="root", mode=0o644)


def plan_postgres(m: Manifest, read: Reader, opts: Options) -> Bundle:
    """The database host: its server certificate and key, ssl_ca_file, the CRL, and the three snippets."""
    ssl_dir = check_ssl_dir(opts.ssl_dir or m.deploy_dir("postgres"))
    server = _entry(m, opts.server, "server", "--server")
    ca = r.ca_file_for_postgres(m)
    files = [
        _file(server.file, "certificate", _read(read, server.file), ssl_dir, PUBLIC_FILE, "postgres"),
        _file(server.key_file, "key", _read(read, server.key_file), ssl_dir, PG_KEY_OWNED, "postgres"),
        _file(ca, "trust", _read(read, ca), ssl_dir, PUBLIC_FILE, "postgres"),
    ]
    if m.crl_file:
        files.append(_file(m.crl_file, "crl", _read(read, m.crl_file), ssl_dir, PUBLIC_FILE, "postgres"))
    paths = r.Files(pg_dir=ssl_dir, kong_dir=ssl_dir, server=opts.server, client=opts.client)
    auth = opts.auth or r.default_auth(opts.edition)
    files += [
        _snippet("postgresql.conf", r.render_postgres(m, paths, min_tls=opts.min_tls)),
        _snippet("pg_hba.conf", r.render_hba(m, auth=auth, edition=opts.edition)),
        _snippet("pg_ident.conf", r.render_ident(m)),
    ]
    return _bundle(m, read, "postgres", ssl_dir, files, opts.config or m.deploy.get("postgres-conf"))


def plan_kong(m: Manifest, read: Reader, opts: Options) -> Bundle:
    """The Kong host: its client certificate and key (Enterprise), the trust file, and kong.conf keys."""
    ssl_dir = check_ssl_dir(opts.ssl_dir or m.deploy_dir("kong"))
    trust = r.trust_file_for_clients(m)
    files = [_file(trust, "trust", _read(read, trust), ssl_dir, PUBLIC_FILE, "kong")]
    if opts.edition == "enterprise":
        client = _entry(m, opts.client, "client", "--client")
        files = [
            _file(client.file, "certificate", _read(read, client.file), ssl_dir, PUBLIC_FILE, "kong"),
            _file(client.key_file, "key", _read(read, client.key_file), ssl_dir, KONG_KEY_OWNED, "kong"),
            *files,
        ]
    paths = r.Files(pg_dir=ssl_dir, kong_dir=ssl_dir, server=opts.server, client=opts.client)
    files.append(_snippet("kong.conf", r.render_kong(m, paths, edition=opts.edition)))
    return _bundle(m, read, "kong", ssl_dir, files, opts.config or m.deploy.get("kong-conf"))


def _bundle(m: Manifest, read: Reader, host: str, ssl_dir: str, files: list[BundleFile], config: str | None,
            ) -> Bundle:
    unique = {f.name: f for f in files}
    if len(unique) != len(files):
        raise StateError("two files of the bundle share a name; restore the manifest")
    _check_no_ca_key(files, m, read)
    return Bundle(host=host, ssl_dir=ssl_dir, os_user=DEFAULT_OS_USER[host], pki=m.root_fingerprint(),
                  files=tuple(files), config=check_config(config) if config else None)


def bundle_command(pki_dir: str, host: str, name: str | None = None) -> str:
    """The `bundle` command the hints print: re-runnable (--force), paths from the manifest."""
    default = "server" if host == "postgres" else "client"
    stem = posixpath.normpath(pki_dir) + ("-db" if host == "postgres" else "-kong")
    option = ""
    if name and name != default:  # the certificate's name says the host: pki-replica-1-bundle
        stem = f"{posixpath.normpath(pki_dir)}-{name}"
        option = f" {'--server' if host == 'postgres' else '--client'} {shlex.quote(name)}"
    return (f"pgkongtls bundle {host} --dir {shlex.quote(posixpath.normpath(pki_dir))}{option} "
            f"--out {shlex.quote(stem + '-bundle')} --force")


def plan(host: str, m: Manifest, read: Reader, opts: Options) -> Bundle:
    if host not in HOSTS:
        raise InputError(f"unknown bundle host {host!r}; use postgres or kong")
    return (plan_postgres if host == "postgres" else plan_kong)(m, read, opts)


# --------------------------------------------------------------------------- bundle.json


def describe(b: Bundle) -> str:
    """bundle.json: where each file goes, with owner, mode and SHA-256, for people and for `install`."""
    data = {
        "format": FORMAT, "host": b.host, "ssl_dir": b.ssl_dir, "config": b.config, "os_user": b.os_user,
        "pki": b.pki,
        "files": [{"file": f.name, "kind": f.kind, "destination": f.destination or SNIPPET_TARGET[f.kind],
                   "owner": f.owner,
                   "group": f.group, "mode": f"{f.mode:04o}", "sha256": f.sha256} for f in b.files],
    }
    return json.dumps(data, indent=2) + "\n"


def _bad(what: str) -> StateError:
    return StateError(f"{DESCRIPTION}: {what}; make the bundle again with pgkongtls bundle")


def parse(text: str, contents: dict[str, bytes]) -> Bundle:
    """bundle.json plus the files beside it -> Bundle; each file's SHA-256 must match."""
    try:
        data = json.loads(text)
    except ValueError:
        raise _bad("is not valid JSON") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("host") not in HOSTS:
        raise _bad(f"is not a format {FORMAT} bundle description")
    for key in ("ssl_dir", "os_user", "pki"):
        if not isinstance(data.get(key), str):
            raise _bad(f"{key} is missing")
    ssl_dir = check_ssl_dir(data["ssl_dir"])
    raw = data.get("files")
    if not isinstance(raw, list):
        raise _bad("files is missing")
    files = []
    for item in raw:
        if not isinstance(item, dict) or item.get("kind") not in KINDS or not isinstance(item.get("file"), str):
            raise _bad("a file entry is malformed")
        name = item["file"]
        if "/" in name or name.startswith(".") or name == DESCRIPTION:
            raise _bad(f"file {name!r} is not a plain file name")
        if name not in contents:
            raise StateError(f"{name} is missing from the bundle; copy the whole bundle directory")
        if hashlib.sha256(contents[name]).hexdigest() != item.get("sha256"):
            raise StateError(f"{name} does not match its SHA-256 in {DESCRIPTION}; copy the bundle again")
        mode = item.get("mode")
        if not isinstance(mode, str) or not mode.isdigit() or int(mode, 8) & ~0o777:
            raise _bad(f"mode of {name} is malformed")
        dest = posixpath.join(ssl_dir, name) if item["kind"] not in SNIPPETS else None
        files.append(BundleFile(name=name, kind=item["kind"], content=contents[name], destination=dest,
                                owner=str(item.get("owner")), group=str(item.get("group")), mode=int(mode, 8)))
    config = data.get("config")
    if config is not None and not isinstance(config, str):
        raise _bad("config is malformed")
    return Bundle(host=data["host"], ssl_dir=ssl_dir, os_user=data["os_user"], pki=data["pki"], files=tuple(files),
                  config=check_config(config) if config else None)


def tar_bytes(b: Bundle, top: str) -> bytes:
    """The bundle as one uncompressed tar, its directory 0700 and keys 0600, byte-for-byte reproducible."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        d = tarfile.TarInfo(top)
        d.type, d.mode = tarfile.DIRTYPE, 0o700
        tar.addfile(d)
        entries = [(f.name, f.content, 0o600 if f.private else 0o644) for f in b.files]
        for name, data, mode in [*entries, (DESCRIPTION, describe(b).encode(), 0o644)]:
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()
