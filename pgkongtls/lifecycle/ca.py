"""`renew root|intermediate`: a new certificate for the same CA key, and the old one kept in the trust files.

Same key, same subject, same extensions (so the same SKI): every leaf the CA
signed, and the intermediate under a renewed root, still chains to the new
certificate alone, so the hosts need only the new chain.crt. The old
certificate stays in chain.crt as `LEVEL@serial` (kept as LEVEL.crt.<serial>.bak)
until `rotate finish` drops it; the plan checks every leaf in service against
the new certificate first, and the result says which ones verified.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, replace

from cryptography import x509

from pgkongtls import certs
from pgkongtls.certs import SelfCheckError, cert_pem, self_check
from pgkongtls.errors import InputError, StateError
from pgkongtls.lifecycle.base import CA_LEVELS, LEAF_ROLES, Ca, Reader, check_days, must
from pgkongtls.manifest import CHAIN_FILE, CertEntry, Change, Manifest, entry_for, fingerprint, iso, parse_iso

#: `Manifest.phase` after `renew root|intermediate`: old CA certificates are still in the trust files.
RENEWED = "renewed"
#: `Manifest.phase` after `rotate begin` and after `rotate reissue` (lifecycle.rotate).
BEGUN = "begun"
REISSUED = "reissued"
#: What comes next in each phase: the one line a command run out of order says.
NEXT = {
    None: "next is pgkongtls rotate --dir PKI begin",
    RENEWED: "next is pgkongtls rotate --dir PKI finish (after renew root|intermediate)",
    BEGUN: "next is pgkongtls rotate --dir PKI reissue, once every host has the new chain.crt and crl.pem",
    REISSUED: "next is pgkongtls rotate --dir PKI finish, once every host has its re-issued certificate",
}


def refuse(m: Manifest, command: str) -> StateError:
    """A command run in the wrong phase: one line naming the phase and what comes next."""
    return StateError(f"{command} refused: the PKI is in phase {m.phase or 'steady (no rotation)'}; {NEXT[m.phase]}")


@dataclass(frozen=True)
class CaRenewal:
    """What `renew root|intermediate` did: the change, and the leaves checked against the new certificate."""

    change: Change
    level: str
    old: CertEntry
    checked: tuple[str, ...]


def old_cas(m: Manifest) -> list[CertEntry]:
    """The superseded CA certificates still in the trust files (`LEVEL@serial`)."""
    return [e for e in m.certificates.values() if e.role in CA_LEVELS and "@" in e.name]


def chain_pem(m: Manifest, read: Reader) -> bytes:
    """chain.crt: each CA level's certificate followed by its superseded ones still trusted, intermediate first."""
    out: list[bytes] = []
    for level in ("intermediate", "root"):
        if level not in m.certificates:
            continue
        for e in [m.certificates[level], *sorted((o for o in old_cas(m) if o.role == level), key=lambda o: o.name)]:
            out.append(must(read(e.file), e.file))
    return b"".join(out)


def _lifetime(e: CertEntry) -> int:
    return (parse_iso(e.not_after) - parse_iso(e.not_before) - certs.BACKDATE).days


def ca_days(m: Manifest, ca: Ca, level: str, days: int | None, now: dt.datetime) -> int:
    """The new CA lifetime: the old one by default; an intermediate never outlives its root."""
    want = check_days(days, "--days") if days is not None else _lifetime(m.certificates[level])
    if level == "root":
        return want
    left = (ca.certs["root"].not_valid_after_utc - now).days
    if left < 1:
        raise StateError("the root CA expires within a day; renew it first: pgkongtls renew --dir PKI root")
    if days is not None and days > left:
        raise InputError(f"--days {days} outlives the root CA (it expires "
                         f"{iso(ca.certs['root'].not_valid_after_utc)[:10]}); use --days {left} or less, "
                         "or renew the root first")
    return min(want, left)


def resign(old: x509.Certificate, signer: certs.Issued, *, days: int, now: dt.datetime) -> x509.Certificate:
    """The old certificate's subject, key and every extension, with a new serial and validity."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(old.subject)
        .issuer_name(signer.cert.subject)
        .public_key(old.public_key())
        .serial_number(certs._random_serial())
        .not_valid_before(now - certs.BACKDATE)
        .not_valid_after(now + dt.timedelta(days=days))
    )
    for ext in old.extensions:
        builder = builder.add_extension(ext.value, ext.critical)
    return builder.sign(signer.key, certs._hash_for(signer.key))


def check_leaves(
    m: Manifest, found: Mapping[str, x509.Certificate], anchors: list[x509.Certificate],
    intermediates: list[x509.Certificate], *, level: str, now: dt.datetime,
) -> tuple[str, ...]:
    """Every leaf in service under `level` must verify with the new certificates alone (strict RFC 5280)."""
    checked: list[str] = []
    for e in sorted(m.certificates.values(), key=lambda e: e.name):
        if e.role not in LEAF_ROLES or e.revoked or "@" in e.name or parse_iso(e.not_after) <= now:
            continue
        if level != "root" and e.issuer != level:
            continue
        leaf = found[e.name]
        try:
            self_check(anchors=anchors, intermediates=intermediates, server=leaf if e.role == "server" else None,
                       client=leaf if e.role == "client" else None, host=e.sans[0] if e.sans else "", now=now)
        except SelfCheckError as exc:
            raise StateError(f"{e.name} does not verify with the renewed {level} CA ({exc}); "
                             f"renew {e.name} first") from None
        checked.append(e.name)
    return tuple(checked)


def plan_renew_ca(
    m: Manifest, ca: Ca, found: Mapping[str, x509.Certificate], level: str, read: Reader, *,
    days: int | None = None, now: dt.datetime | None = None,
) -> CaRenewal:
    """Re-sign the `level` CA's certificate with the root key; keep the old one in chain.crt."""
    now = now or certs.utcnow()
    if level not in CA_LEVELS or level not in m.certificates:
        raise InputError(f"this PKI has no {level} CA (it was made with --chain {m.chain}); renew root")
    if m.phase not in (None, RENEWED):
        raise refuse(m, f"renew {level}")
    old = m.certificates[level]
    new_days = ca_days(m, ca, level, days, now)
    new = resign(found[level], ca.signer("root"), days=new_days, now=now)
    if new.extensions.get_extension_for_class(x509.SubjectKeyIdentifier) != \
            found[level].extensions.get_extension_for_class(x509.SubjectKeyIdentifier):
        raise SelfCheckError("self-check failed, this is a pgkongtls bug: the renewed CA's SKI changed")
    certs_now = {**ca.certs, level: new}
    anchors = [certs_now["root"]]
    intermediates = [c for n, c in certs_now.items() if n != "root"]
    checked = check_leaves(m, found, anchors, intermediates, level=level, now=now)
    archived_file = f"{old.file}.{old.serial}.bak"
    archived = replace(old, name=f"{level}@{old.serial}", file=archived_file)
    entry = entry_for(new, name=level, role=level, issuer=old.issuer, file=old.file, key_file=old.key_file)
    manifest = replace(m.with_cert(archived).with_cert(entry), phase=RENEWED)
    files = {archived_file: must(read(old.file), old.file), old.file: cert_pem(new)}
    files[CHAIN_FILE] = chain_pem(manifest, overlay(read, files))
    change = Change(manifest, files, frozenset(), frozenset({old.file, CHAIN_FILE}), (entry,))
    return CaRenewal(change, level, old, checked)


def overlay(read: Reader, files: dict[str, bytes]) -> Reader:
    """Read the planned files first, then the directory."""
    return lambda name: files.get(name, read(name))


def plan_finish_renewal(m: Manifest, read: Reader) -> Change:
    """Drop the superseded CA certificates from chain.crt (their .bak files stay as the archive); a leaf file
    that bundles a superseded intermediate bundles the current one from now on (the leaf itself is unchanged)."""
    if m.phase != RENEWED:
        raise refuse(m, "rotate finish")
    gone = {e.sha256 for e in old_cas(m)}
    kept = {n: e for n, e in m.certificates.items() if not (e.role in CA_LEVELS and "@" in n)}
    manifest = replace(m, certificates=kept, phase=None)
    files = {CHAIN_FILE: chain_pem(manifest, read)}
    inter = m.certificates.get("intermediate")
    bundle = must(read(inter.file), inter.file) if inter is not None else b""
    for e in kept.values() if bundle else ():
        data = read(e.file) if e.role in LEAF_ROLES else None
        found = x509.load_pem_x509_certificates(data) if data else []
        if len(found) == 2 and fingerprint(found[1]) in gone:
            files[e.file] = cert_pem(found[0]) + bundle
    return Change(manifest, files, frozenset(), frozenset(files), ())
