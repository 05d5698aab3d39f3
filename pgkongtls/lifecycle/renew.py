"""`renew`: re-issue leaves with the same subject, SANs and file names, so no rendered config changes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from cryptography import x509

from pgkongtls import certs
from pgkongtls.errors import InputError, StateError
from pgkongtls.lifecycle.base import LEAF_ROLES, Ca, Progress, Reader, key_type_of_cert, load_key, lookup, same_key
from pgkongtls.lifecycle.check import LeafChecker
from pgkongtls.lifecycle.issue import Plan, leaf_days, max_days, mint
from pgkongtls.manifest import Change, Manifest, parse_iso


def select_expiring(m: Manifest, window: dt.timedelta, now: dt.datetime) -> list[str]:
    """Leaves in service (not revoked) whose notAfter falls within the window."""
    return sorted(
        e.name for e in m.certificates.values()
        if e.role in LEAF_ROLES and not e.revoked and parse_iso(e.not_after) <= now + window
    )


def plan_renew(
    m: Manifest, ca: Ca, found: Mapping[str, x509.Certificate], names: list[str], read: Reader, *,
    reuse_key: bool = False, days: int | None = None, now: dt.datetime | None = None, progress: Progress | None = None,
) -> Change:
    """Re-issue leaves; the lifetime stays the old one unless `days` is given, and never outlives the CA."""
    now = now or certs.utcnow()
    plan = Plan.on(m)
    checker = LeafChecker(ca, now)
    unique = list(dict.fromkeys(names))
    for name in unique:
        old = lookup(m, name)
        if "@" in name:
            raise InputError(f"{name} is a revoked certificate kept for the CRL; renew {name.split('@')[0]} instead")
        if old.role not in LEAF_ROLES:
            raise InputError(f"{name} is a CA; renew it on its own, without --reuse-key (it always keeps its key): "
                             f"pgkongtls renew --dir PKI {name}")
        cert = found[name]
        if reuse_key:
            if old.revocation_reason == "keyCompromise":
                raise InputError(f"{name} was revoked for keyCompromise; renew it without --reuse-key")
            key = load_key(read(old.key_file), old.key_file, None)
            if not same_key(key, cert):
                raise StateError(f"{old.key_file} does not belong to {old.file}; renew without --reuse-key")
        else:
            key = certs.generate_key(key_type_of_cert(cert))
        lifetime = (parse_iso(old.not_after) - parse_iso(old.not_before) - certs.BACKDATE).days
        want = leaf_days(ca, days, now) if days is not None else max(1, min(lifetime, max_days(ca, now)))
        plan.retire(old, read)
        entry, crt, key_bytes = mint(
            m, ca, name=name, role=old.role, cn=old.cn, hosts=old.sans, key=key, days=want, now=now,
            file=old.file, key_file=old.key_file, also_client=old.role == "server" and certs.has_client_auth(cert),
            checker=checker,
        )
        plan.add(entry, crt, key_bytes)
        if progress is not None:
            progress(len(plan.done), len(unique))
    return plan.change()
