"""Operations the CLI runs: plan in memory (pki, lifecycle), then one locked transaction (fsio).

This is the library API behind each command; cli.py only parses and prints.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from pgkongtls import DEFAULT_DAYS_LEAF, DEFAULT_KEEP_BACKUPS, DEFAULT_LOCK_WAIT, certs, fsio, lifecycle
from pgkongtls.errors import InputError
from pgkongtls.manifest import Change, Manifest
from pgkongtls.ops_init import init as init  # the library API is ops.*; cli imports ops_init to start faster
from pgkongtls.ops_init import self_signed as self_signed

if TYPE_CHECKING:
    from cryptography import x509


# ---------------------------------------------------------------- day 2: issue, renew, revoke, crl, status

@contextlib.contextmanager
def _checked(
    pki: Path, lock_wait: float,
) -> Iterator[tuple[fsio.Transaction, Manifest, Mapping[str, x509.Certificate], lifecycle.Reader]]:
    """Lock the PKI, load its manifest and refuse files that no longer match it (fsio.snapshot: in full
    only the files the stat cache cannot vouch for)."""
    with fsio.transaction(pki, wait=lock_wait) as tx:
        snap = tx.snapshot()
        tx.refuse_foreign(snap.manifest)
        yield tx, snap.manifest, snap.certs(), fsio.reader(tx.target)


def _apply(tx: fsio.Transaction, change: Change, *, force: bool = False,
           remove: frozenset[str] = frozenset()) -> Change:
    """Commit one planned change with its manifest; never clobber a file the plan did not mean to."""
    tx.commit(change.all_files(), private=change.private, overwrite=force, replaces=change.replaces, remove=remove)
    return change


def issue(
    pki: Path, requests: list[lifecycle.LeafRequest], *, days: int = DEFAULT_DAYS_LEAF, key_type: str | None = None,
    force: bool = False, ca_passphrase: bytes | None = None, now: dt.datetime | None = None,
    lock_wait: float = DEFAULT_LOCK_WAIT, progress: lifecycle.Progress | None = None,
) -> Change:
    """`pgkongtls issue client|server`: mint leaves from the issuing CA, all in one commit."""
    with _checked(pki, lock_wait) as (tx, m, found, read):
        ca = lifecycle.load_ca(m, found, read, passphrase=ca_passphrase, sign_with=("issuing",))
        change = lifecycle.plan_issue(m, ca, requests, read, days=days, key_type=key_type, force=force, now=now,
                                       progress=progress)
        return _apply(tx, change, force=force)


def renew(
    pki: Path, names: list[str], *, expiring_within: dt.timedelta | None = None, reuse_key: bool = False,
    days: int | None = None, ca_passphrase: bytes | None = None, now: dt.datetime | None = None,
    lock_wait: float = DEFAULT_LOCK_WAIT, revoke_old: bool = False, crl_days: int = lifecycle.DEFAULT_CRL_DAYS,
    progress: lifecycle.Progress | None = None, keep_backups: int = DEFAULT_KEEP_BACKUPS,
) -> Change | None:
    """`pgkongtls renew`: re-issue the named leaves (or those expiring soon); None when none are due.

    With `revoke_old`, the replaced certificates are revoked (superseded) and the CRLs re-signed in the
    same commit, so it needs every CA level's key, as revoke does.
    """
    if bool(names) == (expiring_within is not None):
        raise InputError("name the certificates to renew, or pass --expiring-within 30d (not both)")
    now = now or certs.utcnow()
    with _checked(pki, lock_wait) as (tx, m, found, read):
        if expiring_within is not None:
            names = lifecycle.select_expiring(m, expiring_within, now)
            if not names:
                return None
        for name in names:
            lifecycle.lookup(m, name)
        signers = lifecycle.CA_LEVELS if revoke_old else ("issuing",)
        ca = lifecycle.load_ca(m, found, read, passphrase=ca_passphrase, sign_with=signers)
        change = lifecycle.plan_renew(m, ca, found, names, read, reuse_key=reuse_key, days=days, now=now,
                                       progress=progress)
        if revoke_old:
            change = lifecycle.plan_revoke_old(m, change, ca, read, crl_days=crl_days, now=now)
        files = change.files
        pruned = lifecycle.plan_prune(change.manifest, [*tx.names(), *files], lambda n: files.get(n) or read(n),
                                      keep=keep_backups, now=now, only=names)
        change = dataclasses.replace(change, manifest=pruned.manifest)
        return _apply(tx, change, remove=frozenset(pruned.removed))


def revoke(
    pki: Path, names: list[str], *, reason: str = "unspecified", crl_days: int = lifecycle.DEFAULT_CRL_DAYS,
    ca_passphrase: bytes | None = None, now: dt.datetime | None = None,
    lock_wait: float = DEFAULT_LOCK_WAIT,
) -> Change:
    """`pgkongtls revoke`: mark leaves revoked and write crl.pem with a CRL from every CA level."""
    if not names:
        raise InputError("name the certificates to revoke; pgkongtls status lists them")
    with _checked(pki, lock_wait) as (tx, m, found, read):
        for name in names:
            lifecycle.lookup(m, name)
        ca = lifecycle.load_ca(m, found, read, passphrase=ca_passphrase, sign_with=lifecycle.CA_LEVELS)
        change = lifecycle.plan_revoke(m, ca, names, read, reason=reason, crl_days=crl_days, now=now,
                                       listing=tx.names())
        return _apply(tx, change)


def refresh_crl(
    pki: Path, *, crl_days: int = lifecycle.DEFAULT_CRL_DAYS, ca_passphrase: bytes | None = None,
    now: dt.datetime | None = None,
    lock_wait: float = DEFAULT_LOCK_WAIT,
) -> Change:
    """`pgkongtls crl`: re-sign every CA level's CRL (a new nextUpdate) without revoking anything."""
    with _checked(pki, lock_wait) as (tx, m, found, read):
        ca = lifecycle.load_ca(m, found, read, passphrase=ca_passphrase, sign_with=lifecycle.CA_LEVELS)
        return _apply(tx, lifecycle.plan_crl(m, ca, read, days=crl_days, now=now))


def prune(
    pki: Path, *, keep_backups: int = DEFAULT_KEEP_BACKUPS, now: dt.datetime | None = None,
    lock_wait: float = DEFAULT_LOCK_WAIT,
) -> lifecycle.Pruned:
    """`pgkongtls prune`: remove expired archived certificates and keys past the newest `keep_backups`."""
    now = now or certs.utcnow()
    with _checked(pki, lock_wait) as (tx, m, _found, read):
        pruned = lifecycle.plan_prune(m, tx.names(), read, keep=keep_backups, now=now)
        if pruned.removed:
            tx.commit(Change(pruned.manifest, {}).all_files(), remove=frozenset(pruned.removed))
        return pruned


def status(pki: Path, *, warn_days: int = lifecycle.DEFAULT_WARN_DAYS, now: dt.datetime | None = None) -> lifecycle.Status:
    """`pgkongtls status`: read-only (a shared lock, so a monitoring user needs no write access and never
    sees half a commit)."""
    with fsio.reading(Path(pki)) as snap:
        m = snap.manifest
        found = snap.certs()
        crls = lifecycle.load_crls(m, found, fsio.reader(Path(pki))(m.crl_file) if m.crl_file else None)
        levels = lifecycle.crl_levels(m, found, crls)
    return lifecycle.compute_status(m, now=now, warn_days=warn_days, crl_levels=levels)
