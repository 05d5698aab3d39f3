"""The in-place path: a PKI directory that cannot be swapped (the root of a mount point), or that holds
so many files that swapping it would cost what it holds (INPLACE_ABOVE).

A dedicated volume (`docker run -v /srv/pki:/pki`, a bind mount, a tmpfs) cannot be renamed: the
exchange fails with EBUSY, and a hard link from it to a stage beside it with EXDEV. os.path.ismount
misses bind mounts of the same filesystem, so `commit` detects the case by trying (fsio.MountRoot).
Then the change is staged INSIDE the target and renamed into place file by file, the manifest last.

Crash safety comes from a commit marker: the stage's manifest is written under a temporary name and
renamed to its own name only once every staged file is durable (and the previous PKI, for init
--force, is kept beside it). The next locked run (`recover`) finishes a stage that has its manifest
(roll forward: rename what is left, delete what the change removes, the manifest last) and deletes
one that has not (the target was not touched yet). Between those renames a reader (status) may see
a half-placed PKI and refuse it as edited by hand; the next writing command completes it.

Test steps (PGKONGTLS_TEST_FAIL_AT): `write:<name>`, `staged`, `place:<name>`, `swapped`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

from pgkongtls.manifest import MANIFEST_NAME

#: The stage inside the target: one at a time (the lock), named so no manifest entry can clash (a leading '.').
INPLACE_DIR = ".pgkongtls-inplace"
#: What the change deletes, one name a line, written before the commit marker.
_REMOVE = ".remove"
_PART = f".{MANIFEST_NAME}.part"

#: Above this many files in the PKI directory, a day-2 commit goes in place (this module: staged
#: inside the target, renamed file by file, the manifest last) instead of the directory exchange,
#: which hard-links every file into a stage and unlinks the old links: on 10,000 entries (20,000
#: files) that was ~0.7 s of a one-name `issue`, whatever the change. Below it the exchange stays:
#: it is atomic for readers too, even after a kill.
INPLACE_ABOVE = 200


def holds_many(target: Path) -> bool:
    """More than INPLACE_ABOVE entries: the exchange would cost what the PKI holds, not what changes."""
    try:
        with os.scandir(target) as it:
            return sum(1 for _ in it) > INPLACE_ABOVE
    except FileNotFoundError:
        return False


class MountRoot(Exception):
    """The target cannot be swapped (the root of a mount point, or no RENAME_EXCHANGE): commit in place."""


def crosses_mount(stage: Path, target: Path) -> bool:
    """Whether the stage beside the target is on another mount: another device, or a hard link refused
    with EXDEV (a bind mount of the same filesystem, which os.path.ismount does not see)."""
    if os.stat(stage).st_dev != os.stat(target).st_dev:
        return True
    probe = next((e.path for e in os.scandir(target) if e.is_file(follow_symlinks=False)), None)
    if probe is None:
        return False  # nothing to link: the exchange itself tells (EBUSY)
    try:
        os.link(probe, stage / ".probe")
    except OSError as exc:
        return exc.errno == errno.EXDEV
    os.unlink(stage / ".probe")
    return False


def commit_in_place(
    target: Path, files: dict[str, bytes], private: frozenset[str], remove: frozenset[str],
    keep_previous: str | None,
) -> Path | None:
    """Stage inside `target`, mark the stage complete, then place it (see the module docstring)."""
    from pgkongtls.fsio import STAGE_TAG, _checkpoint, _fsync_dir, _sync_stage, _write_new

    inner = target / INPLACE_DIR
    os.mkdir(inner, 0o700)
    try:  # until the marker the target is untouched: a failure removes the stage, so nothing changed
        names = sorted(n for n in files if n != MANIFEST_NAME)
        for name in names:
            _checkpoint(f"write:{name}")
            _write_new(inner / name, files[name], 0o600 if name in private else 0o644, sync=False)
        _write_new(inner / _REMOVE, "".join(f"{n}\n" for n in sorted(remove)).encode(), 0o600, sync=False)
        _sync_stage(inner, [*names, _REMOVE])
        kept = None
        if keep_previous is not None:
            kept = _keep_copy(target, target.parent / f".{target.name}{STAGE_TAG}keep", target.parent / keep_previous)
        if MANIFEST_NAME in files:
            _checkpoint(f"write:{MANIFEST_NAME}")
            _write_new(inner / _PART, files[MANIFEST_NAME], 0o644)
    except BaseException:
        shutil.rmtree(inner, ignore_errors=True)
        raise
    if MANIFEST_NAME in files:
        os.rename(inner / _PART, inner / MANIFEST_NAME)  # the commit marker
        _fsync_dir(inner)
    _checkpoint("staged")
    _place(target, _checkpoint)
    return kept


def _place(target: Path, step: Callable[[str], None]) -> None:
    """Rename every staged file into the target, delete what the change removes, the manifest last."""
    from pgkongtls.fsio import _fsync_dir

    inner = target / INPLACE_DIR
    for name in sorted(os.listdir(inner)):
        if name not in (MANIFEST_NAME, _REMOVE, _PART):
            step(f"place:{name}")
            os.rename(inner / name, target / name)
    for name in (inner / _REMOVE).read_text().splitlines():
        with contextlib.suppress(FileNotFoundError):
            os.unlink(target / name)
    if (inner / MANIFEST_NAME).exists():
        step(f"place:{MANIFEST_NAME}")
        os.rename(inner / MANIFEST_NAME, target / MANIFEST_NAME)
    _fsync_dir(target)
    step("swapped")
    shutil.rmtree(inner)


def _keep_copy(target: Path, part: Path, kept: Path) -> Path:
    """init --force's backup of the previous PKI: a copy beside the mount point (no link crosses it), 0700,
    each file with its own mode (keys 0600). Built under a stage name, so a killed run leaves it to _sweep."""
    from pgkongtls.fsio import _write_new

    os.mkdir(part, 0o700)
    for entry in os.scandir(target):
        if entry.is_file(follow_symlinks=False):
            with open(entry.path, "rb") as f:
                data = f.read()
            _write_new(part / entry.name, data, stat.S_IMODE(entry.stat(follow_symlinks=False).st_mode))
    os.rename(part, kept)
    return kept


def recover(target: Path) -> None:
    """Under the lock: finish a marked in-place stage a killed run left, or delete an unmarked one."""
    inner = target / INPLACE_DIR
    try:
        st = os.lstat(inner)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        return  # not ours: the day-2 commands refuse it as a foreign file, naming it
    if (inner / MANIFEST_NAME).exists():
        _place(target, _no_step)
    else:  # killed before the marker (the target is untouched) or after the manifest was placed (complete)
        shutil.rmtree(inner)


def _no_step(_: str) -> None:
    """Recovery runs no test steps: a kill there is a kill of the next run, tested as such."""
