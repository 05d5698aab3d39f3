"""`verify --kong-conf`: the Kong-side policy checks that Kong's two connection paths expose.

Pure, over what `inputs.gather` loaded: pg_ssl_version against the server's TLS floor
(Kong's start-up connection speaks only that version), whether the Kong workers' OS user
can traverse to and read pg_ssl_cert and pg_ssl_cert_key (Kong Enterprise reads them in
the workers for every new connection), and `system` in lua_ssl_trusted_certificate
(every public CA may then vouch for the database, as pgmoon checks no host name).
"""

from __future__ import annotations

import stat

from pgkongtls.consumers import (
    KONG_DEFAULT_PG_SSL_VERSION,
    KONG_PG_SSL_VERSIONS,
    PG_SSL_VERSION_FLOOR,
    PG_SSL_VERSION_FOR_MIN_TLS,
)
from pgkongtls.inputs import Account, KongInput, PathStat, VerifyInput
from pgkongtls.verify import ERROR, WARNING, Finding

#: PostgreSQL's ssl_min_protocol_version values, lowest first; its default since 13 is TLSv1.2.
_PG_VERSIONS = ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
_PG_DEFAULT_MIN = "TLSv1.2"


def check_kong_policy(v: VerifyInput, kong: KongInput, *, edition: str) -> list[Finding]:
    """Every Kong-side policy finding for this kong.conf."""
    out = check_trust_system(kong)
    if edition == "enterprise":
        out += check_ssl_version(v, kong)
        out += check_worker_access(kong, v.kong_os_user, v.kong_account)
    return out


def check_ssl_version(v: VerifyInput, kong: KongInput) -> list[Finding]:
    """pg_ssl_version below ssl_min_protocol_version: Kong Enterprise does not start."""
    raw = kong.values.get("pg_ssl_version")
    version = raw.value if raw else KONG_DEFAULT_PG_SSL_VERSION
    where = f"line {raw.line}: " if raw else ""
    if version not in KONG_PG_SSL_VERSIONS:
        return [Finding("kong-ssl-version", ERROR, kong.path,
                        f"{where}pg_ssl_version = {version!r} is not one of {', '.join(KONG_PG_SSL_VERSIONS)}: "
                        "Kong Enterprise refuses to start", "set pg_ssl_version = tlsv1_3 (or tlsv1_2 or any)")]
    if v.pg is None:
        return []
    setting = v.pg.settings.get("ssl_min_protocol_version")
    floor = setting.value if setting else _PG_DEFAULT_MIN
    speaks = PG_SSL_VERSION_FLOOR[version]
    if speaks is None or floor not in _PG_VERSIONS or _PG_VERSIONS.index(speaks) >= _PG_VERSIONS.index(floor):
        return []
    want = PG_SSL_VERSION_FOR_MIN_TLS.get(floor, "any")
    return [Finding("kong-ssl-version", ERROR, kong.path,
                    f"{where}pg_ssl_version = {version}{'' if raw else ' (Kong default)'} is below the server's "
                    f"ssl_min_protocol_version = {floor} ({v.pg.path}): Kong Enterprise's start-up connection "
                    "speaks only that version and fails with 'tlsv1 alert protocol version', so Kong does not start",
                    f"set pg_ssl_version = {want} (pgkongtls render kong --min-tls {floor})")]


def check_trust_system(kong: KongInput) -> list[Finding]:
    """`system` lets any publicly trusted CA impersonate the database: pgmoon checks no host name."""
    if not any(t.entry == "system" for t in kong.trust):
        return []
    raw = kong.values.get("lua_ssl_trusted_certificate")
    where = f"line {raw.line}: " if raw else "Kong's default "
    return [Finding("kong-trust-system", WARNING, kong.path,
                    f"{where}lua_ssl_trusted_certificate includes system: Kong checks no host name, so any server "
                    "with a certificate from any publicly trusted CA in the OS bundle is accepted as the database",
                    "trust only the database's own CA (pgkongtls render kong --no-system); Kong's other outbound "
                    "TLS then needs the public CAs it uses listed explicitly")]


def _can(who: Account, st: PathStat, bit_owner: int, bit_group: int, bit_other: int) -> bool:
    """The POSIX permission check for one non-root user (no ACLs)."""
    if who.uid == 0:
        return True
    if st.uid == who.uid:
        return bool(st.mode & bit_owner)
    if st.gid in who.gids:
        return bool(st.mode & bit_group)
    return bool(st.mode & bit_other)


def _describe(st: PathStat) -> str:
    return f"owner {st.owner}:{st.group}, mode {st.mode:04o}"


def check_worker_access(kong: KongInput, os_user: str, who: Account | None) -> list[Finding]:
    """Kong Enterprise's workers (nginx_user) read pg_ssl_cert and pg_ssl_cert_key for every new connection."""
    keys = [k for k in ("pg_ssl_cert", "pg_ssl_cert_key") if kong.access.get(k)]
    if not keys:
        return []
    if who is None:
        return [Finding("kong-user-unchecked", WARNING, kong.path,
                        f"this host has no user {os_user!r}, so whether Kong's workers can read pg_ssl_cert_key "
                        "is not checked", "pass --kong-os-user with the user in Kong's nginx_user")]
    out: list[Finding] = []
    for key in keys:
        chain = kong.access[key]
        path = chain[-1].path
        blocked = next((d for d in chain[:-1]
                        if not _can(who, d, stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH)), None)
        fix_file = (f"chown {os_user}:{os_user} {path} && chmod 0600 {path} (or root:{os_user} 0640)"
                    if key == "pg_ssl_cert_key" else f"chmod 0644 {path}")
        if blocked is not None:
            out.append(Finding("kong-key-access", ERROR, path,
                               f"{key}: Kong's workers run as {os_user} and cannot traverse {blocked.path} "
                               f"({_describe(blocked)}): Kong starts (the master is root), then every connection "
                               "fails in the workers",
                               f"chgrp {os_user} {blocked.path} && chmod g+x {blocked.path} (or chmod o+x)"))
        elif not _can(who, chain[-1], stat.S_IRUSR, stat.S_IRGRP, stat.S_IROTH):
            out.append(Finding("kong-key-access", ERROR, path,
                               f"{key}: Kong's workers run as {os_user} and cannot read {path} "
                               f"({_describe(chain[-1])}): Kong starts (the master is root), then every connection "
                               "fails with \"attempt to get length of local 'pem' (a nil value)\"", fix_file))
    return out
