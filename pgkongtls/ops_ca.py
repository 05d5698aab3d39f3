"""Operations on the CAs themselves: `renew root|intermediate` and `rotate finish`, each one locked transaction.

Kept apart from ops.py (the leaf commands); the planning is lifecycle.ca's.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pgkongtls import DEFAULT_LOCK_WAIT, lifecycle
from pgkongtls.lifecycle.ca import CaRenewal, plan_finish, plan_renew_ca
from pgkongtls.manifest import Change
from pgkongtls.ops import _apply, _checked


def renew_ca(
    pki: Path, level: str, *, days: int | None = None, ca_passphrase: bytes | None = None,
    now: dt.datetime | None = None, lock_wait: float = DEFAULT_LOCK_WAIT,
) -> CaRenewal:
    """`pgkongtls renew root|intermediate`: signed with the root key, so both need it (not the intermediate's)."""
    with _checked(pki, lock_wait) as (tx, m, found, read):
        ca = lifecycle.load_ca(m, found, read, passphrase=ca_passphrase, sign_with=("root",))
        renewal = plan_renew_ca(m, ca, found, level, read, days=days, now=now)
        _apply(tx, renewal.change)
        return renewal


def finish(pki: Path, *, lock_wait: float = DEFAULT_LOCK_WAIT) -> Change:
    """`pgkongtls rotate finish`: drop the old CA certificates from the trust files."""
    with _checked(pki, lock_wait) as (tx, m, _found, read):
        return _apply(tx, plan_finish(m, read))
