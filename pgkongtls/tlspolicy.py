"""One TLS policy for both ends: what `--tls-profile` and `--min-tls` mean for PostgreSQL and for Kong.

Pure: manifest and options in, settings and comment lines out. The renderers
write what this decides, so the server's floor and Kong's start-up protocol
(`pg_ssl_version`) cannot drift apart.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from pgkongtls.consumers import (
    DEFAULT_TLS_PROFILE,
    KONG_DEFAULT_LUA_SSL_PROTOCOLS,
    KONG_PG_SSL_VERSIONS,
    MODERN_MAX_LEAF_DAYS,
    MOZILLA_INTERMEDIATE_CIPHERS,
    PG_DEFAULT_ECDH_CURVE,
    PG_DEFAULT_PREFER_SERVER_CIPHERS,
    PG_MIN_TLS,
    PG_SSL_VERSION_FLOOR,
    PG_SSL_VERSION_FOR_MIN_TLS,
    TLS_PROFILES,
)
from pgkongtls.errors import InputError
from pgkongtls.manifest import Manifest


@dataclass(frozen=True)
class Policy:
    """The resolved policy: a profile and the TLS floor both ends use."""

    profile: str
    min_tls: str


def resolve(profile: str = DEFAULT_TLS_PROFILE, min_tls: str | None = None) -> Policy:
    """`modern` is TLS 1.3 only, so it sets the floor itself and refuses a lower explicit one."""
    if profile not in TLS_PROFILES:
        raise InputError(f"unknown --tls-profile {profile!r}; use one of {', '.join(TLS_PROFILES)}")
    if min_tls is not None and min_tls not in PG_MIN_TLS:
        raise InputError(f"unknown --min-tls {min_tls!r}; use one of {', '.join(PG_MIN_TLS)}")
    if profile == "modern":
        if min_tls not in (None, "TLSv1.3"):
            raise InputError(f"--tls-profile modern is TLS 1.3 only; drop --min-tls {min_tls} or pass --min-tls TLSv1.3")
        return Policy(profile, "TLSv1.3")
    return Policy(profile, min_tls or PG_MIN_TLS[0])


def _days(start: str, end: str) -> int:
    """Whole days, as the Mozilla-profile graders count a lifespan (init back-dates notBefore by minutes)."""
    def parse(t: str) -> dt.datetime:
        return dt.datetime.fromisoformat(t.replace("Z", "+00:00"))

    return (parse(end) - parse(start)).days


def check_keys_and_lifetimes(m: Manifest, policy: Policy, server: str = "server") -> None:
    """Mozilla "modern" also wants an ECDSA key and a server certificate of at most 90 days: refuse, with the fix."""
    if policy.profile != "modern":
        return
    if not m.key_type.startswith("ecdsa"):
        raise InputError(f"--tls-profile modern needs ECDSA keys and this PKI has {m.key_type}; "
                         "re-create it with pgkongtls init --key-type ecdsa-p256")
    e = m.certificates[server]
    days = _days(e.not_before, e.not_after)
    if days > MODERN_MAX_LEAF_DAYS:
        raise InputError(f"--tls-profile modern allows a server certificate of at most {MODERN_MAX_LEAF_DAYS} days and "
                         f"{e.file} lasts {days}; re-issue it with --days {MODERN_MAX_LEAF_DAYS}")


def postgres_lines(policy: Policy) -> list[str]:
    """postgresql.conf lines (with comments) for the floor and the TLS 1.2 ciphers."""
    lines = [f"ssl_min_protocol_version = '{policy.min_tls}'"]
    if policy.profile == "legacy":
        return ["# --tls-profile legacy: PostgreSQL's own ssl_ciphers default (HIGH:MEDIUM:+3DES:!aNULL) stays,",
                "# with CBC and static-RSA suites that Mozilla's intermediate profile fails.", *lines]
    if policy.min_tls == "TLSv1.3":
        return [f"# --tls-profile {policy.profile}: TLS 1.3 only, so ssl_ciphers (TLS 1.2 and below) has no",
                "# effect and stays at its default.", *lines]
    return [
        f"# --tls-profile {policy.profile}: Mozilla's intermediate TLS 1.2 ciphers (forward secret AEAD only).",
        f"# ssl_prefer_server_ciphers ({PG_DEFAULT_PREFER_SERVER_CIPHERS}) and ssl_ecdh_curve ({PG_DEFAULT_ECDH_CURVE}) "
        "stay at their defaults on purpose:",
        "# off loses the server's cipher order, and PostgreSQL 15 takes a single curve (X25519 does not work).",
        *lines,
        f"ssl_ciphers = '{MOZILLA_INTERMEDIATE_CIPHERS}'",
    ]


def _floor_rank(tls: str) -> int:
    return PG_MIN_TLS.index(tls)


def kong_ssl_version(policy: Policy, explicit: str | None) -> str:
    """pg_ssl_version: derived from the server's floor, or the explicit one when it can reach that floor.

    Kong's start-up connection (LuaSec) speaks only this version, so one below the
    server's minimum stops Kong from starting ("tlsv1 alert protocol version").
    """
    if explicit is None:
        return PG_SSL_VERSION_FOR_MIN_TLS[policy.min_tls]
    if explicit not in KONG_PG_SSL_VERSIONS:
        raise InputError(f"unknown --pg-ssl-version {explicit!r}; use one of {', '.join(KONG_PG_SSL_VERSIONS)}")
    floor = PG_SSL_VERSION_FLOOR[explicit]
    if floor is not None and _floor_rank(floor) < _floor_rank(policy.min_tls):
        raise InputError(f"--pg-ssl-version {explicit} is below --min-tls {policy.min_tls}: Kong Enterprise would not "
                         f"start (its start-up connection speaks only {floor}); use "
                         f"{PG_SSL_VERSION_FOR_MIN_TLS[policy.min_tls]} or any")
    return explicit


def kong_comments(policy: Policy, pg_ssl_version: str) -> list[str]:
    """What the profile means on the Kong side, for the kong.conf comments (lua_ssl_protocols is not set:
    it governs all of Kong's outbound TLS, and Kong's default already includes TLS 1.3)."""
    match = "TLSv1.3" if policy.min_tls == "TLSv1.3" else KONG_DEFAULT_LUA_SSL_PROTOCOLS
    return [
        f"# TLS policy ({policy.profile}, PostgreSQL minimum {policy.min_tls}): pg_ssl_version = {pg_ssl_version} is what",
        "# Kong's start-up connection speaks; the workers use lua_ssl_protocols, whose matching value is",
        f"#   lua_ssl_protocols = {match}",
        f"# (Kong's default is {KONG_DEFAULT_LUA_SSL_PROTOCOLS}; it also applies to Kong's other outbound TLS,",
        "# so pgkongtls leaves it as is).",
    ]


_OS_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")


def key_owner_lines(os_user: str, key: str, cert: str) -> list[str]:
    """Who must own the client key on the Kong host: Kong Enterprise's workers read it for every connection."""
    if not _OS_USER.fullmatch(os_user):
        raise InputError(f"--kong-os-user {os_user!r} is not a user name (lower case letters, digits, '_' or '-')")
    return [
        f"# Kong's workers run as {os_user} (nginx_user) and read pg_ssl_cert and pg_ssl_cert_key for every new",
        f"# connection, so the key must be owned by {os_user} with mode 0600, or by root:{os_user} with mode 0640",
        "# (a root-owned 0600 key lets Kong start, then fails every connection in the workers):",
        f"#   chown {os_user}:{os_user} {key} && chmod 0600 {key}",
        f"#   (or: chown root:{os_user} {key} && chmod 0640 {key})",
        f"# {os_user} must also read {cert} and traverse (x) every directory above both.",
    ]


def system_warning() -> list[str]:
    """Why `system,` in lua_ssl_trusted_certificate is a risk for the database connection."""
    return [
        "# WARNING: 'system,' makes Kong trust every public CA in the OS bundle for PostgreSQL too. pgmoon checks",
        "# no host name, so anyone holding a certificate from any publicly trusted CA can impersonate the",
        "# database to Kong. Kong's default keeps it for its other outbound TLS (plugins calling HTTPS APIs).",
        "# Render with --no-system to trust only this PKI (then those plugins trust only this CA too).",
    ]
