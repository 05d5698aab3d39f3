"""Operations on the CAs themselves: `renew root|intermediate` and `rotate finish`, each one locked transaction.

Kept apart from ops.py (the leaf commands); the planning is lifecycle.ca's.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pgkongtls import DEFAULT_CRL_DAYS, DEFAULT_LOCK_WAIT, lifecycle
from pgkongtls.lifecycle import rotate
from pgkongtls.lifecycle.ca import BEGUN, REISSUED, CaRenewal, plan_renew_ca, refuse
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


def begin(
    pki: Path, *, key_type: str | None = None, ca_passphrase: bytes | None = None, crl_days: int = DEFAULT_CRL_DAYS,
    now: dt.datetime | None = None, lock_wait: float = DEFAULT_LOCK_WAIT,
) -> Change:
    """`pgkongtls rotate begin`: every CA key signs the CRLs of both; the new keys get the same passphrase."""
    with _checked(pki, lock_wait) as (tx, m, found, read):
        if m.phase is not None:
            raise refuse(m, "rotate begin")
        ca = lifecycle.load_ca(m, found, read, passphrase=ca_passphrase, sign_with=lifecycle.CA_LEVELS)
        change = rotate.plan_begin(m, ca, read, key_type=key_type, passphrase=ca_passphrase, crl_days=crl_days,
                                   now=now)
        return _apply(tx, change)


def reissue(
    pki: Path, *, ca_passphrase: bytes | None = None, now: dt.datetime | None = None,
    lock_wait: float = DEFAULT_LOCK_WAIT,
) -> Change:
    """`pgkongtls rotate reissue`: only the new issuing CA's key signs."""
    with _checked(pki, lock_wait) as (tx, m, found, read):
        if m.phase != BEGUN:
            raise refuse(m, "rotate reissue")
        ca = lifecycle.load_ca(m, found, read, passphrase=ca_passphrase, sign_with=("issuing",))
        return _apply(tx, rotate.plan_reissue(m, ca, found, read, now=now))


def finish(
    pki: Path, *, ca_passphrase: bytes | None = None, crl_days: int = DEFAULT_CRL_DAYS,
    now: dt.datetime | None = None, lock_wait: float = DEFAULT_LOCK_WAIT,
) -> Change:
    """`pgkongtls rotate finish`: drop the old CA certificates from the trust files (and, after a rotation,
    their CRLs, re-signed by the current CAs)."""
    with _checked(pki, lock_wait) as (tx, m, found, read):
        ca = None
        if m.phase == REISSUED and m.crl_file:
            ca = lifecycle.load_ca(m, found, read, passphrase=ca_passphrase, sign_with=lifecycle.CA_LEVELS)
        change = rotate.plan_finish(m, ca, read, crl_days=crl_days, now=now)
        gone = rotate.retired(m, change.manifest, tx.names())
        tx.commit(change.all_files(), private=change.private, replaces=change.replaces, remove=gone)
        return change
