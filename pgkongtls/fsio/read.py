"""Reads for the commands: the manifest, passphrases and PKI files, each a regular file, capped.

Loading a PKI (`snapshot`) costs what the command touches, not what the PKI holds: see `StatCache`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pgkongtls import DEFAULT_LOCK_WAIT
from pgkongtls.errors import InputError, PgkWarning, StateError
from pgkongtls.manifest import CHAIN_FILE, MANIFEST_NAME, STAT_CACHE, Manifest, checked_files, is_stat_temp, loads

if TYPE_CHECKING:  # cryptography loads only when a file has to be checked in full
    from pgkongtls.pkiload import Certs

#: What identifies one version of a file without reading it.
StatKey = tuple[int, int, int, int, int]


def stat_key(st: os.stat_result) -> StatKey:
    return st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns, st.st_dev


def _read_manifest(directory: Path) -> tuple[Manifest, os.stat_result]:
    path = Path(directory) / MANIFEST_NAME
    if not Path(directory).is_dir():
        raise StateError(f"{directory} does not exist; create a PKI with pgkongtls init --out {directory}")
    try:
        data, st = read_regular(path)
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise StateError(f"{directory} is not a pgkongtls PKI (no {MANIFEST_NAME}); create one with pgkongtls init") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StateError(f"cannot read {path}: {exc}") from None
    return loads(text), st


def load_manifest(directory: Path, *, check: bool = True) -> Manifest:
    """Read `pgkongtls.json`, refusing a directory whose files differ from it (one line naming the file).

    `check=False` is for `verify`, which reports each damaged file as a finding instead.
    """
    if not check:
        return _read_manifest(directory)[0]
    return snapshot(Path(directory)).manifest


def lock_dir(target: Path, wait: float, *, shared: bool = False) -> int:
    """flock the PKI directory itself, waiting at most `wait` seconds; the fd holds the lock.

    Writers take it exclusive, readers (`status`, `render`) shared, so a reader never sees half
    of a writer's commit. Only whoever can open the directory can hold its lock: with
    pgkongtls's 0700 that is its owner (and root), so no other local user can block a renewal,
    as they could by locking the parent (/etc, /tmp). The directory may be swapped by the run
    we waited for: then lock the live one.
    """
    deadline = time.monotonic() + max(wait, 0.0)
    while True:
        fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() >= deadline:
                raise StateError(f"another pgkongtls run holds the lock on {target}; wait for it to finish, "
                                 "or pass a longer --wait SECONDS") from None
            time.sleep(0.01)
            continue
        try:
            same = os.fstat(fd).st_ino == os.stat(target, follow_symlinks=False).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


@contextlib.contextmanager
def shared_lock(directory: Path) -> Iterator[None]:
    """A reader's shared lock; a directory this user cannot open (execute-only) is read unlocked."""
    try:
        fd = lock_dir(Path(os.path.realpath(directory)), DEFAULT_LOCK_WAIT, shared=True)
    except (PermissionError, FileNotFoundError, NotADirectoryError):
        yield
        return
    try:
        yield
    finally:
        os.close(fd)


class StatCache:
    """`pgkongtls.stat`: size, mtime_ns, inode, ctime_ns and device of each certificate file (and of the
    manifest) as the last writing command left them, after it had checked or written them.

    Why this is sound. A reader trusts an untouched file without reading it only when all five
    values are still what the writer recorded and the manifest's own are too; any difference means
    the full check (parse, fingerprint, every derived field, issuer signature). Replacing a file
    (editor, cp to a temp and mv, restore from backup) gives a new inode; writing into it in place
    changes the ctime, which no unprivileged process can set back (utime can forge mtime, not
    ctime). The writer records only after its last link/unlink in the directory and after the
    coarse kernel clock has moved past every recorded ctime (`_settle`), so a change in the same
    clock tick as the record is still seen; and it records an untouched file only when size,
    mtime and inode are still those it verified. A cache is used only when the directory and the
    cache file belong to this user (or root) and nobody else can write them: whoever could forge
    the cache could equally rewrite the files. A missing or malformed cache means full checks.
    """

    def __init__(self, manifest: StatKey | None, files: dict[str, StatKey]) -> None:
        self.manifest, self.files = manifest, files

    @classmethod
    def load(cls, directory: Path) -> StatCache:
        empty = cls(None, {})
        try:
            data, st = read_regular(directory / STAT_CACHE)
            dst = os.stat(directory)
        except (OSError, InputError):
            return empty
        if not all(s.st_uid in (os.geteuid(), 0) and not s.st_mode & 0o022 for s in (st, dst)):
            return empty
        try:
            raw = json.loads(data)
            files = {str(k): _key(v) for k, v in raw["files"].items()}
            return cls(_key(raw["manifest"]), files)
        except (ValueError, KeyError, TypeError, AttributeError):
            return empty

    def dumps(self) -> bytes:
        return json.dumps({"manifest": self.manifest, "files": self.files}, sort_keys=True).encode()


def _key(value: object) -> StatKey:
    if not (isinstance(value, list) and len(value) == 5 and all(type(v) is int for v in value)):
        raise ValueError("stat key")
    return value[0], value[1], value[2], value[3], value[4]


@dataclass
class Snapshot:
    """One consistent view of a PKI: the manifest, and which files were checked or vouched for."""

    directory: Path
    manifest: Manifest
    #: (size, mtime_ns, inode) of each certificate file as checked: what a writer may vouch for.
    verified: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    _certs: Certs | None = None

    def read(self, name: str) -> bytes | None:
        """Read a PKI file; a certificate file's stat is remembered with what was checked."""
        data, st = _read_or_none(self.directory, name)
        if st is not None and name in self._checked:
            self.verified[name] = (st.st_size, st.st_mtime_ns, st.st_ino)
        return data

    @property
    def _checked(self) -> set[str]:
        return set(checked_files(self.manifest))

    def certs(self) -> Certs:
        """The certificates by name, parsed on first use (cryptography is imported only then)."""
        if self._certs is None:
            from pgkongtls import pkiload

            self._certs = pkiload.Certs(self.manifest, self.read)
        return self._certs


def _read_or_none(directory: Path, name: str) -> tuple[bytes | None, os.stat_result | None]:
    try:
        return read_regular(directory / name)
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        raise StateError(f"cannot read {directory / name}: {exc.strerror or exc}") from None


def snapshot(directory: Path, *, locked: bool = False) -> Snapshot:
    """Load the manifest and refuse files that differ from it, checking in full only what changed.

    `locked`: the caller holds the exclusive lock (a writer); otherwise a shared lock is taken
    for the load, so a commit is seen whole or not at all.
    """
    if not locked:
        with reading(directory) as snap:
            return snap
    m, mst = _read_manifest(directory)
    cache = StatCache.load(directory)
    names = checked_files(m)
    snap = Snapshot(directory, m)
    trusted: set[str] = set()
    if cache.manifest == stat_key(mst):
        base = os.fspath(directory)
        for name in names:
            want = cache.files.get(name)
            if want is None:
                continue
            try:
                st = os.stat(os.path.join(base, name), follow_symlinks=False)
            except OSError:
                continue
            if stat_key(st) == want:
                trusted.add(name)
                snap.verified[name] = (st.st_size, st.st_mtime_ns, st.st_ino)
    if len(trusted) < len(names):
        from pgkongtls import pkiload

        snap._certs = pkiload.verify_pki(m, snap.read, trusted)
    return snap


@contextlib.contextmanager
def reading(directory: Path) -> Iterator[Snapshot]:
    """A reader's snapshot, with the shared lock held until the block ends (for reads beyond the certificates)."""
    with shared_lock(directory):
        yield snapshot(directory, locked=True)


def _settle(fd: int, ctimes: list[int]) -> None:
    """Wait (a few ms at most) until the kernel's coarse file clock is past every ctime about to be recorded:
    `fd` is the new cache file, whose own ctime shows the clock's current tick."""
    newest = max(ctimes, default=0)
    deadline = time.monotonic() + 1.0
    while os.fstat(fd).st_ctime_ns <= newest and time.monotonic() < deadline:
        time.sleep(0.001)
        os.fchmod(fd, 0o644)  # bumps the ctime to the clock's current tick


def record_stats(directory: Path, verified: dict[str, tuple[int, int, int]], written: dict[str, bytes]) -> None:
    """After a commit: record the stat of every certificate file the writer checked (`verified`, from
    its snapshot) or wrote (`written`: vouched for only if the file still holds those bytes).

    Best effort: without a cache (or with a stale one) the next command checks in full.
    """
    try:
        text, mst = read_regular(directory / MANIFEST_NAME)
        if text != written.get(MANIFEST_NAME):
            return
        raw = json.loads(text)  # what this run just wrote: only the file names are needed, not loads' checks
        names = [str(e["file"]) for e in raw["certificates"].values()] + [CHAIN_FILE] * (raw["mode"] == "ca")
        found: dict[str, os.stat_result] = {}
        vouched = {n: v for n, v in verified.items() if n not in written}
        base = os.fspath(directory)  # string joins: pathlib's were a third of this on 10,000 files
        for name in names:
            if "/" in name:
                continue
            with contextlib.suppress(OSError, InputError):
                if name in written:
                    data, st = read_regular(directory / name)
                    if data == written[name]:
                        vouched[name] = (st.st_size, st.st_mtime_ns, st.st_ino)
                found[name] = os.stat(os.path.join(base, name), follow_symlinks=False)
        tmp = directory / f".{STAT_CACHE}.{os.getpid()}.tmp"
        for left in os.listdir(directory):  # a killed run's temporary file (under our exclusive lock)
            if is_stat_temp(left):
                os.unlink(directory / left)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            _settle(fd, [st.st_ctime_ns for st in found.values()] + [mst.st_ctime_ns])
            files = {}
            for name, st in found.items():
                again = os.stat(os.path.join(base, name), follow_symlinks=False)
                if vouched.get(name) == (st.st_size, st.st_mtime_ns, st.st_ino) and stat_key(again) == stat_key(st):
                    files[name] = stat_key(st)
            if stat_key(os.stat(directory / MANIFEST_NAME)) != stat_key(mst):
                os.unlink(tmp)
                return
            view = memoryview(StatCache(stat_key(mst), files).dumps())
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(tmp, directory / STAT_CACHE)
    except (OSError, InputError, ValueError, KeyError, TypeError, AttributeError):
        return


#: cryptography refuses longer passphrases.
MAX_PASSPHRASE = 1023


def read_passphrase(path: Path | None, *, option: str = "--ca-passphrase-file", noun: str = "CA passphrase") -> bytes | None:
    """A passphrase from a file option (the CA's by default), without its one trailing newline."""
    if path is None:
        return None
    try:
        data, st = read_regular(Path(path), limit=MAX_PASSPHRASE + 2)
    except OSError as exc:
        raise InputError(f"cannot read {option} {path}: {exc.strerror or exc}") from None
    except InputError as exc:
        raise InputError(f"{option}: {exc}") from None
    if st.st_mode & 0o077:
        warnings.warn(PgkWarning(f"{option} {path} has mode {stat.S_IMODE(st.st_mode):04o}: other users "
                                 f"may read the {noun}; chmod 600 {path}"), stacklevel=2)
    data = data[:-2] if data.endswith(b"\r\n") else data[:-1] if data.endswith(b"\n") else data
    if not data:
        raise InputError(f"{option} {path} is empty; write the {noun} into it")
    if len(data) > MAX_PASSPHRASE:
        raise InputError(f"{option} {path} holds more than {MAX_PASSPHRASE} bytes; use a shorter passphrase")
    return data


def reader(directory: Path) -> Callable[[str], bytes | None]:
    """Read PKI files by name for the planners (lifecycle.Reader): a missing file is None, other errors one line."""
    def read(name: str) -> bytes | None:
        return _read_or_none(directory, name)[0]
    return read


#: The most pgkongtls reads from any one file (certificate, key, CRL, config, manifest, passphrase):
#: far above a 100,000-entry CRL, far below what a link to /dev/zero would eat.
MAX_READ = 16 * 1024 * 1024
_KINDS = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"),
          (stat.S_ISSOCK, "a socket"))


def read_regular(path: Path, *, limit: int = MAX_READ) -> tuple[bytes, os.stat_result]:
    """A regular file's bytes (at most `limit`) and its fstat, from one open.

    O_NONBLOCK so a FIFO cannot hang the open; fstat on the same descriptor, so what is checked is
    what is read. Links are followed on purpose: Kubernetes mounts secrets as symlinks, and what a
    link points at is checked like the file itself.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise InputError(f"{path} is a directory; point at a file")
        if not stat.S_ISREG(st.st_mode):
            kind = next((name for test, name in _KINDS if test(st.st_mode)), "not a regular file")
            raise InputError(f"{path} is {kind}, not a regular file; point at the file itself")
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise InputError(f"{path} is larger than {limit // (1024 * 1024)} MiB; point at the right file")
        return b"".join(chunks), st
    finally:
        os.close(fd)
