"""Revocations that follow from another: every certificate of a compromised key, and what a renewal replaced.

A stolen key logs in with any certificate that carries it, and `renew --reuse-key` leaves the older
certificate (NAME.crt.<serial>.bak) valid until its notAfter. So `revoke --reason keyCompromise` revokes
every certificate, current or archived, whose public key is the revoked one's; `renew --revoke-old`
revokes the certificates a renewal replaced (reason superseded). Archived certificates found this way
join the manifest as NAME@<serial> entries, as renewing a revoked certificate already records them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import replace

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from pgkongtls import pkiload
from pgkongtls.lifecycle.base import LEAF_ROLES, Ca, Reader, must, spki
from pgkongtls.manifest import BACKUP_NAME, CertEntry, Change, Manifest, backup_name, entry_for, iso


def _leaf(read: Reader, file: str) -> x509.Certificate:
    return pkiload.parse_certs(must(read(file), file), file)[0]


def _signer(ca: Ca, cert: x509.Certificate) -> str | None:
    """The CA level of this PKI that signed `cert`; None for a certificate from elsewhere."""
    for level, ca_cert in ca.certs.items():
        if cert.issuer == ca_cert.subject:
            try:
                cert.verify_directly_issued_by(ca_cert)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return level
    return None


def unrecorded_backups(m: Manifest, listing: Iterable[str]) -> list[tuple[CertEntry, str, str]]:
    """Archived certificates of current entries that the manifest does not list yet: (owner, file, serial)."""
    owners = {e.file: e for e in m.certificates.values() if e.role in LEAF_ROLES and "@" not in e.name}
    recorded = {e.file for e in m.certificates.values()}
    out = []
    for name in sorted(listing):
        found = BACKUP_NAME.fullmatch(name)
        if found and found["file"] in owners and name not in recorded:
            out.append((owners[found["file"]], name, found["serial"]))
    return out


def sharing_key(
    m: Manifest, ca: Ca, revoked: list[CertEntry], read: Reader, listing: Iterable[str], *, now: dt.datetime,
) -> list[CertEntry]:
    """Every other certificate still accepted somewhere that carries one of the `revoked` entries' keys,
    marked revoked for keyCompromise: entries in service, and archived backups still within their validity."""
    keys = {spki(_leaf(read, e.file)) for e in revoked}
    done = {e.name for e in revoked}
    out: list[CertEntry] = []
    for e in sorted(m.certificates.values(), key=lambda e: e.name):
        if e.role in LEAF_ROLES and not e.revoked and e.name not in done and spki(_leaf(read, e.file)) in keys:
            out.append(replace(e, revoked=iso(now), revocation_reason="keyCompromise"))
    archived = []
    for owner, file, serial in unrecorded_backups(m, listing):
        cert = _leaf(read, file)
        level = _signer(ca, cert)
        if spki(cert) not in keys or cert.not_valid_after_utc <= now or level is None:
            continue  # another key, expired (refused anyway), or not from this CA: nothing to revoke
        entry = entry_for(cert, name=f"{owner.name}@{serial}", role=owner.role, issuer=level, file=file,
                          key_file=backup_name(owner.key_file, serial))
        archived.append(replace(entry, revoked=iso(now), revocation_reason="keyCompromise"))
    return out + sorted(archived, key=lambda e: (e.not_before, e.name))  # oldest first, as they were issued


def plan_revoke_old(
    before: Manifest, change: Change, ca: Ca, read: Reader, *, crl_days: int, now: dt.datetime,
) -> Change:
    """A renewal's change plus the revocation of what it replaced, in one commit with fresh CRLs."""
    from pgkongtls.lifecycle.revoke import plan_crl

    crl = plan_crl(superseded(before, change, now=now), ca, read, days=crl_days, now=now)
    return Change(crl.manifest, {**change.files, **crl.files}, change.private, change.replaces | crl.replaces,
                  change.done)


def superseded(before: Manifest, change: Change, *, now: dt.datetime) -> Manifest:
    """`renew --revoke-old`: the certificates the renewal replaced, revoked as superseded (NAME@<serial>).

    A replaced certificate that was already revoked is already archived and listed; it is left as it is.
    """
    m = change.manifest
    for new in change.done:
        old = before.certificates[new.name]
        if old.revoked:
            continue
        archived = replace(old, name=f"{old.name}@{old.serial}", file=backup_name(old.file, old.serial),
                           key_file=backup_name(old.key_file, old.serial), revoked=iso(now),
                           revocation_reason="superseded")
        m = m.with_cert(archived)
    return m
