"""The one package that touches the filesystem: locked, all-or-nothing PKI writes (here), reads
(`read`) and writes on a host outside the PKI (`host`).

A change to a PKI directory is staged in a sibling directory (hard links to the
files that stay, new files written there with O_EXCL), then swapped in with one
`renameat2(RENAME_EXCHANGE)`. A crash at any point leaves the directory either
exactly as it was or complete. Keys are created 0600 from their first byte.

For tests only: PGKONGTLS_TEST_FAIL_AT=<step> raises at that step, and
PGKONGTLS_TEST_FAIL_AT=<step>:kill SIGKILLs the process there. Steps:
`write:<file name>`, `staged`, `swapped` (and `place:<file name>` on the in-place path, fsio.inplace).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import signal
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pgkongtls import DEFAULT_LOCK_WAIT
from pgkongtls.errors import PgkError, StateError
from pgkongtls.manifest import MANIFEST_NAME, Manifest, foreign_names, is_stat_temp

STAGE_TAG = ".pgkongtls-"
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


class InjectedFailure(PgkError):
    """Raised at a PGKONGTLS_TEST_FAIL_AT step so tests can prove rollback."""


def _checkpoint(step: str) -> None:
    wanted = os.environ.get("PGKONGTLS_TEST_FAIL_AT")
    if not wanted:
        return
    kill = wanted.endswith(":kill")
    if wanted.removesuffix(":kill") == step:
        if kill:
            os.kill(os.getpid(), signal.SIGKILL)
        raise InjectedFailure(f"injected failure at {step}")


def _write_new(path: Path, data: bytes, mode: int, *, sync: bool = True) -> None:
    """Create a file that must not exist yet, with its final mode from the first byte."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        _write_all(fd, data)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


#: Above this many new files, one syncfs(2) replaces an fsync (a disk flush) per file:
#: `issue client` with 1,000 names spent most of its time in fsync.
SYNCFS_ABOVE = 16


def _sync_stage(stage: Path, names: list[str]) -> None:
    """Make the staged files and their directory durable before the swap."""
    fd = os.open(stage, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if len(names) > SYNCFS_ABOVE:
            syncfs = getattr(ctypes.CDLL(None, use_errno=True), "syncfs", None)
            if syncfs is not None and syncfs(fd) == 0:
                return
        for name in names:
            file_fd = os.open(stage / name, os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fsync(file_fd)
            finally:
                os.close(file_fd)
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def write_private(path: Path, data: bytes) -> None:
    """Write a key beside its final place (0600, O_EXCL) and rename it in."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    _write_new(tmp, data, 0o600)
    os.replace(tmp, path)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two directories; False when the kernel or filesystem can't, or `b` is a mount root."""
    libc = ctypes.CDLL(None, use_errno=True)
    fn = getattr(libc, "renameat2", None)
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EBUSY, errno.EXDEV):
        return False  # EBUSY: `b` is the root of a mount point (a volume, a bind mount)
    raise OSError(err, os.strerror(err), str(a))


_RENAME_NOREPLACE = 1


def _rename_noreplace(a: Path, b: Path) -> None:
    """Rename `a` to `b` unless `b` appeared meanwhile (another run created it first)."""
    fn = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if fn is not None and fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_NOREPLACE) == 0:
        return
    err = ctypes.get_errno() if fn is not None else errno.ENOSYS
    if err == errno.EEXIST:
        raise StateError(f"{b} was created by another run meanwhile; run the command again")
    if err not in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        raise OSError(err, os.strerror(err), str(b))
    if os.path.lexists(b):
        raise StateError(f"{b} was created by another run meanwhile; run the command again")
    os.rename(a, b)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _os_error(exc: OSError, what: Path) -> StateError:
    reason = exc.strerror or str(exc)
    return StateError(f"cannot write {what}: {reason}")


@dataclass
class Transaction:
    """A locked view of one PKI directory; `commit` applies one change to it."""

    target: Path
    _snap: Snapshot | None = None

    def manifest(self) -> Manifest:
        return self.snapshot().manifest

    def snapshot(self) -> Snapshot:
        """The manifest, with every file it lists checked (in full only where the stat cache cannot vouch)."""
        if self._snap is None:
            self._snap = snapshot(self.target, locked=True)
        return self._snap

    def exists(self, name: str) -> bool:
        return (self.target / name).exists()

    def refuse_foreign(self, m: Manifest) -> None:
        """A day-2 write relinks every file of the directory: refuse one holding files pgkongtls did not write."""
        foreign = foreign_names(m, self.names())
        if foreign:
            raise StateError(foreign_files_message(self.target, foreign))

    def names(self) -> list[str]:
        """Every name in the directory (where revoke finds archived backups and prune what to remove)."""
        return sorted(os.listdir(self.target))

    def commit(
        self, files: dict[str, bytes], *, private: frozenset[str] = frozenset(),
        overwrite: bool = False, replaces: frozenset[str] = frozenset(), remove: frozenset[str] = frozenset(),
        keep_previous: str | None = None,
    ) -> Path | None:
        """`_commit`, then the stat cache for the next command: what was checked at load, and what was written."""
        kept = self._commit(files, private=private, overwrite=overwrite, replaces=replaces, remove=remove,
                            keep_previous=keep_previous)
        record_stats(self.target, self._snap.verified if self._snap is not None else {}, files)
        return kept

    def _commit(
        self, files: dict[str, bytes], *, private: frozenset[str], overwrite: bool, replaces: frozenset[str],
        remove: frozenset[str], keep_previous: str | None,
    ) -> Path | None:
        """Write `files` (keys in `private`) and delete `remove`, all at once or not at all.

        An existing file is replaced only with `overwrite` or when named in `replaces`
        (files the change means to supersede, such as a renewed certificate). With `keep_previous`,
        the directory as it was is kept beside the target under that name (0700, keys 0600) and its
        path returned, instead of being deleted.
        """
        if not overwrite:
            clash = [n for n in files if n != MANIFEST_NAME and n not in replaces and (self.target / n).exists()]
            if clash:
                first = sorted(clash, key=lambda n: (not n.endswith(".key"), n))[0]
                raise StateError(f"{first} exists in {self.target}; pass --force to replace it")
        if keep_previous is None and inplace.holds_many(self.target):
            try:
                return inplace.commit_in_place(self.target, files, private, remove, None)
            except OSError as exc:
                raise _os_error(exc, self.target) from None
        if keep_previous is not None:  # two init --force in one second: never rename onto the first's backup
            keep_previous = next(n for i in range(1, 1000) if not os.path.lexists(
                self.target.parent / (n := keep_previous if i == 1 else f"{keep_previous}.{i}")))
        try:
            stage = Path(tempfile.mkdtemp(prefix=f".{self.target.name}{STAGE_TAG}", dir=self.target.parent))
        except OSError as exc:
            raise _os_error(exc, self.target) from None
        try:
            if self.target.exists() and inplace.crosses_mount(stage, self.target):
                raise inplace.MountRoot
            self._fill_stage(stage, files, private, remove)
            _checkpoint("staged")
            if self.target.exists():
                if not _exchange(stage, self.target):
                    raise inplace.MountRoot
            else:
                _rename_noreplace(stage, self.target)
            _fsync_dir(self.target.parent)
            _checkpoint("swapped")
            if keep_previous is not None:
                kept = self.target.parent / keep_previous
                os.rename(stage, kept)  # the old directory, as it was: its own mode, keys still 0600
                return kept
            return None
        except inplace.MountRoot:
            shutil.rmtree(stage, ignore_errors=True)
            try:
                return inplace.commit_in_place(self.target, files, private, remove, keep_previous)
            except OSError as exc:
                raise _os_error(exc, self.target) from None
        except OSError as exc:
            raise _os_error(exc, self.target) from None
        finally:
            shutil.rmtree(stage, ignore_errors=True)

    def _fill_stage(self, stage: Path, files: dict[str, bytes], private: frozenset[str], remove: frozenset[str]) -> None:
        if self.target.exists():
            # The stage is mkdtemp's: 0700 and ours. It takes the target's mode only (never its owner:
            # transaction() refuses targets that are not ours or that others can write).
            os.chmod(stage, stat.S_IMODE(self.target.stat().st_mode) & 0o755)
            subdirs = [e.name for e in os.scandir(self.target) if e.is_dir(follow_symlinks=False)]
            if subdirs:  # pgkongtls writes no directories: never copy or move someone else's
                raise StateError(foreign_entries_message(self.target, subdirs))
            for entry in os.scandir(self.target):
                if entry.name in files or entry.name in remove:
                    continue
                dst = stage / entry.name
                if entry.is_symlink():
                    os.symlink(os.readlink(entry.path), dst)
                else:
                    try:
                        os.link(entry.path, dst)
                    except OSError:
                        shutil.copy2(entry.path, dst)
        else:
            os.chmod(stage, 0o700)
        for name in sorted(files, key=lambda n: n == MANIFEST_NAME):
            _checkpoint(f"write:{name}")
            _write_new(stage / name, files[name], 0o600 if name in private else 0o644, sync=False)
        _sync_stage(stage, list(files))


def _sweep(target: Path) -> None:
    """Remove stages left by a killed run (they hold only 0600 keys in 0700 dirs).

    Only our own: a directory another user named like a stage, in a shared parent such as /tmp,
    is theirs, and pgkongtls never deletes what it did not write.
    """
    prefix = f".{target.name}{STAGE_TAG}"
    uid = os.geteuid()
    with contextlib.suppress(OSError):
        for entry in os.scandir(target.parent):
            if (entry.name.startswith(prefix) and entry.is_dir(follow_symlinks=False)
                    and entry.stat(follow_symlinks=False).st_uid == uid):
                shutil.rmtree(entry.path, ignore_errors=True)




def _shown(target: Path, foreign: list[str]) -> str:
    """`base/, PG_VERSION, … 971 entries`: a few names, directories with '/'."""
    shown = [f"{n}/" if (target / n).is_dir() and not (target / n).is_symlink() else n for n in sorted(foreign)[:3]]
    more = f", … {len(foreign)} entries" if len(foreign) > 3 else ""
    return ", ".join(shown) + more


def foreign_entries_message(target: Path, foreign: list[str]) -> str:
    """`pki is not empty (base/, PG_VERSION, … 971 entries); choose …`, for a new PKI's --out."""
    return f"{target} is not empty ({_shown(target, foreign)}); choose an empty or new directory"


def foreign_files_message(target: Path, foreign: list[str]) -> str:
    """A day-2 command's refusal: every write relinks each file of the directory, so none may be someone else's."""
    return (f"{target} holds files pgkongtls did not write ({_shown(target, foreign)}); "
            "move them out of the PKI directory and run the command again")


def foreign_entries(target: Path, own: set[str]) -> list[str]:
    """What is in `target` that pgkongtls did not write."""
    try:
        names = os.listdir(target)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise _os_error(exc, target) from None
    return [n for n in names if n not in own and not is_stat_temp(n)]


def _check_owned(target: Path) -> None:
    """Refuse a directory another user made or can write: they could rewrite what pgkongtls writes there."""
    st = os.stat(target)
    if st.st_uid != os.geteuid():
        import pwd

        try:
            owner = pwd.getpwuid(st.st_uid).pw_name
        except KeyError:
            owner = f"uid {st.st_uid}"
        raise StateError(f"{target} belongs to {owner}, not to you; choose a directory of your own")
    if stat.S_IMODE(st.st_mode) & 0o022:
        raise StateError(f"{target} is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o}); "
                         f"chmod 700 {target} or choose another directory")


def _lock(target: Path, wait: float) -> int:
    """The writer's exclusive lock (fsio.read.lock_dir says why the directory itself is locked)."""
    return lock_dir(target, wait)


@contextlib.contextmanager
def transaction(target: Path, *, wait: float = DEFAULT_LOCK_WAIT, create: bool = False) -> Iterator[Transaction]:
    """Lock one PKI directory for one read-modify-write.

    A symlinked --out/--dir is resolved once, here, so every later step (lock, stage, swap,
    reads) works on the directory the link points at, and the link itself stays a link.
    """
    target = Path(os.path.realpath(target))
    if target.exists() and not target.is_dir():
        raise StateError(f"{target} is a file; pass --out a directory")
    parent = target.parent
    if not parent.is_dir():
        raise StateError(f"parent directory {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise StateError(f"cannot write to {parent}; choose another --out or fix its permissions")
    if not create and not target.is_dir():
        load_manifest(target)  # raises the one-line "does not exist; create a PKI with …"
    if not target.exists():
        # A new PKI: nothing to lock yet. The stage is renamed in with RENAME_NOREPLACE, so of two
        # runs creating the same directory exactly one lands, and a killed run leaves no directory.
        _sweep(target)
        yield Transaction(target=target)
        return
    _check_owned(target)
    fd = _lock(target, wait)
    try:
        _sweep(target)
        try:
            inplace.recover(target)
        except OSError as exc:
            raise _os_error(exc, target) from None
        yield Transaction(target=target)
    finally:
        os.close(fd)


# Reads, host writes and the in-place path live in submodules; the names callers use stay here.
from pgkongtls.fsio import inplace  # noqa: E402
from pgkongtls.fsio.host import HostDir as HostDir  # noqa: E402
from pgkongtls.fsio.host import HostWrite as HostWrite  # noqa: E402
from pgkongtls.fsio.host import file_owner as file_owner  # noqa: E402
from pgkongtls.fsio.host import install_files as install_files  # noqa: E402
from pgkongtls.fsio.host import log_size as log_size  # noqa: E402
from pgkongtls.fsio.host import read_bundle_dir as read_bundle_dir  # noqa: E402
from pgkongtls.fsio.host import read_log_since as read_log_since  # noqa: E402
from pgkongtls.fsio.host import read_text as read_text  # noqa: E402
from pgkongtls.fsio.host import write_bundle as write_bundle  # noqa: E402
from pgkongtls.fsio.host import write_new_private as write_new_private  # noqa: E402
from pgkongtls.fsio.host import write_outputs as write_outputs  # noqa: E402
from pgkongtls.fsio.host import write_secret as write_secret  # noqa: E402
from pgkongtls.fsio.read import (  # noqa: E402  (after the core they build on)
    MAX_PASSPHRASE as MAX_PASSPHRASE,
)
from pgkongtls.fsio.read import MAX_READ as MAX_READ  # noqa: E402
from pgkongtls.fsio.read import Snapshot as Snapshot  # noqa: E402
from pgkongtls.fsio.read import load_manifest as load_manifest  # noqa: E402
from pgkongtls.fsio.read import lock_dir as lock_dir  # noqa: E402
from pgkongtls.fsio.read import read_passphrase as read_passphrase  # noqa: E402
from pgkongtls.fsio.read import read_regular as read_regular  # noqa: E402
from pgkongtls.fsio.read import reader as reader  # noqa: E402
from pgkongtls.fsio.read import reading as reading  # noqa: E402
from pgkongtls.fsio.read import record_stats as record_stats  # noqa: E402
from pgkongtls.fsio.read import shared_lock as shared_lock  # noqa: E402
from pgkongtls.fsio.read import snapshot as snapshot  # noqa: E402
