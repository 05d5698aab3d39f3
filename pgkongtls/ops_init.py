"""`init` and `self-signed`: plan a whole new PKI in memory (pki), then write it in one locked transaction.

Apart from the day-2 operations in ops (which re-exports these) so that `pgkongtls init`
loads neither the day-2 planner (lifecycle) nor what it imports: start-up is most of
an init's wall time (bench/init_vs_openssl.py).
"""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

from pgkongtls import DEFAULT_LOCK_WAIT, fsio
from pgkongtls.errors import PgkWarning, StateError
from pgkongtls.manifest import CHAIN_FILE, MANIFEST_NAME, STAT_CACHE, Change, Manifest
from pgkongtls.pki import InitOptions, SelfSignedOptions, plan_init, plan_self_signed

#: Files whose presence means "this directory already holds a PKI".
PKI_MARKERS = (MANIFEST_NAME, "root.key", "intermediate.key", "server.key", "client.key")


def _files_of(m: Manifest) -> set[str]:
    names = {n for e in m.certificates.values() for n in (e.file, e.key_file)}
    return names | ({m.crl_file} if m.crl_file else set()) | {CHAIN_FILE, STAT_CACHE}


def _write_fresh(out: Path, change: Change, *, force: bool, lock_wait: float) -> Manifest:
    """Write a new PKI into an empty or new directory; with `force`, replace pgkongtls's own files only,
    keeping the previous PKI beside it as a dated backup."""
    with fsio.transaction(out, wait=lock_wait, create=True) as tx:
        present = [n for n in PKI_MARKERS if tx.exists(n)]
        if present and not force:
            raise StateError(f"{out} already holds a PKI ({present[0]}); pass --force to replace it")
        stale: set[str] = set()
        if tx.exists(MANIFEST_NAME):
            try:
                # unchecked: --force is the fix the damage messages name, so a damaged file must not stop it
                stale = _files_of(fsio.load_manifest(tx.target, check=False)) | {MANIFEST_NAME}
            except StateError:
                stale = set()
        new = change.all_files()
        foreign = fsio.foreign_entries(tx.target, stale | set(new))
        if foreign:
            raise StateError(fsio.foreign_entries_message(Path(out), foreign))
        keep = None
        if stale:
            stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            keep = f"{tx.target.name}.previous-{stamp}"
        kept = tx.commit(new, private=change.private, overwrite=force, remove=frozenset(stale - set(new)),
                         keep_previous=keep)
        if kept is not None:
            warnings.warn(PgkWarning(f"the previous PKI is kept in {kept} (0700, keys 0600); delete it once the new "
                                     "one is deployed everywhere"), stacklevel=2)
    return change.manifest


def init(out: Path, opts: InitOptions, *, force: bool = False, now: dt.datetime | None = None,
         ca_passphrase: bytes | None = None, lock_wait: float = DEFAULT_LOCK_WAIT) -> Manifest:
    """`pgkongtls init`: mint, self-check and write a CA-based PKI (CA keys encrypted with a passphrase)."""
    return _write_fresh(out, plan_init(opts, now=now, ca_passphrase=ca_passphrase), force=force, lock_wait=lock_wait)


def self_signed(out: Path, opts: SelfSignedOptions, *, force: bool = False, now: dt.datetime | None = None,
                lock_wait: float = DEFAULT_LOCK_WAIT) -> Manifest:
    """`pgkongtls self-signed --test`: the test-only pair that trust each other directly."""
    return _write_fresh(out, plan_self_signed(opts, now=now), force=force, lock_wait=lock_wait)
