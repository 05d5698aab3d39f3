"""`pgkongtls verify`: find the file mismatches that make a restart or a connection fail.

Pure checks over what `inputs.gather` loaded. Chains are built with OpenSSL
itself (through pyOpenSSL) so "builds" means what PostgreSQL, libpq and
Kong's nginx decide, and the strict profile is OpenSSL's X509_STRICT, the flag
that Python 3.13's default SSL context sets. Profile findings then name the
cause in words.

Severity: an `error` breaks PostgreSQL, libpq `verify-full`, Kong, or a
strict client (Python 3.13's ssl, asyncpg); a `warning` is a departure from
the RFC 5280 profile that those still accept, or a risk that is not a failure.

Key modes: a key named by `ssl_key_file` is held to PostgreSQL's own rule,
owner included (owned by the PostgreSQL OS user with mode 0600 or less, or by
root with 0640 or less and readable by that user through its group). A key in
a PKI directory belongs to whoever made the directory, so there only group
and world bits are an error.
"""

from __future__ import annotations

import datetime as dt
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pgkongtls.confparse import HbaLine, IdentLine, Token, kong_bool
from pgkongtls.consumers import (
    ENTERPRISE_ONLY,
    KONG_DEFAULT_DATABASE,
    KONG_DEFAULT_USER,
    kong_depth,
    libpq_host_check,
)
from pgkongtls.inputs import (
    Account,
    CertFile,
    CrlFile,
    KeyFile,
    KongInput,
    Missing,
    PgInput,
    PkiDir,
    PkiEntry,
    VerifyInput,
)

ERROR = "error"
WARNING = "warning"
STRICT_WHO = "Python 3.13's default SSL context (asyncpg) and openssl verify -x509_strict reject it"


@dataclass(frozen=True)
class Finding:
    """One problem: what, how bad, where, and the one-line fix."""

    id: str
    severity: str
    file: str
    message: str
    fix: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


# --------------------------------------------------------------------------- OpenSSL chain building


@dataclass(frozen=True)
class ChainResult:
    """OpenSSL's verdict on one leaf: the verified chain (leaf first) or the first error."""

    ok: bool
    chain: tuple[x509.Certificate, ...] = ()
    error: str = ""
    error_depth: int = 0
    error_subject: str = ""

    @property
    def intermediates(self) -> int:
        """CAs between leaf and trust anchor: what the verify depth must allow."""
        return max(len(self.chain) - 2, 0)

    def describe(self) -> str:
        return f"{self.error} (depth {self.error_depth}, {self.error_subject})"


def openssl_verify(
    leaf: x509.Certificate, *, trusted: Iterable[x509.Certificate], untrusted: Iterable[x509.Certificate] = (),
    now: dt.datetime, strict: bool = False,
) -> ChainResult:
    """X509_verify_cert with OpenSSL's defaults (what PostgreSQL, libpq and nginx use), or X509_STRICT."""
    from OpenSSL import crypto

    store = crypto.X509Store()
    for c in trusted:
        store.add_cert(crypto.X509.from_cryptography(c))
    if strict:
        store.set_flags(crypto.X509StoreFlags.X509_STRICT)
    store.set_time(now.astimezone(dt.timezone.utc).replace(tzinfo=None))
    ctx = crypto.X509StoreContext(
        store, crypto.X509.from_cryptography(leaf), [crypto.X509.from_cryptography(c) for c in untrusted]
    )
    try:
        chain = ctx.get_verified_chain()
    except crypto.X509StoreContextError as exc:
        code_depth_msg = exc.errors
        subject = name_of(exc.certificate.to_cryptography()) if exc.certificate is not None else "?"
        return ChainResult(ok=False, error=str(code_depth_msg[2]), error_depth=int(code_depth_msg[1]),
                           error_subject=subject)
    return ChainResult(ok=True, chain=tuple(c.to_cryptography() for c in chain))


# --------------------------------------------------------------------------- small certificate helpers


def name_of(cert: x509.Certificate) -> str:
    """The CN, or the whole subject when there is none."""
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else cert.subject.rfc4514_string()


def _ext(cert: x509.Certificate, cls: type) -> x509.Extension | None:  # type: ignore[type-arg]
    try:
        return cert.extensions.get_extension_for_class(cls)
    except x509.ExtensionNotFound:
        return None


def is_v1(cert: x509.Certificate) -> bool:
    return cert.version == x509.Version.v1


def self_issued(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject


def public_der(key_or_cert: object) -> bytes:
    from cryptography.hazmat.primitives import serialization

    pub = key_or_cert.public_key()  # type: ignore[attr-defined]
    return pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError):  # wrong signer, name mismatch, unsupported key
        return False
    return True


# --------------------------------------------------------------------------- libpq host name rule


# --------------------------------------------------------------------------- per-certificate profile


def check_profile(cert: x509.Certificate, role: str, file: str) -> list[Finding]:
    """The strict role profile (FACTS.md), one finding per departure, each with its consequence."""
    out: list[Finding] = []
    ca = role in ("root", "intermediate")
    reissue = "re-issue it with pgkongtls init (or openssl x509 -req with an -extfile that sets the profile)"
    if is_v1(cert):
        out.append(Finding(
            "cert-v1", WARNING, file,
            f"{name_of(cert)} is an X.509 v1 certificate: it carries no extensions (no SAN, EKU, SKI or AKI); "
            "RFC 5280 linters and cryptography's validator reject it", reissue))
    bc = _ext(cert, x509.BasicConstraints)
    ku = _ext(cert, x509.KeyUsage)
    eku = _ext(cert, x509.ExtendedKeyUsage)
    if ca:
        if bc is None or not bc.value.ca:
            if not (is_v1(cert) and self_issued(cert)):
                out.append(Finding("ca-basic-constraints", ERROR, file,
                                   f"{name_of(cert)} is used as a CA but has no basicConstraints CA:TRUE; "
                                   "OpenSSL refuses it as an issuer (invalid CA certificate)", reissue))
        elif not bc.critical:
            out.append(Finding("ca-basic-constraints", ERROR, file,
                               f"{name_of(cert)}: basicConstraints is not critical; {STRICT_WHO}", reissue))
        if ku is None:
            if not is_v1(cert):
                out.append(Finding("ca-key-usage", ERROR, file,
                                   f"CA {name_of(cert)} has no keyUsage (CA cert does not include key usage "
                                   f"extension); {STRICT_WHO}",
                                   "re-issue the CA with keyUsage = critical, keyCertSign, cRLSign (pgkongtls init)"))
        elif not ku.value.key_cert_sign:
            out.append(Finding("ca-key-usage", ERROR, file,
                               f"CA {name_of(cert)}: keyUsage lacks keyCertSign; OpenSSL refuses it as an issuer",
                               "re-issue the CA with keyUsage = critical, keyCertSign, cRLSign"))
        if not is_v1(cert) and _ext(cert, x509.SubjectKeyIdentifier) is None:
            out.append(Finding("missing-ski", ERROR, file,
                               f"CA {name_of(cert)} has no subjectKeyIdentifier; {STRICT_WHO}", reissue))
    else:
        if bc is not None and bc.value.ca:
            out.append(Finding("leaf-is-ca", WARNING, file,
                               f"the {role} certificate {name_of(cert)} is a CA (basicConstraints CA:TRUE); "
                               "strict validators refuse a CA as an end entity", reissue))
        want = ExtendedKeyUsageOID.SERVER_AUTH if role == "server" else ExtendedKeyUsageOID.CLIENT_AUTH
        want_name = "serverAuth" if role == "server" else "clientAuth"
        who = "libpq and Kong (OpenSSL purpose ssl_server)" if role == "server" else \
            "PostgreSQL (OpenSSL purpose ssl_client)"
        if eku is None:
            out.append(Finding("eku-missing", WARNING, file,
                               f"the {role} certificate {name_of(cert)} has no extendedKeyUsage: OpenSSL allows any "
                               f"purpose, strict validators (cryptography, pkilint) want {want_name}", reissue))
        elif want not in eku.value:
            out.append(Finding("eku-wrong", ERROR, file,
                               f"the {role} certificate {name_of(cert)} has extendedKeyUsage without {want_name}; "
                               f"{who} reject it (unsupported certificate purpose)", reissue))
        if ku is not None:
            v = ku.value
            if not (v.digital_signature or v.key_encipherment or v.key_agreement):
                out.append(Finding("leaf-key-usage", ERROR, file,
                                   f"the {role} certificate {name_of(cert)}: keyUsage allows neither digitalSignature "
                                   "nor keyEncipherment; OpenSSL rejects it for TLS", reissue))
            if v.key_cert_sign and not (bc is not None and bc.value.ca):
                out.append(Finding("leaf-key-usage", ERROR, file,
                                   f"the {role} certificate {name_of(cert)} has keyCertSign but is not a CA; "
                                   f"{STRICT_WHO}", reissue))
        if role == "server" and _ext(cert, x509.SubjectAlternativeName) is None:
            out.append(Finding("server-san", WARNING, file,
                               f"the server certificate has no subjectAltName: libpq verify-full matches the "
                               f"CN {name_of(cert)!r}; cryptography's validator and RFC 6125 clients need a SAN",
                               "re-issue it with every database host name in the SAN (pgkongtls init --db-host)"))
    if not is_v1(cert) and not self_issued(cert):
        aki = _ext(cert, x509.AuthorityKeyIdentifier)
        if aki is None or aki.value.key_identifier is None:
            out.append(Finding("missing-aki", ERROR, file,
                               f"{name_of(cert)} has no authorityKeyIdentifier keyIdentifier; {STRICT_WHO}", reissue))
    return out


def check_validity(cert: x509.Certificate, file: str, now: dt.datetime, warn_days: int) -> list[Finding]:
    renew = "renew it (pgkongtls renew, or re-issue it) before it expires"
    if cert.not_valid_after_utc < now:
        return [Finding("cert-expired", ERROR, file,
                        f"{name_of(cert)} expired on {cert.not_valid_after_utc:%Y-%m-%d}; every client rejects it",
                        renew.replace(" before it expires", ""))]
    if cert.not_valid_before_utc > now:
        return [Finding("cert-not-yet-valid", ERROR, file,
                        f"{name_of(cert)} is valid only from {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC; "
                        "check this host's clock", "re-issue it, or fix the clock")]
    left = cert.not_valid_after_utc - now
    if left <= dt.timedelta(days=warn_days):
        return [Finding("cert-expiring", WARNING, file,
                        f"{name_of(cert)} expires in {left.days} days ({cert.not_valid_after_utc:%Y-%m-%d})", renew)]
    return []


# --------------------------------------------------------------------------- keys


def check_key_pair(certs: CertFile, key: KeyFile, role: str) -> list[Finding]:
    """The key matches the first certificate of its file (the leaf PostgreSQL and Kong send)."""
    if key.key is None:
        return []
    want = public_der(key.key)
    if public_der(certs.certs[0]) == want:
        return []
    later = [i for i, c in enumerate(certs.certs[1:], 2) if public_der(c) == want]
    if later:
        return [Finding("leaf-order", ERROR, certs.path,
                        f"the {role} certificate matching {key.path} is number {later[0]} in the file, but the first "
                        f"certificate is {name_of(certs.certs[0])}; PostgreSQL and Kong send the first one as the leaf",
                        "put the leaf first, then its intermediates")]
    return [Finding("key-mismatch", ERROR, key.path,
                    f"{key.path} does not match the certificate {name_of(certs.certs[0])} in {certs.path}; "
                    "the TLS server or client will not start (key values mismatch)",
                    f"restore the key that was made with {certs.path}, or re-issue both")]


def check_dir_key_mode(key: KeyFile) -> list[Finding]:
    """A PKI directory belongs to whoever made it: only group and world bits are wrong."""
    if key.mode & 0o077:
        return [Finding("key-mode", ERROR, key.path,
                        f"{key.path} has mode {key.mode:04o}: group or others can read a private key",
                        f"chmod 0600 {key.path}")]
    return []


def check_pg_key_mode(key: KeyFile, account: Account | None, os_user: str) -> list[Finding]:
    """PostgreSQL's rule (be-secure-common.c): owner the server's user with ≤0600, or root with ≤0640."""
    mode = key.mode
    if key.uid == 0:
        if mode & (stat.S_IWGRP | stat.S_IXGRP | stat.S_IRWXO):
            return [Finding("key-mode", ERROR, key.path,
                            f"{key.path} is owned by root with mode {mode:04o}: PostgreSQL refuses it (has group or "
                            "world access; root-owned keys may be at most 0640)",
                            f"chown root:{os_user} {key.path} && chmod 0640 {key.path}")]
        if account is not None and not (mode & stat.S_IRGRP and key.gid in account.gids):
            return [Finding("key-mode", ERROR, key.path,
                            f"{key.path} is owned by root and {os_user} cannot read it through its group "
                            f"(mode {mode:04o}); PostgreSQL fails with permission denied",
                            f"chown root:{os_user} {key.path} && chmod 0640 {key.path}")]
        return []
    if account is None:
        return [Finding("key-owner", WARNING, key.path,
                        f"{key.path} is owned by {key.owner}; this host has no user {os_user!r} to compare with "
                        "(PostgreSQL wants its own user or root as the owner)",
                        "pass --pg-os-user with the account PostgreSQL runs as")]
    if key.uid != account.uid:
        return [Finding("key-owner", ERROR, key.path,
                        f"{key.path} is owned by {key.owner}: PostgreSQL accepts only a key owned by {os_user} "
                        "or root", f"chown {os_user}:{os_user} {key.path} && chmod 0600 {key.path}")]
    if mode & 0o077:
        return [Finding("key-mode", ERROR, key.path,
                        f'{key.path} has mode {mode:04o}: PostgreSQL stops with "private key file has group or '
                        'world access"', f"chmod 0600 {key.path}")]
    return []


# --------------------------------------------------------------------------- the PKI directory


@dataclass(frozen=True)
class _Seen:
    """Real paths already checked, so a file reached twice (DIR and a config) is reported once."""

    paths: set[str]

    def first(self, real: str) -> bool:
        if real and real in self.paths:
            return False
        self.paths.add(real)
        return True


def _pki_anchors(pki: PkiDir, role: str, leaf: x509.Certificate) -> list[x509.Certificate]:
    roots = [c for e in pki.role("root") if isinstance(e.cert, CertFile) for c in e.cert.certs[:1]]
    if roots:
        return roots
    if isinstance(pki.chain, CertFile):
        ss = [c for c in pki.chain.certs if self_issued(c)]
        if ss:
            return ss
    return [leaf]  # self-signed: each side trusts the other's certificate directly


def _pki_pool(pki: PkiDir) -> list[x509.Certificate]:
    pool = [c for e in pki.role("intermediate") if isinstance(e.cert, CertFile) for c in e.cert.certs]
    if isinstance(pki.chain, CertFile):
        pool += list(pki.chain.certs)
    return pool


def check_pki(pki: PkiDir, *, now: dt.datetime, warn_days: int, seen: _Seen) -> list[Finding]:
    out: list[Finding] = []
    strict_manifest = pki.manifest is not None
    for e in pki.entries:
        if e.revoked:
            continue
        out += _check_entry(pki, e, now=now, warn_days=warn_days, seen=seen, strict_manifest=strict_manifest)
    if isinstance(pki.chain, Missing):
        out.append(Finding("file-missing", ERROR, pki.chain.path, f"{pki.chain.path} is missing",
                           "restore it, or re-create the PKI with pgkongtls init --force"))
    elif pki.chain is not None:
        out += check_chain_order(pki.chain)
        if pki.chain.real:
            seen.first(pki.chain.real)
        for c in pki.chain.certs:
            out += check_validity(c, pki.chain.path, now, warn_days)
    if pki.manifest is not None:
        for host in pki.manifest.hosts:
            for e in pki.role("server"):
                if isinstance(e.cert, CertFile):
                    ok, why = libpq_host_check(e.cert.certs[0], host)
                    if not ok:
                        out.append(Finding("server-host", ERROR, e.cert.path,
                                           f"libpq verify-full to {host} fails: {why}",
                                           f"re-issue the server certificate with --db-host {host}"))
    return out


def _check_entry(pki: PkiDir, e: PkiEntry, *, now: dt.datetime, warn_days: int, seen: _Seen,
                 strict_manifest: bool) -> list[Finding]:
    out: list[Finding] = []
    if isinstance(e.cert, Missing):
        return [Finding("file-missing", ERROR, e.cert.path, f"{e.cert.path} is missing",
                        "restore it, or re-create the PKI with pgkongtls init --force")]
    if isinstance(e.key, Missing):
        if strict_manifest:
            out.append(Finding("file-missing", ERROR, e.key.path, f"{e.key.path} is missing",
                               "restore it, or re-create the PKI with pgkongtls init --force"))
        elif e.role in ("server", "client"):
            out.append(Finding("file-missing", WARNING, e.key.path,
                               f"{e.key.path} is not here, so its match with {e.cert.path} is not checked",
                               "run verify where the key is, or pass --postgresql-conf / --kong-conf"))
    leaf = e.cert.certs[0]
    if e.damage is not None:  # the check and the words the day-2 commands refuse the file with (pkiload)
        out.append(Finding("manifest-mismatch", ERROR, e.cert.path, e.damage.what, e.damage.fix))
    if seen.first(e.cert.real):
        out += check_profile(leaf, e.role, e.cert.path)
        out += check_validity(leaf, e.cert.path, now, warn_days)
        if e.role in ("server", "client"):
            for extra in e.cert.certs[1:]:
                out += check_validity(extra, e.cert.path, now, warn_days)
    if isinstance(e.key, KeyFile) and seen.first(e.key.real):
        out += check_key_pair(e.cert, e.key, e.role)
        out += check_dir_key_mode(e.key)
        out += _check_encrypted(e.key, e.role)
    if e.role in ("server", "client"):
        anchors = _pki_anchors(pki, e.role, leaf)
        pool = list(e.cert.certs[1:]) + _pki_pool(pki)
        out += check_leaf_chain(leaf, e.role, e.cert.path, anchors=anchors, pool=pool, now=now,
                                trust_name=f"the PKI's {'root' if anchors[0] is not leaf else 'own certificate'}")
    return out


def _check_encrypted(key: KeyFile, role: str) -> list[Finding]:
    if not key.encrypted:
        return []
    if role == "client":
        return [Finding("key-encrypted", ERROR, key.path,
                        f"{key.path} is encrypted: Kong cannot read an encrypted pg_ssl_cert_key",
                        f"openssl pkey -in {key.path} -out {key.path}.plain (then chmod 0600 and use it)")]
    if role == "server":
        return [Finding("key-encrypted", WARNING, key.path,
                        f"{key.path} is encrypted: PostgreSQL needs ssl_passphrase_command to load it, and cannot "
                        "reload it without ssl_passphrase_command_supports_reload",
                        "set ssl_passphrase_command, or store the key unencrypted with mode 0600")]
    return []


def check_leaf_chain(
    leaf: x509.Certificate, role: str, file: str, *, anchors: Sequence[x509.Certificate],
    pool: Sequence[x509.Certificate], now: dt.datetime, trust_name: str,
) -> list[Finding]:
    """The chain builds (OpenSSL defaults), then also under X509_STRICT."""
    lenient = openssl_verify(leaf, trusted=anchors, untrusted=pool, now=now)
    if not lenient.ok:
        return [Finding("chain-broken", ERROR, file,
                        f"the {role} certificate does not chain to {trust_name}: {lenient.describe()}",
                        "re-issue it from this PKI's CA, or put the missing intermediate next to it")]
    strict = openssl_verify(leaf, trusted=anchors, untrusted=pool, now=now, strict=True)
    if not strict.ok:
        return [Finding("chain-strict", ERROR, file,
                        f"the {role} chain fails OpenSSL's strict profile: {strict.describe()}; {STRICT_WHO}",
                        "re-issue the named certificate with the strict profile (pgkongtls init)")]
    return []


def check_chain_order(chain: CertFile) -> list[Finding]:
    """chain.crt as the document makes it: intermediate first, each issued by the next, root last."""
    certs = chain.certs
    for i, c in enumerate(certs):
        nxt = certs[i + 1] if i + 1 < len(certs) else None
        if nxt is None:
            if not self_issued(c):
                return [Finding("chain-order", WARNING, chain.path,
                                f"{chain.path} ends with {name_of(c)}, not with the self-signed root",
                                "append the root: cat root.crt >> chain.crt")]
        elif not issued_by(c, nxt):
            return [Finding("chain-order", WARNING, chain.path,
                            f"{chain.path}: {name_of(c)} is not issued by the next certificate {name_of(nxt)}",
                            "write it leaf side first: cat intermediate.crt root.crt > chain.crt")]
    return []


# --------------------------------------------------------------------------- CRLs


def check_crls(
    chain: Sequence[x509.Certificate], crls: CrlFile, *, now: dt.datetime, who: str,
) -> list[Finding]:
    """PostgreSQL sets CRL_CHECK_ALL: every certificate of the client chain needs a current CRL from its issuer."""
    out: list[Finding] = []
    judged: set[x509.Name] = set()
    for i, cert in enumerate(chain):
        issuer = chain[i + 1] if i + 1 < len(chain) else cert
        signer = issuer.public_key()
        mine = [c for c in crls.crls if c.issuer == cert.issuer and c.is_signature_valid(signer)]  # type: ignore[arg-type]
        if issuer.subject in judged:  # the root's own level is the same CRL as the level below it
            continue
        judged.add(issuer.subject)
        if not mine:
            out.append(Finding("crl-missing", ERROR, crls.path,
                               f"{crls.path} has no CRL from {name_of(issuer)}: PostgreSQL checks every CA level and "
                               f"rejects {who} (unable to get certificate CRL)",
                               f"add a current CRL from {name_of(issuer)} (pgkongtls revoke writes one per CA level)"))
            continue
        crl = max(mine, key=lambda c: c.last_update_utc)
        nxt = crl.next_update_utc
        if nxt is not None and nxt < now:
            out.append(Finding("crl-expired", ERROR, crls.path,
                               f"the CRL from {name_of(issuer)} expired on {nxt:%Y-%m-%d %H:%M} UTC: PostgreSQL "
                               f"rejects {who} (CRL has expired)", "publish a fresh CRL and reload PostgreSQL"))
        if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
            out.append(Finding("cert-revoked", ERROR, crls.path,
                               f"{name_of(cert)} (serial {cert.serial_number:x}) is revoked by the CRL from "
                               f"{name_of(issuer)}: PostgreSQL rejects it", "issue a new certificate and use it"))
    return out


# --------------------------------------------------------------------------- postgresql.conf


def _server_sent(pg: PgInput) -> list[x509.Certificate]:
    """What PostgreSQL sends: server.crt, completed from ssl_ca_file when server.crt holds only the leaf."""
    if not isinstance(pg.cert, CertFile):
        return []
    sent = list(pg.cert.certs)
    if len(sent) == 1 and isinstance(pg.ca, CertFile):
        sent += [c for c in pg.ca.certs if c not in sent]
    return sent


def check_pg(v: VerifyInput, pg: PgInput, *, now: dt.datetime, warn_days: int, seen: _Seen,
             clients: list[CertFile]) -> list[Finding]:
    out: list[Finding] = []
    ssl = pg.settings.get("ssl")
    if ssl is None or ssl.value.lower() not in ("on", "true", "yes", "1"):
        out.append(Finding("pg-ssl-off", ERROR, pg.path,
                           "ssl is not on: PostgreSQL answers N to every SSLRequest and Kong gets no TLS",
                           "set ssl = on in postgresql.conf and run SELECT pg_reload_conf()"))
    for what, ref in (("ssl_cert_file", pg.cert), ("ssl_key_file", pg.key), ("ssl_ca_file", pg.ca),
                      ("ssl_crl_file", pg.crl), ("ssl_crl_dir", pg.crl_dir)):
        if isinstance(ref, Missing):
            out.append(Finding("pg-file-missing", ERROR, pg.path,
                               f"{what} names {ref.path}, which does not exist: PostgreSQL will not start TLS",
                               f"copy the file there or fix {what}"))
    if isinstance(pg.cert, CertFile) and seen.first(pg.cert.real):
        out += check_profile(pg.cert.certs[0], "server", pg.cert.path)
        for c in pg.cert.certs:
            out += check_validity(c, pg.cert.path, now, warn_days)
    if isinstance(pg.key, KeyFile):
        if isinstance(pg.cert, CertFile):
            out += check_key_pair(pg.cert, pg.key, "server")
        out += check_pg_key_mode(pg.key, v.pg_account, v.pg_os_user)
        if pg.key.encrypted and "ssl_passphrase_command" not in pg.settings:
            out += _check_encrypted(pg.key, "server")
    if isinstance(pg.ca, CertFile):
        for client in clients:
            res = openssl_verify(client.certs[0], trusted=pg.ca.certs, untrusted=client.certs[1:], now=now)
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


# --------------------------------------------------------------------------- pg_hba.conf and pg_ident.conf


def _covers(tokens: Sequence[Token], value: str, *, same: str | None = None, kind: str) -> bool:
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


_ANY_ADDRESS = ("all", "0.0.0.0/0", "::/0", "::0/0")


def _line_text(line: HbaLine) -> str:
    def col(ts: tuple[Token, ...]) -> str:
        return ",".join(f'"{t.text}"' if t.quoted else t.text for t in ts)
    opts = " ".join(f"{k}={v}" for k, v in line.options.items())
    return " ".join(x for x in (line.type, col(line.databases), col(line.users), line.address or "", line.method, opts) if x)


def _map_allows(ident: Sequence[IdentLine], map_name: str, cn: str, user: str) -> bool:
    for rec in ident:
        if rec.map != map_name:
            continue
        system = rec.system.text
        if system.startswith("/"):
            try:
                m = re.search(system[1:], cn)
            except re.error:
                continue
            if not m:
                continue
            role = rec.role.text.replace("\\1", m.group(1)) if "\\1" in rec.role.text and m.groups() else rec.role.text
        elif system == cn:
            role = rec.role.text
        else:
            continue
        if role == user or (not rec.role.quoted and (role == "all" or role.startswith("+"))):
            return True
    return False


def check_hba(v: VerifyInput, *, user: str, database: str, edition: str, client_cns: list[str],
              kong_sends_cert: bool | None) -> list[Finding]:
    """The first pg_hba.conf line that matches Kong's TLS connection decides; it must check the certificate."""
    assert v.hba is not None
    path, lines = v.hba
    out: list[Finding] = []
    deciding: HbaLine | None = None
    for line in lines:
        if line.type not in ("host", "hostssl"):
            continue
        if not (_covers(line.databases, database, same=user, kind="database")
                and _covers(line.users, user, kind="user")):
            continue
        if line.address not in _ANY_ADDRESS and line.method not in ("cert",) \
                and line.options.get("clientcert") != "verify-full":
            out.append(Finding("hba-shadowed", WARNING, path,
                               f"line {line.line} ({_line_text(line)}) comes first for connections from "
                               f"{line.address} and does not check Kong's certificate",
                               "move the hostssl line for Kong above it, or narrow this line"))
            continue
        deciding = line
        break
    if deciding is None:
        return out + [Finding("hba-no-line", ERROR, path,
                              f"no host/hostssl line admits user {user!r} to database {database!r}: PostgreSQL "
                              "answers \"no pg_hba.conf entry\"", "append the line from pgkongtls render hba")]
    text = f"line {deciding.line} ({_line_text(deciding)})"
    checks_cert = deciding.method == "cert" or deciding.options.get("clientcert") == "verify-full"
    asks_cert = checks_cert or deciding.options.get("clientcert") == "verify-ca"
    if deciding.method == "reject":
        return out + [Finding("hba-reject", ERROR, path, f"{text} rejects Kong's connection",
                              "put the hostssl line for Kong above it")]
    if edition == "oss":
        if asks_cert:
            out.append(Finding("hba-oss-cert", ERROR, path,
                               f"{text} needs a client certificate, which open-source Kong cannot send",
                               "use hostssl ... scram-sha-256 (pgkongtls render hba --edition oss)"))
        return out
    if not checks_cert:
        out.append(Finding("hba-method", ERROR, path,
                           f"{text} decides for Kong and does not check the client certificate's CN",
                           "use cert, or add clientcert=verify-full (pgkongtls render hba)"))
        return out
    if deciding.type == "host":
        out.append(Finding("hba-plaintext", WARNING, path,
                           f"{text} is a host line: the same rule would admit a connection without TLS if the "
                           "method did not need a certificate", "use hostssl"))
    if kong_sends_cert is False:
        out.append(Finding("kong-no-client-cert", ERROR, path,
                           f"{text} needs a client certificate but kong.conf sets no pg_ssl_cert: PostgreSQL "
                           "answers \"connection requires a valid client certificate\"",
                           "set pg_ssl_cert and pg_ssl_cert_key in kong.conf (Kong Enterprise)"))
    map_name = deciding.options.get("map")
    for cn in client_cns:
        if "clientname" in deciding.options and deciding.options["clientname"].upper() == "DN":
            continue  # the full DN is matched through the map; only maps are checked for it below
        if map_name:
            if v.ident is None:
                out.append(Finding("ident-unchecked", WARNING, path,
                                   f"{text} maps CNs with map={map_name}; pg_ident.conf was not given",
                                   "pass --pg-ident to check the map"))
                break
            if not _map_allows(v.ident[1], map_name, cn, user):
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


# --------------------------------------------------------------------------- kong.conf


def _quoted(value: str) -> bool:
    """kong.conf keeps quotes in values: a quoted path names a file that does not exist."""
    return len(value) >= 2 and value[0] in "'\"" and value[-1] == value[0]


def check_kong(kong: KongInput, *, edition: str, server_sent: list[x509.Certificate], now: dt.datetime,
               seen: _Seen, warn_days: int) -> list[Finding]:
    out: list[Finding] = []
    vals = kong.values
    path = kong.path

    def flag(key: str) -> bool:
        return bool(key in vals and kong_bool(vals[key].value))

    if not flag("pg_ssl"):
        out.append(Finding("kong-ssl-off", ERROR, path, "pg_ssl is not on: Kong talks to PostgreSQL in plaintext",
                           "set pg_ssl = on"))
    elif not flag("pg_ssl_verify"):
        out.append(Finding("kong-no-verify", WARNING, path,
                           "pg_ssl_verify is off: Kong accepts any server certificate", "set pg_ssl_verify = on"))
    if edition == "oss":
        for key in ENTERPRISE_ONLY:
            if key in vals:
                out.append(Finding("kong-enterprise-key", ERROR, path,
                                   f"line {vals[key].line}: {key} exists only in Kong Enterprise; open-source Kong "
                                   "ignores it" + (" and cannot present a client certificate" if "cert" in key else ""),
                                   f"remove {key}; authenticate with scram-sha-256 over hostssl and pg_password"))
    depth = kong_depth(kong.values)
    if depth is None:
        out.append(Finding("kong-depth", ERROR, path,
                           f"lua_ssl_verify_depth = {vals['lua_ssl_verify_depth'].value!r} is not a number",
                           "set lua_ssl_verify_depth to the number of intermediate CAs (at least 1)"))
    trusted: list[x509.Certificate] = []
    for t in kong.trust:
        if t.entry == "system" and t.loaded is None:
            out.append(Finding("kong-trust-file", WARNING, path,
                               "lua_ssl_trusted_certificate lists system, but this host has no system CA bundle: "
                               "Kong drops the entry silently", "install ca-certificates, or remove system"))
        elif isinstance(t.loaded, Missing):
            quoted = _quoted(t.entry)
            out.append(Finding("kong-trust-file", ERROR, path,
                               f"lua_ssl_trusted_certificate names {t.entry}, which does not exist"
                               + (": Kong keeps the quotes as part of the path" if quoted else ""),
                               "fix the path" + (" and remove the quotes" if quoted else "")))
        elif isinstance(t.loaded, CertFile):
            trusted += t.loaded.certs
    if server_sent and trusted:
        res = openssl_verify(server_sent[0], trusted=trusted, untrusted=server_sent[1:], now=now)
        if not res.ok:
            out.append(Finding("kong-trust", ERROR, path,
                               f"lua_ssl_trusted_certificate does not hold the root of the server certificate "
                               f"{name_of(server_sent[0])}: {res.describe()}; Kong's handshake fails",
                               "add the PKI's chain.crt (or root.crt) to lua_ssl_trusted_certificate"))
        elif depth is not None and res.intermediates > depth:
            out.append(Finding("kong-depth", ERROR, path,
                               f"lua_ssl_verify_depth = {depth} but the server chain has {res.intermediates} "
                               f"intermediate CA(s) between the leaf and the root: Kong's handshake fails "
                               "(certificate chain too long)", f"set lua_ssl_verify_depth = {res.intermediates}"))
    elif not server_sent:
        out.append(Finding("kong-trust-unchecked", WARNING, path,
                           "no server certificate to check lua_ssl_trusted_certificate against",
                           "pass the PKI directory or --postgresql-conf too"))
    has_cert, has_key = kong.cert is not None, kong.key is not None
    if has_cert != has_key:
        missing_key = "pg_ssl_cert_key" if has_cert else "pg_ssl_cert"
        out.append(Finding("kong-cert-pair", ERROR, path,
                           f"{'pg_ssl_cert' if has_cert else 'pg_ssl_cert_key'} is set without {missing_key}: "
                           f"Kong Enterprise refuses to start ({missing_key} must be specified)",
                           f"set {missing_key} too, or remove both"))
    for key_name, ref in (("pg_ssl_cert", kong.cert), ("pg_ssl_cert_key", kong.key)):
        if isinstance(ref, Missing):
            quoted = _quoted(ref.path)
            out.append(Finding("kong-file-missing", ERROR, path,
                               f"{key_name}: no such file at {ref.path}"
                               + (" (Kong keeps the quotes as part of the path)" if quoted else ""),
                               "fix the path" + (" and remove the quotes" if quoted else "")))
    if isinstance(kong.cert, CertFile):
        if seen.first(kong.cert.real):
            out += check_profile(kong.cert.certs[0], "client", kong.cert.path)
            for c in kong.cert.certs:
                out += check_validity(c, kong.cert.path, now, warn_days)
        if isinstance(kong.key, KeyFile):
            out += check_key_pair(kong.cert, kong.key, "client")
    if isinstance(kong.key, KeyFile):
        out += _check_encrypted(kong.key, "client")
        if kong.key.mode & stat.S_IRWXO:
            out.append(Finding("key-mode", ERROR, kong.key.path,
                               f"{kong.key.path} has mode {kong.key.mode:04o}: every local user can read Kong's key",
                               f"chmod 0600 {kong.key.path} (or 0640 with Kong's group)"))
    return out


# --------------------------------------------------------------------------- everything


def _client_files(v: VerifyInput) -> list[CertFile]:
    """Kong's pg_ssl_cert when it can be read, else the PKI's client certificates."""
    if v.kong is not None and isinstance(v.kong.cert, CertFile):
        return [v.kong.cert]
    if v.pki is not None:
        return [e.cert for e in v.pki.role("client") if isinstance(e.cert, CertFile)]
    return []


def _server_files(v: VerifyInput) -> list[x509.Certificate]:
    if v.pg is not None:
        return _server_sent(v.pg)
    if v.pki is not None:
        for e in v.pki.role("server"):
            if isinstance(e.cert, CertFile):
                return list(e.cert.certs) + [c for c in _pki_pool(v.pki) if c not in e.cert.certs]
    return []


def run_checks(v: VerifyInput, *, now: dt.datetime, warn_days: int = 30, edition: str = "enterprise") -> list[Finding]:
    """Every check that the inputs allow, errors first, duplicates removed."""
    seen = _Seen(set())
    out: list[Finding] = []
    if v.pki is not None:
        out += check_pki(v.pki, now=now, warn_days=warn_days, seen=seen)
        if v.pki.crl is not None and v.pg is None:
            out += _pki_crl(v.pki, now=now)
    clients = _client_files(v) if edition == "enterprise" else []
    if v.pg is not None:
        out += check_pg(v, v.pg, now=now, warn_days=warn_days, seen=seen, clients=clients)
    if v.kong is not None:
        out += check_kong(v.kong, edition=edition, server_sent=_server_files(v), now=now, seen=seen,
                          warn_days=warn_days)
    if v.hba is not None:
        kv = v.kong.values if v.kong is not None else {}
        user = kv["pg_user"].value if "pg_user" in kv else (
            v.pki.manifest.db_user if v.pki is not None and v.pki.manifest is not None else KONG_DEFAULT_USER)
        database = kv["pg_database"].value if "pg_database" in kv else KONG_DEFAULT_DATABASE
        out += check_hba(v, user=user, database=database, edition=edition,
                         client_cns=[name_of(c.certs[0]) for c in clients],
                         kong_sends_cert=(v.kong.cert is not None) if v.kong is not None else None)
    unique: dict[tuple[str, str, str], Finding] = {}
    for f in out:
        unique.setdefault((f.id, f.file, f.message), f)
    return sorted(unique.values(), key=lambda f: f.severity != ERROR)


def _pki_crl(pki: PkiDir, *, now: dt.datetime) -> list[Finding]:
    if isinstance(pki.crl, Missing):
        return [Finding("file-missing", ERROR, pki.crl.path, f"{pki.crl.path} is missing (pgkongtls.json names it)",
                        "restore it, or run pgkongtls revoke again to write a fresh CRL")]
    out: list[Finding] = []
    assert isinstance(pki.crl, CrlFile)
    for e in pki.role("client"):
        if not isinstance(e.cert, CertFile):
            continue
        leaf = e.cert.certs[0]
        res = openssl_verify(leaf, trusted=_pki_anchors(pki, "client", leaf),
                             untrusted=list(e.cert.certs[1:]) + _pki_pool(pki), now=now)
        if res.ok:
            out += check_crls(res.chain, pki.crl, now=now, who=f"the client certificate {name_of(leaf)}")
    return out
