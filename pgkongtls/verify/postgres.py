"""PostgreSQL's side: postgresql.conf and the files it names, then pg_hba.conf and pg_ident.conf.

A key named by `ssl_key_file` is held to PostgreSQL's own rule, owner included
(`consumers.pg_key_mode_refused`): owned by the PostgreSQL OS user with mode
0600 or less, or by root with 0640 or less and readable by that user through
its group.
"""

from __future__ import annotations

import datetime as dt
import stat
from collections.abc import Sequence

from cryptography import x509

from pgkongtls.confparse import HbaLine, Token
from pgkongtls.consumers import (
    PG_HBA_ANY_ADDRESS,
    PG_KEY_MODE_ERROR,
    PG_KEY_MODE_OWNER,
    PG_KEY_MODE_ROOT,
    can_traverse,
    hba_asks_cert,
    hba_checks_cert,
    hba_covers,
    ident_maps,
    pg_bool,
    pg_key_mode_refused,
    pg_sends,
)
from pgkongtls.inputs_model import Account, CertFile, CrlFile, KeyFile, Missing, PgInput, VerifyInput
from pgkongtls.verify.chain import Verifier, check_crls, name_of
from pgkongtls.verify.findings import ERROR, WARNING, Finding, Seen
from pgkongtls.verify.profile import check_encrypted, check_key_pair, check_profile, check_validity

# --------------------------------------------------------------------------- postgresql.conf


def server_sent(pg: PgInput) -> list[x509.Certificate]:
    """The chain this PostgreSQL sends, as far as its files can be read."""
    if not isinstance(pg.cert, CertFile):
        return []
    return pg_sends(pg.cert.certs, pg.ca.certs if isinstance(pg.ca, CertFile) else ())


def check_pg_key_mode(key: KeyFile, account: Account | None, os_user: str) -> list[Finding]:
    """PostgreSQL's rule (be-secure-common.c): owner the server's user with ≤0600, or root with ≤0640."""
    mode = key.mode
    root_fix = f"chown root:{os_user} {key.path} && chmod {PG_KEY_MODE_ROOT:04o} {key.path}"
    if key.uid == 0:
        if pg_key_mode_refused(mode, root_owned=True):
            return [Finding("key-mode", ERROR, key.path,
                            f"{key.path} is owned by root with mode {mode:04o}: PostgreSQL refuses it (has group or "
                            f"world access; root-owned keys may be at most {PG_KEY_MODE_ROOT:04o})", root_fix)]
        if account is not None and not (mode & stat.S_IRGRP and key.gid in account.gids):
            return [Finding("key-mode", ERROR, key.path,
                            f"{key.path} is owned by root and {os_user} cannot read it through its group "
                            f"(mode {mode:04o}); PostgreSQL fails with permission denied", root_fix)]
        return []
    if account is None:
        return [Finding("key-owner", WARNING, key.path,
                        f"{key.path} is owned by {key.owner}; this host has no user {os_user!r} to compare with "
                        "(PostgreSQL wants its own user or root as the owner)",
                        "pass --pg-os-user with the account PostgreSQL runs as")]
    if key.uid != account.uid:
        return [Finding("key-owner", ERROR, key.path,
                        f"{key.path} is owned by {key.owner}: PostgreSQL accepts only a key owned by {os_user} "
                        "or root", f"chown {os_user}:{os_user} {key.path} && chmod {PG_KEY_MODE_OWNER:04o} {key.path}")]
    if pg_key_mode_refused(mode, root_owned=False):
        return [Finding("key-mode", ERROR, key.path,
                        f'{key.path} has mode {mode:04o}: PostgreSQL stops with "{PG_KEY_MODE_ERROR}"',
                        f"chmod {PG_KEY_MODE_OWNER:04o} {key.path}")]
    return []


def check_pg_key_reach(key: KeyFile, account: Account | None, os_user: str) -> list[Finding]:
    """The mode is not enough: PostgreSQL opens the key by path, so it needs x on every directory above it."""
    if account is None:
        return []
    for path, mode, uid, gid in key.dirs:
        if not can_traverse(mode, uid, gid, who_uid=account.uid, who_gids=account.gids):
            return [Finding("key-unreachable", ERROR, key.path,
                            f"{os_user} cannot enter {path} (mode {mode:04o}), so PostgreSQL cannot open {key.path}: "
                            "'could not load private key file … Permission denied'",
                            f"chmod o+x {path}, or install the files with pgkongtls bundle + install")]
    return []


def _pg_revocations(v: VerifyInput, pg: PgInput) -> list[Finding]:
    """Revoked in the manifest but no CRL in postgresql.conf: PostgreSQL still accepts those clients."""
    m = v.pki.manifest if v.pki is not None else None
    revoked = sorted(e.name for e in m.certificates.values() if e.revoked and e.role == "client") if m else []
    if not revoked or pg.crl is not None or pg.crl_dir is not None:
        return []
    return [Finding("pg-no-crl", ERROR, pg.path,
                    f"{', '.join(revoked)} {'is' if len(revoked) == 1 else 'are'} revoked in the PKI but "
                    "postgresql.conf sets neither ssl_crl_file nor ssl_crl_dir: PostgreSQL still accepts "
                    f"{'it' if len(revoked) == 1 else 'them'}",
                    "pgkongtls bundle postgres, then pgkongtls install --reload (it sets ssl_crl_file)")]


def _pg_files(pg: PgInput) -> list[Finding]:
    """A setting that names a missing file stops TLS at start-up (or at reload)."""
    out: list[Finding] = []
    for what, ref in (("ssl_cert_file", pg.cert), ("ssl_key_file", pg.key), ("ssl_ca_file", pg.ca),
                      ("ssl_crl_file", pg.crl), ("ssl_crl_dir", pg.crl_dir)):
        if isinstance(ref, Missing):
            out.append(Finding("pg-file-missing", ERROR, pg.path,
                               f"{what} names {ref.path}, which does not exist: PostgreSQL will not start TLS",
                               f"copy the file there or fix {what}"))
    return out


def _pg_client_ca(pg: PgInput, clients: list[CertFile], now: dt.datetime) -> list[Finding]:
    """PostgreSQL verifies each client against ssl_ca_file, and against every CRL level when CRLs are set."""
    out: list[Finding] = []
    if isinstance(pg.ca, CertFile):
        store = Verifier(pg.ca.certs, now=now)  # one store for every client of a big PKI
        for client in clients:
            res = store.verify(client.certs[0], client.certs[1:])
            if not res.ok:
                out.append(Finding("pg-ca-file", ERROR, pg.ca.path,
                                   f"ssl_ca_file does not hold the issuer chain of {client.path} "
                                   f"({name_of(client.certs[0])}): {res.describe()}; PostgreSQL rejects that client",
                                   "point ssl_ca_file at chain.crt (intermediate + root) of the client's PKI"))
                continue
            for crls in (pg.crl, pg.crl_dir):
                if isinstance(crls, CrlFile):
                    out += check_crls(res.chain, crls, now=now, who=f"the client certificate {name_of(res.chain[0])}")
    elif pg.ca is None and clients:
        out.append(Finding("pg-no-ca", ERROR, pg.path,
                           "ssl_ca_file is not set: PostgreSQL cannot verify client certificates, so cert and "
                           "clientcert=verify-full logins fail", "set ssl_ca_file to chain.crt and reload"))
    return out


def check_pg(v: VerifyInput, pg: PgInput, *, now: dt.datetime, warn_days: int, seen: Seen,
             clients: list[CertFile]) -> list[Finding]:
    """postgresql.conf: TLS on, its files present, the server certificate and key, and the client CA."""
    out: list[Finding] = []
    ssl = pg.settings.get("ssl")
    if ssl is None or not pg_bool(ssl.value):
        out.append(Finding("pg-ssl-off", ERROR, pg.path,
                           "ssl is not on: PostgreSQL answers N to every SSLRequest and Kong gets no TLS",
                           "set ssl = on in postgresql.conf and run SELECT pg_reload_conf()"))
    out += _pg_files(pg)
    if isinstance(pg.cert, CertFile) and seen.first(pg.cert.real):
        out += check_profile(pg.cert.certs[0], "server", pg.cert.path)
        for c in pg.cert.certs:
            out += check_validity(c, pg.cert.path, now, warn_days)
    if isinstance(pg.key, KeyFile):
        if isinstance(pg.cert, CertFile):
            out += check_key_pair(pg.cert, pg.key, "server")
        out += check_pg_key_mode(pg.key, v.pg_account, v.pg_os_user)
        out += check_pg_key_reach(pg.key, v.pg_account, v.pg_os_user)
        if pg.key.encrypted and "ssl_passphrase_command" not in pg.settings:
            out += check_encrypted(pg.key, "server")
    return out + _pg_client_ca(pg, clients, now) + _pg_revocations(v, pg)


# --------------------------------------------------------------------------- pg_hba.conf and pg_ident.conf


def _line_text(line: HbaLine) -> str:
    def col(ts: tuple[Token, ...]) -> str:
        return ",".join(f'"{t.text}"' if t.quoted else t.text for t in ts)
    opts = " ".join(f"{k}={v}" for k, v in line.options.items())
    return " ".join(x for x in (line.type, col(line.databases), col(line.users), line.address or "", line.method, opts) if x)


def _deciding_line(lines: Sequence[HbaLine], path: str, *, user: str, database: str,
                   ) -> tuple[list[Finding], HbaLine | None]:
    """PostgreSQL uses the first matching line; a narrower line above Kong's that checks no certificate is
    reported (it decides for the clients it names) and passed over, since Kong may not connect from there."""
    out: list[Finding] = []
    for line in lines:
        if line.type not in ("host", "hostssl"):
            continue
        if not (hba_covers(line.databases, database, same=user, kind="database")
                and hba_covers(line.users, user, kind="user")):
            continue
        if line.address not in PG_HBA_ANY_ADDRESS and not hba_checks_cert(line):
            # an error: Kong connecting from there (initdb's 127.0.0.1/32 line: Kong on the database host)
            # gets this line's method, e.g. "fe_sendauth: no password supplied"
            out.append(Finding("hba-shadowed", ERROR, path,
                               f"line {line.line} ({_line_text(line)}) comes first for connections from "
                               f"{line.address} and does not check Kong's certificate: Kong connecting from there "
                               "gets its method instead", "move the hostssl line for Kong above it (pgkongtls install "
                               "puts it at the top), or narrow this line"))
            continue
        return out, line
    return out, None


def _oss_needs_no_cert(line: HbaLine, path: str, text: str) -> list[Finding]:
    """Open-source Kong has no pg_ssl_cert, so any line that asks for a certificate locks it out."""
    if not hba_asks_cert(line):
        return []
    return [Finding("hba-oss-cert", ERROR, path, f"{text} needs a client certificate, which open-source Kong cannot send",
                    "use hostssl ... scram-sha-256 (pgkongtls render hba --edition oss)")]


def _hostssl(line: HbaLine, path: str, text: str) -> list[Finding]:
    """A `host` line matches plaintext connections too; only the method keeps them out."""
    if line.type != "host":
        return []
    return [Finding("hba-plaintext", WARNING, path,
                    f"{text} is a host line: the same rule would admit a connection without TLS if the "
                    "method did not need a certificate", "use hostssl")]


def _kong_sends_cert(kong_sends_cert: bool | None, path: str, text: str) -> list[Finding]:
    """A line that checks the certificate refuses a Kong whose kong.conf sets none."""
    if kong_sends_cert is not False:
        return []
    return [Finding("kong-no-client-cert", ERROR, path,
                    f"{text} needs a client certificate but kong.conf sets no pg_ssl_cert: PostgreSQL "
                    "answers \"connection requires a valid client certificate\"",
                    "set pg_ssl_cert and pg_ssl_cert_key in kong.conf (Kong Enterprise)")]


def _client_cns(v: VerifyInput, line: HbaLine, path: str, text: str, *, user: str,
                client_cns: list[str]) -> list[Finding]:
    """The CN must be the user, or map= must map it to the user in pg_ident.conf."""
    out: list[Finding] = []
    map_name = line.options.get("map")
    for cn in client_cns:
        if "clientname" in line.options and line.options["clientname"].upper() == "DN":
            continue  # the full DN is matched through the map; only maps are checked for it below
        if map_name:
            if v.ident is None:
                out.append(Finding("ident-unchecked", WARNING, path,
                                   f"{text} maps CNs with map={map_name}; pg_ident.conf was not given",
                                   "pass --pg-ident to check the map"))
                break
            if not ident_maps(v.ident[1], map_name, cn, user):
                out.append(Finding("client-cn", ERROR, v.ident[0],
                                   f"map {map_name!r} does not map the client CN {cn!r} to {user!r}: PostgreSQL "
                                   f"answers 'certificate authentication failed for user \"{user}\"'",
                                   f"add the line '{map_name} {cn} {user}' to pg_ident.conf and reload"))
        elif cn != user:
            out.append(Finding("client-cn", ERROR, path,
                               f"the client CN {cn!r} is not the user {user!r} and {text} has no map=: PostgreSQL "
                               f"answers 'certificate authentication failed for user \"{user}\"'",
                               "add map=pgkongtls and a pg_ident.conf line (pgkongtls render hba/ident)"))
    return out


def check_hba(v: VerifyInput, *, user: str, database: str, edition: str, client_cns: list[str],
              kong_sends_cert: bool | None) -> list[Finding]:
    """The first pg_hba.conf line that matches Kong's TLS connection decides; it must check the certificate."""
    assert v.hba is not None
    path, lines = v.hba
    out, deciding = _deciding_line(lines, path, user=user, database=database)
    if deciding is None:
        return out + [Finding("hba-no-line", ERROR, path,
                              f"no host/hostssl line admits user {user!r} to database {database!r}: PostgreSQL "
                              "answers \"no pg_hba.conf entry\"", "append the line from pgkongtls render hba")]
    text = f"line {deciding.line} ({_line_text(deciding)})"
    if deciding.method == "reject":
        return out + [Finding("hba-reject", ERROR, path, f"{text} rejects Kong's connection",
                              "put the hostssl line for Kong above it")]
    if edition == "oss":
        return out + _oss_needs_no_cert(deciding, path, text)
    if not hba_checks_cert(deciding):
        return out + [Finding("hba-method", ERROR, path,
                              f"{text} decides for Kong and does not check the client certificate's CN",
                              "use cert, or add clientcert=verify-full (pgkongtls render hba)")]
    return (out + _hostssl(deciding, path, text) + _kong_sends_cert(kong_sends_cert, path, text)
            + _client_cns(v, deciding, path, text, user=user, client_cns=client_cns))
