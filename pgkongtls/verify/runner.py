"""The check runner: every check that the inputs allow, in one list."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.x509.oid import NameOID

from pgkongtls import DEFAULT_WARN_DAYS
from pgkongtls.consumers import KONG_DEFAULT_DATABASE, KONG_DEFAULT_USER
from pgkongtls.inputs_model import CertFile, KeyFile, VerifyInput
from pgkongtls.verify.chain import name_of
from pgkongtls.verify.findings import ERROR, Finding, Seen, settle
from pgkongtls.verify.kong import check_kong, check_kong_policy
from pgkongtls.verify.pkidir import PkiTrust, check_pki, check_pki_crl, pki_pool
from pgkongtls.verify.postgres import check_hba, check_pg, server_sent


def _client_files(v: VerifyInput) -> list[CertFile]:
    """Kong's pg_ssl_cert when it can be read, else the PKI's client certificates."""
    if v.kong is not None and isinstance(v.kong.cert, CertFile):
        return [v.kong.cert]
    if v.pki is not None:
        return [e.cert for e in v.pki.role("client") if isinstance(e.cert, CertFile)]
    return []


def _server_files(v: VerifyInput) -> list[x509.Certificate]:
    """What PostgreSQL sends, from postgresql.conf, else the PKI's server certificate and its CAs."""
    if v.pg is not None:
        return server_sent(v.pg)
    if v.pki is not None:
        for e in v.pki.role("server"):
            if isinstance(e.cert, CertFile):
                return list(e.cert.certs) + [c for c in pki_pool(v.pki) if c not in e.cert.certs]
    return []


def _hba(v: VerifyInput, *, edition: str, clients: list[CertFile]) -> list[Finding]:
    """pg_hba.conf for the user and database Kong logs in as (kong.conf, else the manifest, else Kong's defaults)."""
    kv = v.kong.values if v.kong is not None else {}
    user = kv["pg_user"].value if "pg_user" in kv else (
        v.pki.manifest.db_user if v.pki is not None and v.pki.manifest is not None else KONG_DEFAULT_USER)
    database = kv["pg_database"].value if "pg_database" in kv else KONG_DEFAULT_DATABASE
    return check_hba(v, user=user, database=database, edition=edition,
                     client_cns=[name_of(c.certs[0]) for c in clients],
                     kong_sends_cert=(v.kong.cert is not None) if v.kong is not None else None)


def _client_has_cn(clients: list[CertFile]) -> list[Finding]:
    """cert (and clientcert=verify-full) match the CN against the role: a certificate without one (mkcert's)
    can never log in, whatever pg_hba.conf says, so this needs no --pg-hba."""
    return [Finding("client-no-cn", ERROR, c.path,
                    f"{c.path} has no CN: PostgreSQL's cert authentication matches the CN against the role, so it "
                    "is refused ('certificate authentication failed')",
                    "issue one with a CN: pgkongtls issue client --name NAME --cn <db user>")
            for c in clients if not c.certs[0].subject.get_attributes_for_oid(NameOID.COMMON_NAME)]


def run_checks(v: VerifyInput, *, now: dt.datetime, warn_days: int = DEFAULT_WARN_DAYS,
               edition: str = "enterprise") -> list[Finding]:
    """Every check that the inputs allow, errors first, duplicates removed."""
    seen = Seen(set())
    out: list[Finding] = []
    if v.pki is not None:
        served = frozenset(k.real for k in (v.pg.key if v.pg else None, v.kong.key if v.kong else None)
                           if isinstance(k, KeyFile) and k.real)
        trust = PkiTrust(v.pki, now)  # one set of OpenSSL stores, and each leaf's chain built once
        out += check_pki(v.pki, now=now, warn_days=warn_days, seen=seen, served_keys=served, trust=trust)
        if v.pki.crl is not None and v.pg is None:
            out += check_pki_crl(v.pki, now=now, trust=trust)
    clients = _client_files(v) if edition == "enterprise" else []
    if v.pg is not None:
        out += check_pg(v, v.pg, now=now, warn_days=warn_days, seen=seen, clients=clients)
    if v.kong is not None:
        out += check_kong(v.kong, edition=edition, server_sent=_server_files(v), now=now, seen=seen,
                          warn_days=warn_days)
        out += check_kong_policy(v, v.kong, edition=edition)
    if v.hba is not None:
        out += _hba(v, edition=edition, clients=clients)
    else:
        out += _client_has_cn(clients)
    return settle(out)
