"""What PostgreSQL, libpq and Kong do: their defaults and rules, written down once.

The renderers, the doctor (`verify`) and the probe all import these, so a
rule measured against the real consumer (FACTS.md) is changed in one place.
Nothing here reads a file or knows about pgkongtls's own PKI layout.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import TYPE_CHECKING

from pgkongtls.confparse import KongValue

if TYPE_CHECKING:  # cryptography is imported where it is used, so `render` never loads it
    from cryptography import x509

#: Kong's own default `lua_ssl_verify_depth`: it is shared with every other outbound TLS connection Kong makes.
KONG_DEFAULT_DEPTH = 1
#: Kong Enterprise-only keys (FACTS.md); open-source Kong silently ignores them.
ENTERPRISE_ONLY = ("pg_ssl_required", "pg_ssl_version", "pg_ssl_cert", "pg_ssl_cert_key")
#: Kong's defaults for `pg_user` and `pg_database`.
KONG_DEFAULT_USER = "kong"
KONG_DEFAULT_DATABASE = "kong"
#: Where Kong looks for the OS bundle that `system` stands for, first match wins (Kong's own list).
SYSTEM_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
)
#: PostgreSQL's defaults for the file settings (relative to the data directory).
PG_DEFAULT_FILES = {"ssl_cert_file": "server.crt", "ssl_key_file": "server.key", "ssl_ca_file": "", "ssl_crl_file": ""}


def _wildcard_match(pattern: str, host: str) -> bool:
    """libpq's wildcard rule: `*.` only as the whole first label, never across a dot."""
    if len(pattern) < 3 or not pattern.startswith("*.") or len(pattern) > len(host):
        return False
    if pattern[1:].lower() != host[len(host) - len(pattern) + 1:].lower():
        return False
    return "." not in host[: len(host) - len(pattern) + 1]


def _name_matches(name: str, host: str) -> bool:
    return name.lower() == host.lower() or _wildcard_match(name, host)


def host_in_names(names: tuple[str, ...], host: str) -> bool:
    """libpq's verify-full match on names as text (a certificate's SANs, or its CN when it has none)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return any(_name_matches(n, host) for n in names)
    for n in names:
        try:
            if ipaddress.ip_address(n) == ip:
                return True
        except ValueError:
            continue
    return False


def libpq_host_check(cert: x509.Certificate, host: str) -> tuple[bool, str]:
    """libpq `sslmode=verify-full`'s host name check, as libpq 17+ does it (psycopg bundles libpq 18):
    every dNSName and iPAddress SAN is examined; the CN too, unless a SAN of the host's own type
    (DNS name or IP address) exists. Returns (ok, libpq's own error text)."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        host_ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        host_ip = None
    names: list[str] = []
    check_cn = True
    try:
        sans: list[x509.GeneralName] = list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        sans = []
    for gn in sans:
        if isinstance(gn, x509.DNSName):
            check_cn = check_cn and host_ip is not None
            names.append(gn.value)
            if _name_matches(gn.value, host):
                return True, ""
        elif isinstance(gn, x509.IPAddress) and not isinstance(gn.value, (ipaddress.IPv4Network,
                                                                           ipaddress.IPv6Network)):
            check_cn = check_cn and host_ip is None
            names.append(str(gn.value))
            if host_ip is not None and gn.value == host_ip:
                return True, ""
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if check_cn and cns:
        cn = str(cns[0].value)
        names.append(cn)
        if _name_matches(cn, host):
            return True, ""
    if not names:
        return False, "could not get server's host name from server certificate"
    if len(names) == 1:
        return False, f'server certificate for "{names[0]}" does not match host name "{host}"'
    others = len(names) - 1
    return False, (f'server certificate for "{names[0]}" (and {others} other name{"s" if others > 1 else ""}) '
                   f'does not match host name "{host}"')


def kong_depth(values: Mapping[str, KongValue]) -> int | None:
    """The `lua_ssl_verify_depth` Kong will use: its default when unset, None when Kong cannot read it."""
    raw = values.get("lua_ssl_verify_depth")
    if raw is None:
        return KONG_DEFAULT_DEPTH
    return int(raw.value) if raw.value.isdigit() else None


# --------------------------------------------------------------------------- deploying files (bundle, install)

#: How PostgreSQL accepts its ssl_key_file (be-secure-common.c, FACTS.md): (owner, group, mode) where
#: None means "the server's OS user". Owned by that user 0600, or root:<its group> 0640 (`--key-group`).
PG_KEY_OWNED = (None, None, 0o600)
PG_KEY_GROUP = ("root", None, 0o640)
#: Kong Enterprise's pgmoon reads the client key in the nginx workers (user `kong`) for every new
#: connection (FACTS.md): the worker user must read it, so kong:kong 0600 (root, the master, reads it too).
KONG_KEY_OWNED = (None, None, 0o600)
#: Certificates, trust files and CRLs are public: root-owned, world-readable.
PUBLIC_FILE = ("root", "root", 0o644)
#: The directory holding the files: root-owned, traversable by every user (the key's own mode protects it).
SSL_DIR_MODE = 0o755
#: Default OS accounts of the two servers (Debian packages, Kong's nginx_user).
PG_OS_USER = "postgres"
KONG_OS_USER = "kong"

#: What a reload does (postgresql.org/docs/15/config-setting.html, FACTS.md): SIGHUP to the postmaster
#: re-reads postgresql.conf, pg_hba.conf, pg_ident.conf and the SSL files. A bad file is only *logged*:
#: the server keeps the old rules ("SSL configuration was not reloaded"), so success must be checked in
#: these views, which parse the files on disk when queried, and in the log.
PG_FILE_ERROR_VIEWS = (
    ("pg_file_settings", "sourcefile || ':' || sourceline || ': ' || coalesce(name, '') || ': ' || error"),
    ("pg_hba_file_rules", "'pg_hba.conf:' || line_number || ': ' || error"),  # file_name is PostgreSQL 16+
    ("pg_ident_file_mappings", "'pg_ident.conf:' || line_number || ': ' || error"),
)
#: Postmaster log lines that mean the reload did not take the new files.
PG_RELOAD_FAILURE_PATTERNS = (
    "was not reloaded", "contains errors", "could not load", "invalid value for parameter",
    "unrecognized configuration parameter", "has group or world access", "Permission denied",
)
#: Kong builds its combined trust file only while preparing its prefix: a changed kong.conf needs this.
KONG_APPLY = "kong restart (or kong reload)"
