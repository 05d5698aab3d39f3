"""`rotate begin | reissue | finish`: move a PKI to new CA keys in three deployable phases.

- begin: mint a new root (and intermediate) under new names. The old CAs become `LEVEL@serial` (files kept
  as .bak, keys 0600) and stay trusted: chain.crt holds old and new, crl.pem a CRL from every level of both
  (PostgreSQL refuses a client of any CA level without one once a CRL is loaded).
- reissue: every server and client certificate in service is re-issued from the new CA with the same name,
  subject, SANs and file names.
- finish: the old CAs leave chain.crt and crl.pem; their .bak files stay as the archive.
Each phase is one Change (one atomic commit); a phase run out of order is refused with one line naming the
phase the PKI is in.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Mapping
from dataclasses import replace

from cryptography import x509

from pgkongtls import DEFAULT_CRL_DAYS, KEY_TYPES, certs
from pgkongtls.certs import cert_pem, key_pem
from pgkongtls.errors import InputError, StateError
from pgkongtls.lifecycle.base import CA_LEVELS, LEAF_ROLES, Ca, Reader, must
from pgkongtls.lifecycle.ca import BEGUN, REISSUED, RENEWED, chain_pem, old_cas, overlay, plan_finish_renewal, refuse
from pgkongtls.lifecycle.check import LeafChecker
from pgkongtls.lifecycle.issue import Plan, max_days, mint
from pgkongtls.lifecycle.revoke import build_crls, previous_crl_number
from pgkongtls.manifest import BACKUP_NAME, CHAIN_FILE, CertEntry, Change, Manifest, entry_for, foreign_names, parse_iso

_ID = re.compile(r"(.*) [0-9a-f]{6}")


def new_cn(old: str) -> str:
    """A new name for the new CA: the old one's prefix with a new random id, so the CRLs never mix them up."""
    base = m.group(1) if (m := _ID.fullmatch(old)) else old
    return f"{base} {secrets.token_hex(3)}"


def _lifetime(e: CertEntry) -> int:
    return (parse_iso(e.not_after) - parse_iso(e.not_before) - certs.BACKDATE).days


def _crl(m: Manifest, ca: Ca, read: Reader, *, days: int, now: dt.datetime) -> tuple[Manifest, dict[str, bytes]]:
    """crl.pem re-signed for every CA the manifest trusts, when the PKI has one."""
    if not m.crl_file:
        return m, {}
    number = max(previous_crl_number(read(m.crl_file)) + 1, int(now.timestamp()))
    pem, next_update = build_crls(m, ca, days=days, now=now, number=number)
    return replace(m, crl_next_update=next_update), {m.crl_file: pem}


def plan_begin(
    m: Manifest, ca: Ca, read: Reader, *, key_type: str | None = None, passphrase: bytes | None = None,
    crl_days: int = DEFAULT_CRL_DAYS, now: dt.datetime | None = None,
) -> Change:
    """Mint the new CAs; the old ones stay trusted and keep signing their CRLs."""
    now = now or certs.utcnow()
    if m.phase is not None:
        raise refuse(m, "rotate begin")
    key_type = key_type or m.key_type
    if key_type not in KEY_TYPES:
        raise InputError(f"unknown --key-type {key_type!r}; use one of {', '.join(KEY_TYPES)}")
    levels = [n for n in CA_LEVELS if n in m.certificates]
    old = {n: m.certificates[n] for n in levels}
    archived = {n: f"{n}@{e.serial}" for n, e in old.items()}
    root = certs.make_root(cn=new_cn(old["root"].cn), key=certs.generate_key(key_type), days=_lifetime(old["root"]),
                           with_intermediate="intermediate" in old, now=now)
    minted = {"root": root}
    if "intermediate" in old:
        days = min(_lifetime(old["intermediate"]), _lifetime(old["root"]))
        minted["intermediate"] = certs.make_intermediate(cn=new_cn(old["intermediate"].cn),
                                                         key=certs.generate_key(key_type), issuer=root, days=days, now=now)
    files: dict[str, bytes] = {}
    manifest = replace(m, key_type=key_type, phase=BEGUN)
    for n, e in old.items():
        bak = replace(e, name=archived[n], file=f"{e.file}.{e.serial}.bak", key_file=f"{e.key_file}.{e.serial}.bak",
                      issuer=archived.get(e.issuer or "", e.issuer))
        files[bak.file], files[bak.key_file] = must(read(e.file), e.file), must(read(e.key_file), e.key_file)
        new = minted[n]
        entry = entry_for(new.cert, name=n, role=n, issuer=e.issuer, file=e.file, key_file=e.key_file)
        files[e.file], files[e.key_file] = cert_pem(new.cert), key_pem(new.key, passphrase)
        manifest = manifest.with_cert(bak).with_cert(entry)
    for e in m.certificates.values():  # the leaves stay the old CAs' until reissue
        if e.role in LEAF_ROLES and e.issuer in archived:
            manifest = manifest.with_cert(replace(e, issuer=archived[e.issuer]))
    both = Ca(certs={**{archived[n]: c for n, c in ca.certs.items()}, **{n: i.cert for n, i in minted.items()}},
              keys={**{archived[n]: k for n, k in ca.keys.items()}, **{n: i.key for n, i in minted.items()}},
              issuing=ca.issuing)
    manifest, crl = _crl(manifest, both, read, days=crl_days, now=now)
    files |= crl
    files[CHAIN_FILE] = chain_pem(manifest, overlay(read, files))
    private = frozenset(f for e in old.values() for f in (e.key_file, f"{e.key_file}.{e.serial}.bak"))
    replaces = frozenset({*(f for e in old.values() for f in (e.file, e.key_file)), CHAIN_FILE, *crl})
    return Change(manifest, files, private, replaces, tuple(manifest.certificates[n] for n in levels))


def plan_reissue(
    m: Manifest, ca: Ca, found: Mapping[str, x509.Certificate], read: Reader, *, now: dt.datetime | None = None,
) -> Change:
    """Every leaf in service still from an old CA: the same name, subject, SANs and files, from the new CA."""
    now = now or certs.utcnow()
    if m.phase != BEGUN:
        raise refuse(m, "rotate reissue")
    old = {e.name for e in old_cas(m)}
    plan = Plan.on(replace(m, phase=REISSUED))
    checker = LeafChecker(ca, now)
    for e in sorted(m.certificates.values(), key=lambda e: e.name):
        if e.role not in LEAF_ROLES or e.revoked or "@" in e.name or e.issuer not in old:
            continue
        plan.retire(e, read)
        days = max(1, min(_lifetime(e), max_days(ca, now)))
        entry, crt, key = mint(m, ca, name=e.name, role=e.role, cn=e.cn, hosts=e.sans,
                               key=certs.generate_key(m.key_type), days=days, now=now, file=e.file,
                               key_file=e.key_file, checker=checker)
        plan.add(entry, crt, key)
    return plan.change()


def plan_finish(m: Manifest, ca: Ca | None, read: Reader, *, crl_days: int = DEFAULT_CRL_DAYS,
                now: dt.datetime | None = None) -> Change:
    """Drop the old CAs from chain.crt and crl.pem, with the revoked leaves only they vouched for."""
    now = now or certs.utcnow()
    if m.phase in (None, RENEWED):
        return plan_finish_renewal(m, read)
    if m.phase != REISSUED:
        raise refuse(m, "rotate finish")
    gone = {e.name for e in old_cas(m)}
    for n in LEAF_ROLES:  # the manifest always has these two names
        if m.certificates[n].issuer in gone:
            raise StateError(f"{n} is revoked and still from the old CA; renew it first: pgkongtls renew --dir PKI {n}")
    kept = {n: e for n, e in m.certificates.items() if n not in gone and e.issuer not in gone}
    manifest = replace(m, certificates=kept, phase=None)
    files = {CHAIN_FILE: chain_pem(manifest, read)}
    if ca is not None:
        current = Ca(certs={n: c for n, c in ca.certs.items() if "@" not in n},
                     keys={n: k for n, k in ca.keys.items() if "@" not in n}, issuing=ca.issuing)
        manifest, crl = _crl(manifest, current, read, days=crl_days, now=now)
        files |= crl
    return Change(manifest, files, frozenset(), frozenset(files), ())


def retired(old: Manifest, new: Manifest, names: list[str]) -> frozenset[str]:
    """The files of the leaves `finish` drops (revoked ones of the old CAs) and their backups: certificates of
    a CA nobody trusts any more, which the new manifest would otherwise call foreign. ops deletes them."""
    gone = {f for n, e in old.certificates.items() if n not in new.certificates and e.role in LEAF_ROLES
            for f in (e.file, e.key_file)}
    return frozenset(n for n in foreign_names(new, names)
                     if n in gone or ((b := BACKUP_NAME.fullmatch(n)) is not None and b["file"] in gone))
