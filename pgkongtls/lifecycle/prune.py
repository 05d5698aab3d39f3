"""`prune` and `renew --keep-backups`: remove archived certificates and keys nobody can need any more.

Every renewal keeps NAME.crt.<serial>.bak and NAME.key.<serial>.bak (600 renewals left 2,414 files).
Per certificate name, the newest `keep` backups stay whatever they are. Past those, a backup is removed
only once its certificate has expired: until then an unrevoked one may still be in service somewhere
(and `revoke --reason keyCompromise` must still find it), and a revoked one is still on a CRL that
PostgreSQL needs, so its files and its NAME@<serial> entry stay. An expired revoked certificate leaves
the manifest with its files: a CRL need not list a certificate past its notAfter.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, replace

from pgkongtls import pkiload
from pgkongtls.errors import InputError
from pgkongtls.lifecycle.base import LEAF_ROLES, Reader
from pgkongtls.manifest import BACKUP_NAME, Manifest, backup_name


@dataclass(frozen=True)
class Pruned:
    """What prune removes (file names), the manifest without the entries that went, and what it kept."""

    manifest: Manifest
    removed: tuple[str, ...]
    kept_valid: tuple[str, ...]  # past `keep`, but not expired yet (in service, or on a CRL)


def check_keep(keep: int) -> int:
    if keep < 0:
        raise InputError(f"--keep-backups must be 0 or more, got {keep}")
    return keep


def plan_prune(
    m: Manifest, listing: Iterable[str], read: Reader, *, keep: int, now: dt.datetime,
    only: Iterable[str] | None = None,
) -> Pruned:
    """Per current certificate (or the `only` names), the backups past the newest `keep` that have expired."""
    check_keep(keep)
    names = set(listing)
    wanted = set(only) if only is not None else None
    archived = {e.file: e.name for e in m.certificates.values() if "@" in e.name}
    certs = dict(m.certificates)
    removed: list[str] = []
    kept_valid: list[str] = []
    for owner in sorted(m.certificates.values(), key=lambda e: e.name):
        if owner.role not in LEAF_ROLES or "@" in owner.name or (wanted is not None and owner.name not in wanted):
            continue
        found = []
        for name in names:
            b = BACKUP_NAME.fullmatch(name)
            if b and b["file"] == owner.file:
                cert = pkiload.parse_certs(read(name), name)[0]
                found.append((cert.not_valid_before_utc, name, b["serial"], cert.not_valid_after_utc))
        for _, crt, serial, not_after in sorted(found, reverse=True)[keep:]:
            if not_after > now:
                kept_valid.append(crt)
                continue
            key = backup_name(owner.key_file, serial)
            removed += [crt, *([key] if key in names else [])]
            if crt in archived:
                del certs[archived[crt]]
    return Pruned(replace(m, certificates=certs), tuple(removed), tuple(kept_valid))
