"""Renderers for more than one database: streaming standbys, pgbouncer, Patroni, Kong's read replica.

Pure functions like pgkongtls.render (manifest + options in, text out), and every value
still passes through render's quoting helpers, so no host, user or path adds a line or key.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
from dataclasses import replace

from pgkongtls.consumers import (
    PG_DEFAULT_PORT,
    PG_MIN_TLS,
    PGBOUNCER_CERT_SSLMODE,
    PGBOUNCER_DEFAULT_PORT,
    PGBOUNCER_HAS_CRL,
    PGBOUNCER_PROTOCOLS,
    libpq_name_matches,
)
from pgkongtls.errors import InputError
from pgkongtls.manifest import CertEntry, Manifest
from pgkongtls.render import (
    MAP_NAME,
    Files,
    _conninfo_quote,
    _header,
    _no_controls,
    _path,
    ca_file_for_postgres,
    hba_name,
    hba_token,
    ident_entries,
    kong_value,
    pg_quote,
    render_hba,
    render_postgres,
    trust_file_for_clients,
)

#: pg_ident map for a replication identity whose CN is not the replication role.
REPLICATION_MAP = "pgkongtls-replication"
POOLER_AUTHS = ("cert", "scram")


def parse_hostport(text: str, *, default_port: int = PG_DEFAULT_PORT, what: str = "--primary") -> tuple[str, int]:
    """HOST, HOST:PORT, [V6] or [V6]:PORT."""
    _no_controls(text, what)
    try:
        return str(ipaddress.ip_address(text)), default_port  # a bare address, IPv6 included
    except ValueError:
        pass
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::([0-9]+))?", text) or re.fullmatch(r"([^:\[\]\s]+)(?::([0-9]+))?", text)
    if m is None:
        raise InputError(f"{what} {text!r} is not HOST or HOST:PORT (write an IPv6 address as [ADDR]:PORT)")
    host, port = m.group(1), int(m.group(2)) if m.group(2) else default_port
    if not 0 < port < 65536:
        raise InputError(f"{what} {text!r}: port must be 1-65535")
    return host, port


def _entry(m: Manifest, name: str, role: str, what: str) -> CertEntry:
    e = m.certificates.get(name)
    if e is None or e.role != role:
        raise InputError(f"{what} {name!r} is not a {role} certificate in this PKI; "
                         f"pgkongtls issue {role} --dir PKI --name {name} ...")
    if e.revoked:
        raise InputError(f"{what} {name!r} is revoked; issue a new one")
    return e


def replication_identity(m: Manifest, user: str) -> CertEntry:
    """The client certificate for replication role `user`: the one named `user`, else the one whose CN is it."""
    named = m.certificates.get(user)
    if named is not None and named.role == "client" and not named.revoked:
        return named
    by_cn = [e for e in m.by_role("client") if e.cn == user and not e.revoked]
    if by_cn:  # several (a renewal in progress under new names): any of them is the identity
        return min(by_cn, key=lambda e: e.name)
    raise InputError(f"no client certificate for replication role {user!r}; "
                     f"pgkongtls issue client --dir PKI --name {user} --cn {user}")


def replication_hba_lines(m: Manifest, user: str, address: str = "all") -> list[str]:
    """`hostssl replication USER ADDRESS cert`, with a map when the identity's CN is not USER."""
    ident = replication_identity(m, user)
    mapped = ident.cn != user
    line = (f"hostssl replication {hba_name(user, '--replication')} {hba_token(address, '--address')} cert"
            + (f" map={REPLICATION_MAP}" if mapped else ""))
    return [
        f"# streaming replication: only the certificate {ident.file} (CN {ident.cn}) logs in as {user}, over TLS.",
        f"# The role needs: CREATE ROLE {user} WITH REPLICATION LOGIN;",
        line,
    ]


def replication_ident_lines(m: Manifest, user: str) -> list[str]:
    """The pg_ident lines for REPLICATION_MAP (none when the identity's CN is the role)."""
    ident = replication_identity(m, user)
    if ident.cn == user:
        return []
    return [f"{REPLICATION_MAP} {hba_name(ident.cn, 'CN')} {hba_name(user, '--replication')}"]


def primary_conninfo(m: Manifest, files: Files, *, client: str, host: str, port: int, user: str | None = None,
                     application_name: str | None = None) -> str:
    """A libpq conninfo for the replication identity `client`: verify-full, its certificate, the CRL."""
    ident = _entry(m, client, "client", "--client")
    parts = {
        "host": host, "port": str(port), "user": user or ident.cn,
        "sslmode": "verify-full",
        "sslrootcert": _path(files.pg_dir, trust_file_for_clients(m), "--pg-dir"),
        "sslcert": _path(files.pg_dir, ident.file, "--pg-dir"),
        "sslkey": _path(files.pg_dir, ident.key_file, "--pg-dir"),
    }
    if m.crl_file:
        parts["sslcrl"] = _path(files.pg_dir, m.crl_file, "--pg-dir")
    if application_name:
        parts["application_name"] = application_name
    return " ".join(f"{k}={_conninfo_quote(v)}" for k, v in parts.items())


def covering_servers(m: Manifest, host: str) -> list[str]:
    """Names of the server certificates in service whose SANs cover `host` the way libpq checks it."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    out = []
    for e in m.by_role("server"):
        if e.revoked:
            continue
        for san in e.sans:
            if ip is not None:
                try:
                    if ipaddress.ip_address(san) == ip:
                        out.append(e.name)
                        break
                except ValueError:
                    continue
            elif libpq_name_matches(san, host):
                out.append(e.name)
                break
    return out


def _require_covered(m: Manifest, host: str, what: str) -> list[str]:
    names = covering_servers(m, host)
    if not names:
        raise InputError(f"no server certificate in this PKI covers {what} host {host!r}, so sslmode=verify-full "
                         f"would refuse it; pgkongtls issue server --dir PKI --name NAME --db-host {host}")
    return names


def standby_files(m: Manifest, *, client: str, server: str) -> list[str]:
    """What a standby holds: its own server certificate and key, the CA files, the replication identity, the CRL."""
    ident, own = _entry(m, client, "client", "--client"), _entry(m, server, "server", "--server")
    names = {own.file, own.key_file, ident.file, ident.key_file, ca_file_for_postgres(m), trust_file_for_clients(m)}
    if m.crl_file:
        names.add(m.crl_file)
    return sorted(names)


def render_standby(m: Manifest, files: Files, *, client: str, primary: str, min_tls: str = "TLSv1.2",
                   user: str | None = None) -> str:
    """postgresql.conf for a streaming standby: its own TLS settings plus primary_conninfo over mTLS."""
    host, port = parse_hostport(primary)
    covered = _require_covered(m, host, "--primary")
    ident = _entry(m, client, "client", "--client")
    role = user or ident.cn
    conninfo = primary_conninfo(m, files, client=client, host=host, port=port, user=role,
                                application_name=files.server)
    own = render_postgres(m, files, min_tls=min_tls).rstrip("\n").split("\n")
    need = " ".join(standby_files(m, client=client, server=files.server))
    lines = _header(m, f"PostgreSQL streaming standby {files.server}: its own TLS, and replication over mutual TLS",
                    "include it from the standby's postgresql.conf, then start it with standby.signal in the data directory")
    lines += [
        f"# files in {files.pg_dir} on the standby, owned by postgres, keys 0600: {need}",
        f"# on the primary: CREATE ROLE {role} WITH REPLICATION LOGIN; and render hba --replication {role}",
        f"# the primary at {host} is vouched for by server certificate(s): {', '.join(covered)}",
        "# first copy of the data, over the same mutual TLS:",
        f"#   pg_basebackup -d {shlex.quote(conninfo)} -D DATADIR -X stream -c fast && touch DATADIR/standby.signal",
        "",
        f"primary_conninfo = {pg_quote(conninfo)}",
        "",
        *own[4:],
    ]
    return "\n".join(lines) + "\n"


def pooler_files(m: Manifest, *, server: str, client: str) -> list[str]:
    """What the pooler holds: its own server certificate and key, its upstream identity, the CA files."""
    own, up = _entry(m, server, "server", "--server"), _entry(m, client, "client", "--client")
    return sorted({own.file, own.key_file, up.file, up.key_file, ca_file_for_postgres(m), trust_file_for_clients(m)})


def _pgb_value(value: str, what: str) -> str:
    """A pgbouncer.ini value: one line, and no ';' or '#' (pgbouncer reads them as a comment start)."""
    _no_controls(value, what)
    if ";" in value or "#" in value:
        raise InputError(f"{what} {value!r} cannot go into pgbouncer.ini: it contains ';' or '#'")
    return value


def render_pgbouncer(m: Manifest, files: Files, *, upstream: str | None = None, auth: str = "cert",
                     user: str | None = None, database: str | None = None, min_tls: str = "TLSv1.2",
                     listen_port: int = PGBOUNCER_DEFAULT_PORT) -> str:
    """pgbouncer.ini: TLS from Kong to the pooler (files.server) and from the pooler upstream (files.client)."""
    if auth not in POOLER_AUTHS:
        raise InputError(f"pgbouncer --auth {auth!r}: use cert or scram")
    if min_tls not in PG_MIN_TLS:
        raise InputError(f"unknown --min-tls {min_tls!r}; use TLSv1.2 or TLSv1.3")
    pooler = _entry(m, files.server, "server", "--server")
    upcert = _entry(m, files.client, "client", "--client")
    host, port = parse_hostport(upstream or m.hosts[0], what="--upstream")
    _require_covered(m, host, "--upstream")
    role = user or m.db_user
    if '"' in role:
        raise InputError(f"--user {role!r} cannot go into a pgbouncer auth_file: it contains a double quote")
    db = database or role

    def p(name: str) -> str:
        return _pgb_value(_path(files.pg_dir, name, "--pg-dir"), "--pg-dir")

    trust = p(trust_file_for_clients(m))
    ca_for_clients = p(ca_file_for_postgres(m))
    userlist = p("userlist.txt")
    lines = _header(m, f"pgbouncer.ini: TLS on both hops (Kong -> pooler {pooler.cn} -> PostgreSQL {host})",
                    "merge into pgbouncer.ini, write the auth_file, then restart pgbouncer (TLS files load at start)")
    lines += [
        f"# files in {files.pg_dir} on the pooler: {' '.join(pooler_files(m, server=files.server, client=files.client))}",
        f"#   key files owned by the pgbouncer user, 0600: {pooler.key_file}, {upcert.key_file}",
        "#",
        "# Who is who:",
    ]
    if auth == "cert":
        lines += [
            f"#   Kong -> pooler: auth_type = cert, so the client certificate's CN must BE the user name {role!r}",
            "#     (pgbouncer has no pg_ident-style map; a certificate with another CN is refused).",
        ]
    else:
        lines += [
            f"#   Kong -> pooler: TLS (Kong cannot check host names) and a SCRAM password for {role!r} from auth_file.",
        ]
    lines += [
        f"#   pooler -> PostgreSQL: every server connection presents {upcert.file} (CN {upcert.cn}) for every user;",
        f"#     PostgreSQL maps CN {upcert.cn} to {role!r} (render hba/ident --user {role} with --auth cert).",
    ]
    if not PGBOUNCER_HAS_CRL:
        lines += [
            "# pgbouncer has no CRL setting: it does not see revocations. Revoke at PostgreSQL (its ssl_crl_file",
            "#   still checks the pooler's own certificate) and, for Kong's, prefer --auth scram or a short --days.",
        ]
    lines += [
        "",
        "[databases]",
        f"{_pgb_value(db, '--database')} = host={_pgb_value(host, '--upstream')} port={port} "
        f"dbname={_pgb_value(db, '--database')}",
        "",
        "[pgbouncer]",
        f"listen_port = {listen_port}",
        f"auth_file = {userlist}",
    ]
    if auth == "cert":
        lines += [
            "auth_type = cert",
            f"client_tls_sslmode = {PGBOUNCER_CERT_SSLMODE}",
        ]
        userline = f'"{role}" ""'
    else:
        lines += ["auth_type = scram-sha-256", "client_tls_sslmode = require"]
        userline = (f'"{role}" "SCRAM-SHA-256$..."  '
                    f"(the role's secret: SELECT rolpassword FROM pg_authid WHERE rolname = '{role}')")
    lines += [
        f"client_tls_cert_file = {p(pooler.file)}",
        f"client_tls_key_file = {p(pooler.key_file)}",
        f"client_tls_ca_file = {ca_for_clients}",
        f"client_tls_protocols = {PGBOUNCER_PROTOCOLS[min_tls]}",
        "server_tls_sslmode = verify-full",
        f"server_tls_ca_file = {trust}",
        f"server_tls_cert_file = {p(upcert.file)}",
        f"server_tls_key_file = {p(upcert.key_file)}",
        f"server_tls_protocols = {PGBOUNCER_PROTOCOLS[min_tls]}",
        "",
        f"; auth_file {userlist} holds one line per user:",
        f"; {userline}",
    ]
    return "\n".join(lines) + "\n"


def kong_topology_values(m: Manifest, *, client: CertEntry, via: str | None = None,
                         ro_server: str | None = None, pooler_port: int = PGBOUNCER_DEFAULT_PORT,
                         user: str | None = None) -> tuple[list[str], list[tuple[str, str]]]:
    """Extra kong.conf keys for Kong through a pooler (`via`) and for its read-only connection."""
    comments: list[str] = []
    values: list[tuple[str, str]] = []
    if via:
        pooler = _entry(m, via, "server", "--via")
        role = user or m.db_user
        if client.cn != role:
            raise InputError(f"through pgbouncer with auth_type = cert the client certificate's CN must be the user "
                             f"({client.cn!r} is not {role!r}): pgbouncer has no map; issue one with --cn {role}")
        comments += [
            f"# through the pooler {pooler.cn}: Kong checks its certificate against the same trust file (same PKI),",
            f"# and pgbouncer (auth_type = cert) takes CN {client.cn} as the user name.",
        ]
        values += [("pg_host", kong_value(pooler.sans[0] if pooler.sans else pooler.cn, "--via")),
                   ("pg_port", str(pooler_port))]
    if ro_server:
        ro = _entry(m, ro_server, "server", "--ro-server")
        comments += [
            f"# read-only connection to {ro.cn}: pg_ro_ssl, pg_ro_ssl_verify (and on Enterprise pg_ro_ssl_required,",
            "# the client certificate) inherit the pg_* values, and the replica's certificate comes from the same CA,",
            "# so only pg_ro_host differs. The replica's pg_hba must admit the same client certificate.",
        ]
        values += [("pg_ro_host", kong_value(ro.sans[0] if ro.sans else ro.cn, "--ro-server"))]
    return comments, values


def _yaml(value: str) -> str:
    """A YAML scalar that stays a string: JSON's double-quoted form is valid YAML."""
    _no_controls(value, "value")
    return json.dumps(value)


def render_patroni(m: Manifest, files: Files, *, replication: str = "replicator", ctl_client: str | None = None,
                   min_tls: str = "TLSv1.2", auth: str = "cert", user: str | None = None) -> str:
    """patroni.yml fragment for one node (files.server): PostgreSQL TLS, TLS replication, TLS REST API."""
    if min_tls not in PG_MIN_TLS:
        raise InputError(f"unknown --min-tls {min_tls!r}; use TLSv1.2 or TLSv1.3")
    node = _entry(m, files.server, "server", "--node")
    repl = replication_identity(m, replication)

    def p(name: str) -> str:
        return _yaml(_path(files.pg_dir, name, "--pg-dir"))

    def auth_block(username: str, cert: CertEntry | None) -> list[str]:
        out = [f"      username: {_yaml(username)}", "      sslmode: verify-full",
               f"      sslrootcert: {p(trust_file_for_clients(m))}"]
        if cert is not None:
            out += [f"      sslcert: {p(cert.file)}", f"      sslkey: {p(cert.key_file)}"]
        if m.crl_file:
            out.append(f"      sslcrl: {p(m.crl_file)}")
        return out

    hba = ["local all postgres peer", f"hostssl replication {hba_name(replication, '--replication')} all cert"
           + (f" map={REPLICATION_MAP}" if repl.cn != replication else "")]
    # Kong's own lines and map, as render hba/ident make them, without the ctl identity (it is not Kong's)
    kong_m = replace(m, certificates={k: v for k, v in m.certificates.items() if k != ctl_client})
    kong_hba = render_hba(kong_m, auth=auth, user=user, replication=replication)
    hba += [ln for ln in kong_hba.split("\n") if ln and not ln.startswith("#") and ln not in hba]
    ident = [f"{MAP_NAME} {system} {role}" for system, role in ident_entries(kong_m, user, replication)]
    ident += replication_ident_lines(m, replication)
    lines = _header(m, f"Patroni configuration for node {node.cn}: TLS for PostgreSQL, replication and the REST API",
                    "merge into this node's patroni.yml (name, scope, etcd and listen addresses are yours)")
    lines += [
        f"# every node's certificate must cover the names the others and the clients use: {', '.join(node.sans)}",
        f"# replication logs in as {replication} with {repl.file} (CN {repl.cn}); keys 0600, owned by postgres",
        "# Patroni itself logs in as postgres over the unix socket (peer): no password in this file.",
        "restapi:",
        f"  certfile: {p(node.file)}",
        f"  keyfile: {p(node.key_file)}",
        f"  cafile: {p(ca_file_for_postgres(m))}",
    ]
    if ctl_client:
        ctl = _entry(m, ctl_client, "client", "--ctl-client")
        lines += [
            "  verify_client: required",
            "ctl:",
            f"  certfile: {p(ctl.file)}",
            f"  keyfile: {p(ctl.key_file)}",
            f"  cacert: {p(trust_file_for_clients(m))}",
        ]
    else:
        lines += ["  verify_client: none", "ctl:", f"  cacert: {p(trust_file_for_clients(m))}"]
    lines += [
        "postgresql:",
        "  parameters:",
        "    ssl: \"on\"",
        f"    ssl_cert_file: {p(node.file)}",
        f"    ssl_key_file: {p(node.key_file)}",
        f"    ssl_ca_file: {p(ca_file_for_postgres(m))}",
    ]
    if m.crl_file:
        lines.append(f"    ssl_crl_file: {p(m.crl_file)}")
    lines += [
        f"    ssl_min_protocol_version: {_yaml(min_tls)}",
        "  authentication:",
        "    replication:",
        *auth_block(replication, repl),
    ]
    lines += ["    superuser:", "      username: postgres", "  use_unix_socket: true"]
    lines += ["  pg_hba:", *(f"    - {_yaml(h)}" for h in hba)]
    if ident:
        lines += ["  pg_ident:", *(f"    - {_yaml(i)}" for i in ident)]
    return "\n".join(lines) + "\n"
