"""Kong's side: kong.conf's pg_ssl_* keys, lua_ssl_trusted_certificate and lua_ssl_verify_depth, and the files
they name, judged against the chain PostgreSQL sends.

`check_kong_policy` adds what Kong's two connection paths expose: pg_ssl_version against the server's TLS
floor (Kong's start-up connection speaks only that version), whether the Kong workers' OS user can traverse
to and read pg_ssl_cert and pg_ssl_cert_key (Kong Enterprise reads them in the workers for every new
connection), and `system` in lua_ssl_trusted_certificate (pgmoon checks no host name, so every public CA
may then vouch for the database)."""

from __future__ import annotations

import datetime as dt
import stat

from cryptography import x509

from pgkongtls.confparse import KongValue, kong_bool
from pgkongtls.consumers import (
    ENTERPRISE_ONLY,
    KONG_DEFAULT_PG_SSL_VERSION,
    KONG_PG_SSL_VERSIONS,
    PG_DEFAULT_MIN_TLS,
    PG_SSL_VERSION_FLOOR,
    PG_SSL_VERSION_FOR_MIN_TLS,
    PG_TLS_VERSIONS,
    X509Err,
    kong_depth,
    kong_keeps_quotes,
)
from pgkongtls.inputs_model import Account, CertFile, KeyFile, KongInput, Missing, PathStat, VerifyInput
from pgkongtls.verify.chain import name_of, openssl_verify
from pgkongtls.verify.findings import ERROR, WARNING, Finding, Seen
from pgkongtls.verify.profile import check_encrypted, check_key_pair, check_profile, check_validity


def _tls_on(vals: dict[str, KongValue], path: str) -> list[Finding]:
    """Without pg_ssl Kong speaks plaintext; without pg_ssl_verify it trusts any server."""
    def flag(key: str) -> bool:
        return bool(key in vals and kong_bool(vals[key].value))

    if not flag("pg_ssl"):
        return [Finding("kong-ssl-off", ERROR, path, "pg_ssl is not on: Kong talks to PostgreSQL in plaintext",
                        "set pg_ssl = on")]
    if not flag("pg_ssl_verify"):
        return [Finding("kong-no-verify", WARNING, path,
                        "pg_ssl_verify is off: Kong accepts any server certificate", "set pg_ssl_verify = on")]
    return []


def _enterprise_keys(vals: dict[str, KongValue], path: str, edition: str) -> list[Finding]:
    """Open-source Kong ignores the Enterprise-only keys silently, so a config that relies on them is wrong."""
    if edition != "oss":
        return []
    return [Finding("kong-enterprise-key", ERROR, path,
                    f"line {vals[key].line}: {key} exists only in Kong Enterprise; open-source Kong "
                    "ignores it" + (" and cannot present a client certificate" if "cert" in key else ""),
                    f"remove {key}; authenticate with scram-sha-256 over hostssl and pg_password")
            for key in ENTERPRISE_ONLY if key in vals]


def _depth_readable(vals: dict[str, KongValue], depth: int | None, path: str) -> list[Finding]:
    """A depth that is not a number is not one Kong can use, and no chain can be measured against it."""
    if depth is not None:
        return []
    return [Finding("kong-depth", ERROR, path,
                    f"lua_ssl_verify_depth = {vals['lua_ssl_verify_depth'].value!r} is not a number",
                    "set lua_ssl_verify_depth to the number of intermediate CAs (at least 1)")]


def _trust_files(kong: KongInput) -> tuple[list[Finding], list[x509.Certificate]]:
    """Each lua_ssl_trusted_certificate entry exists (Kong keeps quotes, and drops a missing `system` silently);
    returns the findings and the certificates Kong would trust."""
    out: list[Finding] = []
    trusted: list[x509.Certificate] = []
    for t in kong.trust:
        if t.entry == "system" and t.loaded is None:
            out.append(Finding("kong-trust-file", WARNING, kong.path,
                               "lua_ssl_trusted_certificate lists system, but this host has no system CA bundle: "
                               "Kong drops the entry silently", "install ca-certificates, or remove system"))
        elif isinstance(t.loaded, Missing):
            quoted = kong_keeps_quotes(t.entry)
            out.append(Finding("kong-trust-file", ERROR, kong.path,
                               f"lua_ssl_trusted_certificate names {t.entry}, which does not exist"
                               + (": Kong keeps the quotes as part of the path" if quoted else ""),
                               "fix the path" + (" and remove the quotes" if quoted else "")))
        elif isinstance(t.loaded, CertFile):
            trusted += t.loaded.certs
    return out, trusted


def _trust_covers_server(path: str, trusted: list[x509.Certificate], server_sent: list[x509.Certificate],
                         depth: int | None, now: dt.datetime) -> list[Finding]:
    """Kong's handshake: the server's chain builds from the trust list within lua_ssl_verify_depth."""
    if not server_sent:
        return [Finding("kong-trust-unchecked", WARNING, path,
                        "no server certificate to check lua_ssl_trusted_certificate against",
                        "pass the PKI directory or --postgresql-conf too")]
    if not trusted:
        return []
    res = openssl_verify(server_sent[0], trusted=trusted, untrusted=server_sent[1:], now=now)
    if not res.ok:
        return [Finding("kong-trust", ERROR, path,
                        f"lua_ssl_trusted_certificate does not hold the root of the server certificate "
                        f"{name_of(server_sent[0])}: {res.describe()}; Kong's handshake fails",
                        "add the PKI's chain.crt (or root.crt) to lua_ssl_trusted_certificate")]
    if depth is not None and res.intermediates > depth:
        return [Finding("kong-depth", ERROR, path,
                        f"lua_ssl_verify_depth = {depth} but the server chain has {res.intermediates} "
                        f"intermediate CA(s) between the leaf and the root: Kong's handshake fails "
                        f"({X509Err.CERT_CHAIN_TOO_LONG.text})", f"set lua_ssl_verify_depth = {res.intermediates}")]
    return []


def _cert_files(kong: KongInput) -> list[Finding]:
    """Kong Enterprise refuses to start with only one of pg_ssl_cert and pg_ssl_cert_key, or a missing file."""
    out: list[Finding] = []
    has_cert, has_key = kong.cert is not None, kong.key is not None
    if has_cert != has_key:
        missing_key = "pg_ssl_cert_key" if has_cert else "pg_ssl_cert"
        out.append(Finding("kong-cert-pair", ERROR, kong.path,
                           f"{'pg_ssl_cert' if has_cert else 'pg_ssl_cert_key'} is set without {missing_key}: "
                           f"Kong Enterprise refuses to start ({missing_key} must be specified)",
                           f"set {missing_key} too, or remove both"))
    for key_name, ref in (("pg_ssl_cert", kong.cert), ("pg_ssl_cert_key", kong.key)):
        if isinstance(ref, Missing):
            quoted = kong_keeps_quotes(ref.path)
            out.append(Finding("kong-file-missing", ERROR, kong.path,
                               f"{key_name}: no such file at {ref.path}"
                               + (" (Kong keeps the quotes as part of the path)" if quoted else ""),
                               "fix the path" + (" and remove the quotes" if quoted else "")))
    return out


def _client_cert(kong: KongInput, *, now: dt.datetime, seen: Seen, warn_days: int) -> list[Finding]:
    """pg_ssl_cert is the certificate PostgreSQL checks: the client profile, its dates, and its key."""
    if not isinstance(kong.cert, CertFile):
        return []
    out: list[Finding] = []
    if seen.first(kong.cert.real):
        out += check_profile(kong.cert.certs[0], "client", kong.cert.path)
        for c in kong.cert.certs:
            out += check_validity(c, kong.cert.path, now, warn_days)
    if isinstance(kong.key, KeyFile):
        out += check_key_pair(kong.cert, kong.key, "client")
    return out


def _client_key(kong: KongInput) -> list[Finding]:
    """Kong reads no encrypted key; a key others can read is readable by every local user."""
    if not isinstance(kong.key, KeyFile):
        return []
    out = check_encrypted(kong.key, "client")
    if kong.key.mode & stat.S_IRWXO:
        out.append(Finding("key-mode", ERROR, kong.key.path,
                           f"{kong.key.path} has mode {kong.key.mode:04o}: every local user can read Kong's key",
                           f"chmod 0600 {kong.key.path} (or 0640 with Kong's group)"))
    return out


def check_kong(kong: KongInput, *, edition: str, server_sent: list[x509.Certificate], now: dt.datetime,
               seen: Seen, warn_days: int) -> list[Finding]:
    """kong.conf: TLS and verification on, keys the edition has, the trust list and depth against the server's
    chain, and the client certificate and key."""
    depth = kong_depth(kong.values)
    trust_findings, trusted = _trust_files(kong)
    return (_tls_on(kong.values, kong.path) + _enterprise_keys(kong.values, kong.path, edition)
            + _depth_readable(kong.values, depth, kong.path) + trust_findings
            + _trust_covers_server(kong.path, trusted, server_sent, depth, now) + _cert_files(kong)
            + _client_cert(kong, now=now, seen=seen, warn_days=warn_days) + _client_key(kong))




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
    floor = setting.value if setting else PG_DEFAULT_MIN_TLS
    speaks = PG_SSL_VERSION_FLOOR[version]
    if speaks is None or floor not in PG_TLS_VERSIONS or PG_TLS_VERSIONS.index(speaks) >= PG_TLS_VERSIONS.index(floor):
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
