"""Operations the CLI runs: plan in memory (pki), then one locked transaction (fsio).

This is the library API behind each command; cli.py only parses and prints.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pgkongtls import fsio
from pgkongtls.errors import StateError
from pgkongtls.manifest import MANIFEST_NAME, Manifest
from pgkongtls.pki import FileSet, InitOptions, SelfSignedOptions, plan_init, plan_self_signed

#: Files whose presence means "this directory already holds a PKI".
PKI_MARKERS = (MANIFEST_NAME, "root.key", "intermediate.key", "server.key", "client.key")


def _files_of(m: Manifest) -> set[str]:
    names = {n for e in m.certificates.values() for n in (e.file, e.key_file)}
    return names | ({m.crl_file} if m.crl_file else set()) | {"chain.crt"}


def _write_fresh(out: Path, fs: FileSet, *, force: bool) -> Manifest:
    """Write a new PKI; refuse an existing one unless `force`, then drop its old files too."""
    with fsio.transaction(out) as tx:
        present = [n for n in PKI_MARKERS if tx.exists(n)]
        if present and not force:
            raise StateError(f"{out} already holds a PKI ({present[0]}); pass --force to replace it")
        stale: set[str] = set()
        if force and tx.exists(MANIFEST_NAME):
            try:
                stale = _files_of(tx.manifest())
            except StateError:
                stale = set()
        new = fs.all_files()
        tx.commit(new, private=fs.private, overwrite=force, remove=frozenset(stale - set(new)))
    return fs.manifest


def init(out: Path, opts: InitOptions, *, force: bool = False, now: dt.datetime | None = None) -> Manifest:
    """`pgkongtls init`: mint, self-check and write a CA-based PKI."""
    return _write_fresh(out, plan_init(opts, now=now), force=force)


def self_signed(out: Path, opts: SelfSignedOptions, *, force: bool = False, now: dt.datetime | None = None) -> Manifest:
    """`pgkongtls self-signed --test`: the test-only pair that trust each other directly."""
    return _write_fresh(out, plan_self_signed(opts, now=now), force=force)
