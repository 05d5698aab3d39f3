"""What PostgreSQL, libpq and Kong do: their defaults and rules, written down once.

The renderers, the doctor (`verify`) and the probe all import these, so a
rule measured against the real consumer (FACTS.md) is changed in one place.
Nothing here reads a file or knows about pgkongtls's own PKI layout.
"""

from __future__ import annotations

import enum
import ipaddress
import re
import stat
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

# Annotations only: cryptography is imported where it is used, so `render` never loads it, and the
# config parsers stay unloaded in commands that read no config (`init`).
if TYPE_CHECKING:
    from cryptography import x509

    from pgkongtls.confparse import HbaLine, IdentLine, KongValue, Token

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
#: Every ssl_min_protocol_version value PostgreSQL accepts, lowest first, and its default since 13.
PG_TLS_VERSIONS = ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
PG_DEFAULT_MIN_TLS = "TLSv1.2"
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
#: PostgreSQL's default port.
PG_DEFAULT_PORT = 5432
#: Kong's pgmoon sends no SNI and checks no host name; libpq sends SNI (its `sslsni=1` default).
KONG_SENDS_SNI = False
LIBPQ_SENDS_SNI = True


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


def kong_keeps_quotes(value: str) -> bool:
    """kong.conf keeps quotes in values: a quoted path names a file that does not exist."""
    return len(value) >= 2 and value[0] in "'\"" and value[-1] == value[0]


# --------------------------------------------------------------------------- OpenSSL


class X509Err(enum.IntEnum):
    """OpenSSL's X509_V_ERR_* codes that verify and probe meet; `.text` is X509_verify_cert_error_string."""

    UNABLE_TO_GET_ISSUER_CERT = 2
    UNABLE_TO_GET_CRL = 3
    UNABLE_TO_DECRYPT_CERT_SIGNATURE = 4
    CERT_SIGNATURE_FAILURE = 7
    CERT_NOT_YET_VALID = 9
    CERT_HAS_EXPIRED = 10
    CRL_NOT_YET_VALID = 11
    CRL_HAS_EXPIRED = 12
    DEPTH_ZERO_SELF_SIGNED_CERT = 18
    SELF_SIGNED_CERT_IN_CHAIN = 19
    UNABLE_TO_GET_ISSUER_CERT_LOCALLY = 20
    UNABLE_TO_VERIFY_LEAF_SIGNATURE = 21
    CERT_CHAIN_TOO_LONG = 22
    CERT_REVOKED = 23
    INVALID_CA = 24
    PATH_LENGTH_EXCEEDED = 25
    INVALID_PURPOSE = 26
    CERT_UNTRUSTED = 27
    CERT_REJECTED = 28
    MISSING_KEY_USAGE = 92

    @property
    def text(self) -> str:
        return _X509_TEXTS[self]


_X509_TEXTS = {
    X509Err.UNABLE_TO_GET_ISSUER_CERT: "unable to get issuer certificate",
    X509Err.UNABLE_TO_GET_CRL: "unable to get certificate CRL",
    X509Err.UNABLE_TO_DECRYPT_CERT_SIGNATURE: "unable to decrypt certificate's signature",
    X509Err.CERT_SIGNATURE_FAILURE: "certificate signature failure",
    X509Err.CERT_NOT_YET_VALID: "certificate is not yet valid",
    X509Err.CERT_HAS_EXPIRED: "certificate has expired",
    X509Err.CRL_NOT_YET_VALID: "CRL is not yet valid",
    X509Err.CRL_HAS_EXPIRED: "CRL has expired",
    X509Err.DEPTH_ZERO_SELF_SIGNED_CERT: "self-signed certificate",
    X509Err.SELF_SIGNED_CERT_IN_CHAIN: "self-signed certificate in certificate chain",
    X509Err.UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "unable to get local issuer certificate",
    X509Err.UNABLE_TO_VERIFY_LEAF_SIGNATURE: "unable to verify the first certificate",
    X509Err.CERT_CHAIN_TOO_LONG: "certificate chain too long",
    X509Err.CERT_REVOKED: "certificate revoked",
    X509Err.INVALID_CA: "invalid CA certificate",
    X509Err.PATH_LENGTH_EXCEEDED: "path length constraint exceeded",
    X509Err.INVALID_PURPOSE: "unsupported certificate purpose",
    X509Err.CERT_UNTRUSTED: "certificate not trusted",
    X509Err.CERT_REJECTED: "certificate rejected",
    X509Err.MISSING_KEY_USAGE: "CA cert does not include key usage extension",
}


def x509_error_text(code: int) -> str:
    """OpenSSL's text for a verify error code, or the bare code for one not listed above."""
    try:
        return X509Err(code).text
    except ValueError:
        return f"X509 verify error {code}"


#: OpenSSL's reason (X509_R_KEY_VALUES_MISMATCH) when a certificate and a private key do not belong together.
OPENSSL_KEY_MISMATCH = "key values mismatch"
#: Who refuses what OpenSSL's X509_STRICT refuses (the flag Python 3.13's default SSL context sets).
STRICT_WHO = "Python 3.13's default SSL context (asyncpg) and openssl verify -x509_strict reject it"


# --------------------------------------------------------------------------- PostgreSQL


def pg_bool(value: str) -> bool:
    """The spellings of `on` that pgkongtls accepts for postgresql.conf's `ssl`."""
    return value.lower() in ("on", "true", "yes", "1")


def pg_sends(cert_file: Sequence[x509.Certificate], ca_file: Sequence[x509.Certificate]) -> list[x509.Certificate]:
    """What PostgreSQL sends: ssl_cert_file, completed from ssl_ca_file when it holds only the leaf."""
    sent = list(cert_file)
    if len(sent) == 1:
        sent += [c for c in ca_file if c not in sent]
    return sent


#: ssl_key_file's owner and mode rule (be-secure-common.c, check_ssl_key_file): owned by the server's OS user
#: with no group or world bits (at most 0600), or owned by root with at most group read (at most 0640).
PG_KEY_MODE_OWNER = 0o600
PG_KEY_MODE_ROOT = 0o640
_PG_KEY_BITS_REFUSED_OWNER = stat.S_IRWXG | stat.S_IRWXO
_PG_KEY_BITS_REFUSED_ROOT = stat.S_IWGRP | stat.S_IXGRP | stat.S_IRWXO
#: PostgreSQL's own words when the mode is refused.
PG_KEY_MODE_ERROR = "private key file has group or world access"


def pg_key_mode_refused(mode: int, *, root_owned: bool) -> bool:
    """PostgreSQL refuses the key for these permission bits, given who owns it."""
    return bool(mode & (_PG_KEY_BITS_REFUSED_ROOT if root_owned else _PG_KEY_BITS_REFUSED_OWNER))


#: pg_hba.conf addresses that match every client.
PG_HBA_ANY_ADDRESS = ("all", "0.0.0.0/0", "::/0", "::0/0")


def hba_covers(tokens: Sequence[Token], value: str, *, same: str | None = None, kind: str) -> bool:
    """pg_hba.conf's match of a database or user column; `+group` and `@file` are assumed to match."""
    for t in tokens:
        text = t.text
        if not t.quoted:
            if text == "all":
                return True
            if kind == "database" and text == "sameuser" and same == value:
                return True
            if kind == "database" and text in ("samerole", "samegroup", "replication"):
                continue
            if text.startswith("+") or text.startswith("@"):
                return True  # group membership and @file lists are not resolved here: assume they match
            if text.startswith("/"):
                try:
                    if re.search(text[1:], value):
                        return True
                except re.error:
                    continue
                continue
        if text == value:
            return True
    return False


def hba_checks_cert(line: HbaLine) -> bool:
    """The line authenticates by the client certificate's name: `cert`, or any method with clientcert=verify-full."""
    return line.method == "cert" or line.options.get("clientcert") == "verify-full"


def hba_asks_cert(line: HbaLine) -> bool:
    """The line needs a client certificate at all (clientcert=verify-ca only checks its chain)."""
    return hba_checks_cert(line) or line.options.get("clientcert") == "verify-ca"


def ident_maps(ident: Sequence[IdentLine], map_name: str, system_user: str, user: str) -> bool:
    """pg_ident.conf: some line of `map_name` maps `system_user` (a CN) to the database `user`.

    A system name starting with / is a regular expression whose first group replaces \\1 in the role;
    an unquoted role `all` or `+group` matches any user.
    """
    for rec in ident:
        if rec.map != map_name:
            continue
        system = rec.system.text
        if system.startswith("/"):
            try:
                m = re.search(system[1:], system_user)
            except re.error:
                continue
            if not m:
                continue
            role = rec.role.text.replace("\\1", m.group(1)) if "\\1" in rec.role.text and m.groups() else rec.role.text
        elif system == system_user:
            role = rec.role.text
        else:
            continue
        if role == user or (not rec.role.quoted and (role == "all" or role.startswith("+"))):
            return True
    return False


def libpq_name_matches(name: str, host: str) -> bool:
    """One certificate name (DNS SAN or CN) against the host libpq connects to, wildcards as libpq."""
    return _name_matches(name, host)


# ---- other servers in front of and beside PostgreSQL (FACTS.md, "Other clients", "Kubernetes shapes")

#: pgbouncer's default `listen_port`.
PGBOUNCER_DEFAULT_PORT = 6432
#: pgbouncer 1.18: `auth_type = cert` refuses to start unless `client_tls_sslmode = verify-full`, and it
#: compares the client certificate's CN with the user name itself (there is no pg_ident-style map).
PGBOUNCER_CERT_SSLMODE = "verify-full"
#: pgbouncer 1.18 has no CRL setting on either side (no client_tls_crl_file / server_tls_crl_file).
PGBOUNCER_HAS_CRL = False
#: pgbouncer's `*_tls_protocols` value for TLS 1.2 and 1.3 only ("secure" means the same in 1.18).
PGBOUNCER_PROTOCOLS = {"TLSv1.2": "tlsv1.2,tlsv1.3", "TLSv1.3": "tlsv1.3"}
#: libpq keywords Patroni passes through from `postgresql.authentication.<user>`.
PATRONI_AUTH_SSL_KEYS = ("sslmode", "sslcert", "sslkey", "sslrootcert", "sslcrl")
#: Patroni's REST API default port.
PATRONI_RESTAPI_PORT = 8008


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
def can_traverse(mode: int, uid: int, gid: int, *, who_uid: int, who_gids: frozenset[int]) -> bool:
    """Whether a server running as who_uid may enter a directory (open() needs x on every parent):
    the owner's, group's or others' x bit, whichever class the account falls in; root passes."""
    if who_uid == 0:
        return True
    if uid == who_uid:
        return bool(mode & 0o100)
    if gid in who_gids:
        return bool(mode & 0o010)
    return bool(mode & 0o001)


#: Kong builds its combined trust file only while preparing its prefix: a changed kong.conf needs this.
KONG_APPLY = "kong restart (or kong reload)"
