"""pg_hba.conf and pg_ident.conf for Kong's identities: lines, maps, addresses (pure, returns `str`)."""

from __future__ import annotations

import ipaddress
import re

from pgkongtls.errors import InputError
from pgkongtls.manifest import Manifest
from pgkongtls.render import _IDENT_REGEX, AUTHS, EDITIONS, MAP_NAME, _header, _no_controls, hba_name, hba_token


def client_cns(m: Manifest, replication: str | None = None) -> list[str]:
    """CNs of Kong's client certificates still in service (not revoked), in name order: with
    `replication`, the replication identity is not one of Kong's and must never map to Kong's role."""
    skip = _replication_cn(m, replication)
    return sorted({e.cn for e in m.by_role("client") if not e.revoked and e.cn != skip})


def _replication_cn(m: Manifest, replication: str | None) -> str | None:
    if replication is None:
        return None
    from pgkongtls.render_topology import replication_identity

    return replication_identity(m, replication).cn


def needs_map(m: Manifest, db_user: str, replication: str | None = None) -> bool:
    return any(cn != db_user for cn in client_cns(m, replication))


def default_auth(edition: str) -> str:
    """Open-source Kong has no client certificate, so only a password can authenticate it."""
    return "scram" if edition == "oss" else "cert"


#: pg_hba.conf address keywords.
HBA_ADDRESS_WORDS = ("all", "samehost", "samenet")
_HOSTNAME = re.compile(r"\.?[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*")


def hba_address(value: str) -> str:
    """The address column as PostgreSQL reads it: a keyword, CIDR, bare IP (gets its /32 or /128), or host name."""
    _no_controls(value, "--address")
    if value in HBA_ADDRESS_WORDS:
        return value
    if "[" in value or "]" in value:
        raise InputError(f"--address {value!r}: pg_hba.conf takes an IPv6 address without brackets, "
                         f"e.g. {value.strip('[]')}/128")
    if "/" in value:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise InputError(f"--address {value!r} is not a valid CIDR range (PostgreSQL rejects it); "
                             "use e.g. 10.0.0.0/8 or 2001:db8::/32") from None
        return value
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        if not _HOSTNAME.fullmatch(value):
            raise InputError(f"--address {value!r} is neither all, samehost, samenet, a CIDR range nor a "
                             "host name") from None
        return value
    return f"{ip}/{ip.max_prefixlen}"


def hba_warnings(auth: str, edition: str) -> list[str]:
    """What the operator must hear about a method/edition pair (the CLI prints these on stderr too)."""
    if auth == "scram" and edition == "enterprise":
        return ["Kong Enterprise with --auth scram: pgmoon 2.3.3.0 breaks every new connection in a worker after its "
                "first SCRAM-SHA-256-PLUS login (2.3.2.0, pinned by Kong Enterprise 3.10, is not verified); "
                "use --auth cert"]
    return []


def render_hba(
    m: Manifest, *, auth: str = "cert", edition: str = "enterprise", database: str = "all",
    user: str | None = None, address: str = "all", reject_plaintext: bool = True, replication: str | None = None,
) -> str:
    """The pg_hba.conf line(s) that admit Kong over TLS only (and, with `replication`, that role's standbys)."""
    if auth not in AUTHS:
        raise InputError(f"unknown --auth {auth!r}; use one of {', '.join(AUTHS)}")
    if edition not in EDITIONS:
        raise InputError(f"unknown --edition {edition!r}; use enterprise or oss")
    if edition == "oss" and auth != "scram":
        raise InputError(f"--auth {auth} needs a client certificate, which open-source Kong cannot send; use --auth scram")
    db_user = user or m.db_user
    mapped = needs_map(m, db_user, replication)
    cols = f"{hba_token(database, '--database')} {hba_name(db_user, '--user')} {hba_address(address)}"
    lines = _header(m, "pg_hba.conf lines for Kong",
                    "append to pg_hba.conf (first match wins: put them above broader lines), then reload")
    if auth == "cert":
        lines.append("# cert: the client certificate must chain to ssl_ca_file and its CN must be the role (or map to it).")
        line = f"hostssl {cols} cert" + (f" map={MAP_NAME}" if mapped else "")
    elif auth == "verify-full":
        if mapped:
            raise InputError("client CNs differ from the db user and only --auth cert can map them; use --auth cert")
        lines += [
            "# trust clientcert=verify-full: the certificate's CN must be the role, and then NO password is asked.",
            "# WARNING: anyone holding a valid certificate from this CA for that CN logs in.",
        ]
        line = f"hostssl {cols} trust clientcert=verify-full"
    elif edition == "oss":
        lines += [
            "# scram-sha-256 over TLS: open-source Kong cannot present a client certificate, so a password",
            f"# authenticates it. Set one: ALTER ROLE {db_user} PASSWORD '...'; and pg_password in kong.conf.",
        ]
        line = f"hostssl {cols} scram-sha-256"
    else:
        if mapped:
            raise InputError("client CNs differ from the db user and only --auth cert can map them; use --auth cert")
        lines += [f"# WARNING: {w}" for w in hba_warnings(auth, edition)]
        lines += [
            "# scram-sha-256 clientcert=verify-full: a certificate whose CN is the role AND a password.",
            f"# Set one: ALTER ROLE {db_user} PASSWORD '...'; and pg_password in kong.conf.",
        ]
        line = f"hostssl {cols} scram-sha-256 clientcert=verify-full"
    lines.append(line)
    if replication is not None:
        from pgkongtls.render_topology import replication_hba_lines

        lines += replication_hba_lines(m, replication, address)
    if reject_plaintext:
        lines += ["# refuse every connection that is not TLS", "hostnossl all all all reject"]
    return "\n".join(lines) + "\n"


def _ident_regex(cns: list[str]) -> str | None:
    """`/^prefix[0-9]+$` when two or more CNs are one prefix plus a number."""
    matches = [re.fullmatch(r"(.*?)([0-9]+)", cn) for cn in cns]
    if len(cns) < 2 or not all(matches):
        return None
    prefixes = {mt.group(1) for mt in matches if mt}
    if len(prefixes) != 1:
        return None
    prefix = prefixes.pop()
    escaped = re.sub(r"([.^$|()\[\]{}*+?\\])", r"\\\1", prefix)
    return f"/^{escaped}[0-9]+$"


def ident_entries(m: Manifest, db_user: str | None = None, replication: str | None = None) -> list[tuple[str, str]]:
    """(system name, role) pairs for map `pgkongtls`: a regex for a numbered fleet, else one per CN.

    With `map=` PostgreSQL admits only mapped CNs, so a certificate whose CN *is*
    the role gets its own identity line once any other CN needs the map.
    """
    user = db_user or m.db_user
    cns = client_cns(m, replication)
    others = [cn for cn in cns if cn != user]
    if not others:
        return []
    regex = _ident_regex(others)
    entries = [(regex, user)] if regex else [(cn, user) for cn in others]
    return entries + ([(user, user)] if user in cns else [])


def render_ident(m: Manifest, *, user: str | None = None, replication: str | None = None) -> str:
    """pg_ident.conf lines for the `map=pgkongtls` that render_hba adds when CNs differ."""
    db_user = user or m.db_user
    lines = _header(m, "pg_ident.conf map for Kong's client certificates", "append to pg_ident.conf, then reload")
    entries = ident_entries(m, db_user, replication)
    extra: list[str] = []
    if replication is not None:
        from pgkongtls.render_topology import replication_ident_lines

        extra = replication_ident_lines(m, replication)
    if not entries:
        lines.append(f"# no map needed: every client certificate's CN is the db user {db_user!r}")
        return "\n".join(lines + extra) + "\n"
    lines.append("# MAPNAME   SYSTEM-USERNAME (certificate CN)   PG-USERNAME")
    for system, role in entries:
        column = hba_token(system, "CN") if _IDENT_REGEX.fullmatch(system) else hba_name(system, "CN")
        lines.append(f"{MAP_NAME} {column} {hba_name(role, '--user')}")
    return "\n".join(lines + extra) + "\n"
