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
#: Kong Enterprise's `pg_ssl_version` values (tlsv1_1 is gone); its default is tlsv1_2. At start-up pgmoon
#: hands it to LuaSec as `protocol`, so a version below the server's minimum stops Kong from starting.
KONG_PG_SSL_VERSIONS = ("tlsv1_2", "tlsv1_3", "any")
KONG_DEFAULT_PG_SSL_VERSION = "tlsv1_2"
#: PostgreSQL's `ssl_min_protocol_version` values pgkongtls offers, lowest first, and the
#: pg_ssl_version that speaks exactly that floor.
PG_MIN_TLS = ("TLSv1.2", "TLSv1.3")
PG_SSL_VERSION_FOR_MIN_TLS = {"TLSv1.2": "tlsv1_2", "TLSv1.3": "tlsv1_3"}
#: The lowest TLS version each pg_ssl_version can speak (`any` negotiates up to TLS 1.3).
PG_SSL_VERSION_FLOOR = {"tlsv1_2": "TLSv1.2", "tlsv1_3": "TLSv1.3", "any": None}
#: Kong's default `lua_ssl_protocols` (nginx applies it to the runtime connection and all other outbound TLS).
KONG_DEFAULT_LUA_SSL_PROTOCOLS = "TLSv1.2 TLSv1.3"
#: Kong's default nginx_user: its workers run as this user and group and read pg_ssl_cert(_key) for every
#: new connection (Kong Enterprise's pgmoon), so the key must be readable by it.
KONG_DEFAULT_OS_USER = "kong"
#: Mozilla's "intermediate" TLS 1.2 cipher list (server side); PostgreSQL 15 accepts it and both sslyze and
#: testssl grade it clean. TLS 1.3 suites are not set by ssl_ciphers.
MOZILLA_INTERMEDIATE_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"
)
#: PostgreSQL 15 defaults pgkongtls leaves alone on purpose: `off` makes testssl report no server cipher
#: order, and ssl_ecdh_curve takes one curve only (X25519 fails with "ECDH: could not create key").
PG_DEFAULT_PREFER_SERVER_CIPHERS = "on"
PG_DEFAULT_ECDH_CURVE = "prime256v1"
#: `--tls-profile` choices (Mozilla's names; legacy = PostgreSQL's own cipher default). Mozilla "modern"
#: is TLS 1.3 only with ECDSA keys and leaves of at most 90 days.
TLS_PROFILES = ("intermediate", "modern", "legacy")
DEFAULT_TLS_PROFILE = "intermediate"
MODERN_MAX_LEAF_DAYS = 90
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
