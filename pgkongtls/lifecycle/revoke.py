"""`revoke` and `crl`: mark leaves revoked and sign one CRL per CA level; read crl.pem back for status."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import replace

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pgkongtls import DEFAULT_CRL_DAYS, MAX_CRL_DAYS, certs, pkiload
from pgkongtls.certs import SelfCheckError
from pgkongtls.errors import InputError, StateError
from pgkongtls.lifecycle.base import CA_LEVELS, LEAF_ROLES, Ca, Reader, check_days, lookup
from pgkongtls.lifecycle.coverage import sharing_key
from pgkongtls.manifest import CRL_FILE, CertEntry, Change, Manifest, iso, parse_iso

_CRL_BLOCK = re.compile(rb"-----BEGIN X509 CRL-----.+?-----END X509 CRL-----\s*", re.DOTALL)

#: `--reason` values (RFC 5280 CRLReason names); unspecified is written as no reason code.
REASONS: dict[str, x509.ReasonFlags] = {
    "unspecified": x509.ReasonFlags.unspecified,
    "keyCompromise": x509.ReasonFlags.key_compromise,
    "affiliationChanged": x509.ReasonFlags.affiliation_changed,
    "superseded": x509.ReasonFlags.superseded,
    "cessationOfOperation": x509.ReasonFlags.cessation_of_operation,
    "privilegeWithdrawn": x509.ReasonFlags.privilege_withdrawn,
}


def previous_crl_number(data: bytes | None) -> int:
    """Highest CRLNumber in an existing crl.pem (0 when absent or unreadable: it is being replaced)."""
    best = 0
    for block in _CRL_BLOCK.findall(data or b""):
        try:
            crl = x509.load_pem_x509_crl(block)
            best = max(best, crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
        except (ValueError, x509.ExtensionNotFound):
            continue
    return best


def build_crls(m: Manifest, ca: Ca, *, days: int, now: dt.datetime, number: int) -> tuple[bytes, str]:
    """One CRL per CA level, concatenated: PostgreSQL sets CRL_CHECK_ALL, so each level needs one.

    Returns the PEM and the nextUpdate (ISO) to record in the manifest.
    """
    check_days(days, "--crl-days", 1, MAX_CRL_DAYS)
    next_update = now + dt.timedelta(days=days)
    out: list[bytes] = []
    for level in ca.crl_levels():
        signer = ca.signer(level)
        ski = signer.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(signer.cert.subject)
            .last_update(now - certs.BACKDATE)
            .next_update(next_update)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
            .add_extension(x509.CRLNumber(number), critical=False)
        )
        for e in sorted(m.certificates.values(), key=lambda e: e.name):
            if e.revoked and e.issuer == level:
                rc = x509.RevokedCertificateBuilder().serial_number(int(e.serial, 16)).revocation_date(parse_iso(e.revoked))
                if e.revocation_reason and e.revocation_reason != "unspecified":
                    rc = rc.add_extension(x509.CRLReason(REASONS[e.revocation_reason]), critical=False)
                builder = builder.add_revoked_certificate(rc.build())
        crl = builder.sign(signer.key, certs._hash_for(signer.key))
        if not crl.is_signature_valid(certs.ca_public_key(signer.cert)):
            raise SelfCheckError(f"self-check failed, this is a pgkongtls bug: the {level} CRL signature")
        out.append(crl.public_bytes(serialization.Encoding.PEM))
    return b"".join(out), iso(next_update)


def plan_crl(
    m: Manifest, ca: Ca, read: Reader, *, days: int = DEFAULT_CRL_DAYS, now: dt.datetime | None = None,
    done: tuple[CertEntry, ...] = (),
) -> Change:
    """Re-sign the CRLs of every CA level from the manifest's revoked entries."""
    now = now or certs.utcnow()
    file = m.crl_file or CRL_FILE
    number = max(previous_crl_number(read(file)) + 1, int(now.timestamp()))
    pem, next_update = build_crls(m, ca, days=days, now=now, number=number)
    manifest = replace(m, crl_file=file, crl_next_update=next_update)
    return Change(manifest, {file: pem}, frozenset(), frozenset({file}), done)


def plan_revoke(
    m: Manifest, ca: Ca, names: list[str], read: Reader, *, reason: str = "unspecified",
    crl_days: int = DEFAULT_CRL_DAYS, now: dt.datetime | None = None, listing: Iterable[str] = (),
) -> Change:
    """Mark leaves revoked and write fresh CRLs that list them.

    For keyCompromise, every certificate carrying the same key is revoked too (`listing`, the names in
    the PKI directory, is where archived backups are found): coverage.sharing_key.
    """
    now = now or certs.utcnow()
    if reason not in REASONS:
        raise InputError(f"unknown --reason {reason!r}; use one of {', '.join(REASONS)}")
    check_days(crl_days, "--crl-days", 1, MAX_CRL_DAYS)
    done: list[CertEntry] = []
    for name in dict.fromkeys(names):
        e = lookup(m, name)
        if e.role not in LEAF_ROLES:
            raise InputError(f"{name} is a CA; revoke works on server and client certificates; "
                             "to replace a CA re-create the PKI with pgkongtls init --force")
        if e.revoked:
            raise StateError(f"{name} is already revoked (since {e.revoked[:10]}); pgkongtls crl re-signs the CRL")
        e = replace(e, revoked=iso(now), revocation_reason=reason)
        m = m.with_cert(e)
        done.append(e)
    if reason == "keyCompromise":
        for e in sharing_key(m, ca, done, read, listing, now=now):
            m = m.with_cert(e)
            done.append(e)
    return plan_crl(m, ca, read, days=crl_days, now=now, done=tuple(done))


def load_crls(m: Manifest, found: Mapping[str, x509.Certificate], data: bytes | None) -> list[x509.CertificateRevocationList]:
    """The CRLs in crl.pem (parsed by pkiload, like verify's), checked against the CAs and the manifest's nextUpdate."""
    if not m.crl_file:
        return []
    crls = list(pkiload.parse_crls(data, m.crl_file))
    cas = {found[n].subject: found[n] for n, e in m.certificates.items() if e.role in CA_LEVELS and n in found}
    ok = bool(crls) and len({c.issuer for c in crls}) == len(cas) and all(
        c.issuer in cas and c.is_signature_valid(certs.ca_public_key(cas[c.issuer])) for c in crls
    )
    if not ok or min((iso(c.next_update_utc) for c in crls if c.next_update_utc), default=None) != m.crl_next_update:
        raise pkiload.NotAsRecorded(m.crl_file, pkiload.RESIGN)
    return crls


def crl_levels(m: Manifest, found: Mapping[str, x509.Certificate],
               crls: list[x509.CertificateRevocationList]) -> tuple[tuple[str, str], ...]:
    """(CA name, nextUpdate) of each CRL load_crls accepted: root and intermediate, and during a rotation
    the old CAs' too (root@serial), each its own deadline."""
    name_of = {found[e.name].subject: e.name for e in m.certificates.values() if e.role in CA_LEVELS and e.name in found}
    return tuple((name_of[c.issuer], iso(c.next_update_utc)) for c in crls if c.next_update_utc and c.issuer in name_of)
