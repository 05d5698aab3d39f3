"""Chains as OpenSSL builds them, the certificate helpers every check uses, and the chain and CRL checks.

Chains are built with OpenSSL itself (through pyOpenSSL) so "builds" means
what PostgreSQL, libpq and Kong's nginx decide, and the strict profile is
OpenSSL's X509_STRICT, the flag that Python 3.13's default SSL context sets.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID

from pgkongtls.consumers import STRICT_WHO, X509Err
from pgkongtls.inputs_model import CertFile, CrlFile
from pgkongtls.verify.findings import ERROR, WARNING, Finding

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

E = TypeVar("E", bound=x509.ExtensionType)


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


class Verifier:
    """One X509_STORE for many leaves: the trust anchors and the shared untrusted CAs converted once.

    A store per leaf (and the pool converted to OpenSSL again per leaf) made verify on 10,000
    leaves cost minutes; OpenSSL still builds and checks each leaf's whole chain itself.
    """

    def __init__(self, trusted: Iterable[x509.Certificate], *, untrusted: Sequence[x509.Certificate] = (),
                 now: dt.datetime, strict: bool = False) -> None:
        from OpenSSL import crypto

        self._crypto = crypto
        self._store = crypto.X509Store()
        for c in trusted:
            self._store.add_cert(crypto.X509.from_cryptography(c))
        if strict:
            self._store.set_flags(crypto.X509StoreFlags.X509_STRICT)
        self._store.set_time(now.astimezone(dt.timezone.utc).replace(tzinfo=None))
        self._pool = [crypto.X509.from_cryptography(c) for c in untrusted]
        #: A leaf file's bundled CA is usually a pool CA byte for byte: reuse its conversion.
        self._known = dict(zip(untrusted, self._pool, strict=True))

    def verify(self, leaf: x509.Certificate, extra: Iterable[x509.Certificate] = ()) -> ChainResult:
        """X509_verify_cert on `leaf`, offering `extra` (the leaf file's own CAs) before the shared pool."""
        crypto = self._crypto
        untrusted = [self._known.get(c) or crypto.X509.from_cryptography(c) for c in extra] + self._pool
        ctx = crypto.X509StoreContext(self._store, crypto.X509.from_cryptography(leaf), untrusted)
        try:
            chain = ctx.get_verified_chain()
        except crypto.X509StoreContextError as exc:
            code_depth_msg = exc.errors
            subject = name_of(exc.certificate.to_cryptography()) if exc.certificate is not None else "?"
            return ChainResult(ok=False, error=str(code_depth_msg[2]), error_depth=int(code_depth_msg[1]),
                               error_subject=subject)
        return ChainResult(ok=True, chain=tuple(c.to_cryptography() for c in chain))


def openssl_verify(
    leaf: x509.Certificate, *, trusted: Iterable[x509.Certificate], untrusted: Iterable[x509.Certificate] = (),
    now: dt.datetime, strict: bool = False,
) -> ChainResult:
    """X509_verify_cert with OpenSSL's defaults (what PostgreSQL, libpq and nginx use), or X509_STRICT."""
    return Verifier(trusted, now=now, strict=strict).verify(leaf, untrusted)


# --------------------------------------------------------------------------- small certificate helpers


def name_of(cert: x509.Certificate) -> str:
    """The CN, or the whole subject when there is none."""
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else cert.subject.rfc4514_string()


def ext(cert: x509.Certificate, cls: type[E]) -> x509.Extension[E] | None:
    """The extension, or None: absence is a finding, not an exception."""
    try:
        return cert.extensions.get_extension_for_class(cls)
    except x509.ExtensionNotFound:
        return None


def is_v1(cert: x509.Certificate) -> bool:
    return cert.version == x509.Version.v1


def self_issued(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject


def public_der(key_or_cert: x509.Certificate | PrivateKeyTypes) -> bytes:
    """The SubjectPublicKeyInfo, so a key and a certificate compare by value."""
    from cryptography.hazmat.primitives import serialization

    return key_or_cert.public_key().public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError):  # wrong signer, name mismatch, unsupported key
        return False
    return True


# --------------------------------------------------------------------------- chains


def check_leaf_chain(
    leaf: x509.Certificate, role: str, file: str, *, anchors: Sequence[x509.Certificate],
    pool: Sequence[x509.Certificate], now: dt.datetime, trust_name: str,
) -> list[Finding]:
    """The chain builds (OpenSSL defaults), then also under X509_STRICT."""
    lenient = Verifier(anchors, now=now)
    strict = Verifier(anchors, now=now, strict=True)
    return leaf_chain_findings(leaf, role, file, lenient=lenient, strict=strict, extra=pool, trust_name=trust_name)[1]


def leaf_chain_findings(
    leaf: x509.Certificate, role: str, file: str, *, lenient: Verifier, strict: Verifier,
    extra: Sequence[x509.Certificate] = (), trust_name: str,
) -> tuple[ChainResult, list[Finding]]:
    """check_leaf_chain with verifiers built once per run; also returns the chain (for the CRL check).

    X509_STRICT only adds checks to OpenSSL's defaults, so a leaf that passes it passes them too:
    the lenient run is needed only to tell a broken chain from a strict-profile failure.
    """
    hard = strict.verify(leaf, extra)
    if hard.ok:
        return hard, []
    soft = lenient.verify(leaf, extra)
    if not soft.ok:
        return soft, [Finding("chain-broken", ERROR, file,
                              f"the {role} certificate does not chain to {trust_name}: {soft.describe()}",
                              "re-issue it from this PKI's CA, or put the missing intermediate next to it")]
    return soft, [Finding("chain-strict", ERROR, file,
                          f"the {role} chain fails OpenSSL's strict profile: {hard.describe()}; {STRICT_WHO}",
                          "re-issue the named certificate with the strict profile (pgkongtls init)")]


def check_chain_order(chain: CertFile) -> list[Finding]:
    """chain.crt as the document makes it: intermediate first, each issued by the next, root last.

    During a CA renewal or rotation it holds old and new CAs (intermediates first, then the roots): then a
    certificate need only be issued by one that follows it.
    """
    certs = chain.certs
    for i, c in enumerate(certs):
        nxt = certs[i + 1] if i + 1 < len(certs) else None
        if nxt is None:
            if not self_issued(c):
                return [Finding("chain-order", WARNING, chain.path,
                                f"{chain.path} ends with {name_of(c)}, not with the self-signed root",
                                "append the root: cat root.crt >> chain.crt")]
        elif not self_issued(c) and not any(issued_by(c, later) for later in certs[i + 1:]):
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
                               f"rejects {who} ({X509Err.UNABLE_TO_GET_CRL.text})",
                               f"add a current CRL from {name_of(issuer)} (pgkongtls revoke writes one per CA level)"))
            continue
        crl = max(mine, key=lambda c: c.last_update_utc)
        nxt = crl.next_update_utc
        if nxt is not None and nxt < now:
            out.append(Finding("crl-expired", ERROR, crls.path,
                               f"the CRL from {name_of(issuer)} expired on {nxt:%Y-%m-%d %H:%M} UTC: PostgreSQL "
                               f"rejects {who} ({X509Err.CRL_HAS_EXPIRED.text})",
                               "publish a fresh CRL and reload PostgreSQL"))
        if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
            out.append(Finding("cert-revoked", ERROR, crls.path,
                               f"{name_of(cert)} (serial {cert.serial_number:x}) is revoked by the CRL from "
                               f"{name_of(issuer)}: PostgreSQL rejects it", "issue a new certificate and use it"))
    return out
