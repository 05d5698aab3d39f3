"""The one module that touches the filesystem: locked, all-or-nothing PKI writes.

A change to a PKI directory is staged in a sibling directory (hard links to the
files that stay, new files written there with O_EXCL), then swapped in with one
`renameat2(RENAME_EXCHANGE)`. A crash at any point leaves the directory either
exactly as it was or complete. Keys are created 0600 from their first byte.

For tests only: PGKONGTLS_TEST_FAIL_AT=<step> raises at that step, and
PGKONGTLS_TEST_FAIL_AT=<step>:kill SIGKILLs the process there. Steps:
`write:<file name>`, `staged`, `swapped`.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import shutil
import signal
import stat
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pgkongtls import DEFAULT_LOCK_WAIT
from pgkongtls.errors import InputError, PgkError, PgkWarning, StateError
from pgkongtls.manifest import MANIFEST_NAME, Manifest, loads

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
    """Atomically swap two directories; False when the kernel or filesystem can't."""
    libc = ctypes.CDLL(None, use_errno=True)
    fn = getattr(libc, "renameat2", None)
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
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

    def manifest(self) -> Manifest:
        return load_manifest(self.target)

    def exists(self, name: str) -> bool:
        return (self.target / name).exists()

    def commit(
        self, files: dict[str, bytes], *, private: frozenset[str] = frozenset(),
        overwrite: bool = False, replaces: frozenset[str] = frozenset(), remove: frozenset[str] = frozenset(),
        keep_previous: str | None = None,
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
        try:
            stage = Path(tempfile.mkdtemp(prefix=f".{self.target.name}{STAGE_TAG}", dir=self.target.parent))
        except OSError as exc:
            raise _os_error(exc, self.target) from None
        try:
            self._fill_stage(stage, files, private, remove)
            _checkpoint("staged")
            if self.target.exists():
                if not _exchange(stage, self.target):
                    self._replace_in_place(files, private, remove)
                    return None
            else:
                _rename_noreplace(stage, self.target)
            _fsync_dir(self.target.parent)
            _checkpoint("swapped")
            if keep_previous is not None:
                kept = self.target.parent / keep_previous
                os.rename(stage, kept)  # the old directory, as it was: its own mode, keys still 0600
                return kept
            return None
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

    def _replace_in_place(self, files: dict[str, bytes], private: frozenset[str], remove: frozenset[str]) -> None:
        """Fallback without RENAME_EXCHANGE: file by file, the manifest last."""
        for name in sorted(files, key=lambda n: n == MANIFEST_NAME):
            path = self.target / name
            if name in private:
                write_private(path, files[name])
            else:
                tmp = path.with_name(f".{name}.{os.getpid()}.tmp")
                _write_new(tmp, files[name], 0o644)
                os.replace(tmp, path)
        for name in remove:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.target / name)


def _sweep(target: Path) -> None:
    """Remove stages left by a killed run (they hold only 0600 keys in 0700 dirs)."""
    prefix = f".{target.name}{STAGE_TAG}"
    with contextlib.suppress(OSError):
        for entry in os.scandir(target.parent):
            if entry.name.startswith(prefix) and entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)




def foreign_entries_message(target: Path, foreign: list[str]) -> str:
    """`pki is not empty (base/, PG_VERSION, … 971 entries); choose …`: a few names, directories with '/'."""
    shown = [f"{n}/" if (target / n).is_dir() and not (target / n).is_symlink() else n for n in sorted(foreign)[:3]]
    more = f", … {len(foreign)} entries" if len(foreign) > 3 else ""
    return f"{target} is not empty ({', '.join(shown)}{more}); choose an empty or new directory"


def foreign_entries(target: Path, own: set[str]) -> list[str]:
    """What is in `target` that pgkongtls did not write (its stages and lock excepted)."""
    try:
        names = os.listdir(target)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise _os_error(exc, target) from None
    return [n for n in names if n not in own and STAGE_TAG not in n]


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
    """flock the PKI directory itself, waiting at most `wait` seconds.

    Only whoever can open the directory can hold its lock: with pgkongtls's 0700 that is its owner
    (and root), so no other local user can block a renewal, as they could by locking the parent
    (/etc, /tmp). The directory may be swapped by the run we waited for: then lock the live one.
    """
    import time

    deadline = time.monotonic() + max(wait, 0.0)
    while True:
        fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() >= deadline:
                raise StateError(f"another pgkongtls run holds the lock on {target}; wait for it to finish, "
                                 "or pass a longer --wait SECONDS") from None
            time.sleep(0.05)
            continue
        try:
            same = os.fstat(fd).st_ino == os.stat(target, follow_symlinks=False).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


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
        yield Transaction(target=target)
    finally:
        os.close(fd)


def load_manifest(directory: Path) -> Manifest:
    """Read `pgkongtls.json`, with a one-line error that says what to run instead."""
    path = Path(directory) / MANIFEST_NAME
    if not Path(directory).is_dir():
        raise StateError(f"{directory} does not exist; create a PKI with pgkongtls init --out {directory}")
    try:
        text = read_regular(path)[0].decode("utf-8")
    except FileNotFoundError:
        raise StateError(f"{directory} is not a pgkongtls PKI (no {MANIFEST_NAME}); create one with pgkongtls init") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StateError(f"cannot read {path}: {exc}") from None
    return loads(text)


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
        try:
            return read_regular(directory / name)[0]
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"cannot read {directory / name}: {exc.strerror or exc}") from None
    return read


def _make_dirs(directory: Path) -> None:
    """mkdir -p with 0755 whatever the umask allows more of (a umask only takes bits away)."""
    missing = []
    p = directory
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        os.mkdir(d, 0o755)


def write_outputs(directory: Path, files: dict[str, str], *, overwrite: bool) -> None:
    """Write rendered snippets (not secrets): every one staged as a temp file first, then renamed in,
    so a full disk leaves no temp file and no half of the set."""
    directory = Path(directory)
    temps: list[Path] = []
    try:
        _make_dirs(directory)
        if not overwrite:
            clash = sorted(n for n in files if (directory / n).exists())
            if clash:
                raise StateError(f"{directory / clash[0]} exists; pass --force to replace it")
        for name, text in files.items():
            tmp = directory / f".{name}.{os.getpid()}.tmp"
            temps.append(tmp)
            _write_new(tmp, text.encode(), 0o644)
        for tmp, name in zip(temps, files, strict=True):
            os.replace(tmp, directory / name)
        temps = []
    except OSError as exc:
        raise _os_error(exc, directory) from None
    finally:
        for tmp in temps:
            with contextlib.suppress(OSError):
                os.unlink(tmp)



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


# --------------------------------------------------------------------------- single exported secrets


def write_secret(path: Path, data: bytes, *, overwrite: bool) -> None:
    """Write one secret file (an exported key) 0600 from its first byte; never replace one unasked."""
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise StateError(f"{path} is not a regular file; choose another --out")
    if path.exists() and not overwrite:
        raise StateError(f"{path} exists; pass --force to replace it")
    try:
        write_private(path, data)
    except OSError as exc:
        raise _os_error(exc, path) from None


# --------------------------------------------------------------------------- bundles and installs on a host
# Added for `pgkongtls bundle` / `install`; the PKI functions above are unchanged.


def write_bundle(out: Path, files: dict[str, bytes], private: frozenset[str], *, replace: frozenset[str] | None) -> None:
    """Create the bundle directory (0700, keys 0600 O_EXCL) in one rename; `replace` = the previous
    bundle's files, when --force lets a bundle replace the one pgkongtls wrote there before."""
    out = Path(os.path.abspath(out))
    if out.exists() and replace is None:
        raise StateError(f"{out} exists; pass --force to replace a bundle there, or choose another --out")
    with transaction(out, create=True) as tx:
        gone = (replace or frozenset()) - set(files)
        tx.commit(files, private=private, overwrite=True, remove=frozenset(gone))


def read_bundle_dir(directory: Path) -> dict[str, bytes]:
    """Every regular file of a bundle directory (flat; symlinks refused, they could point at anything)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise StateError(f"{directory} is not a directory; pass the directory pgkongtls bundle --out wrote")
    out: dict[str, bytes] = {}
    try:
        for entry in os.scandir(directory):
            if entry.is_symlink() or not entry.is_file(follow_symlinks=False):
                raise StateError(f"{entry.path} is not a regular file; copy the bundle again (rsync -a, scp -rp)")
            out[entry.name] = Path(entry.path).read_bytes()
    except OSError as exc:
        raise StateError(f"cannot read {directory}: {exc.strerror or exc}") from None
    return out


def write_new_private(path: Path, data: bytes) -> None:
    """A file that must not exist yet, 0600 from its first byte (a bundle --tar holds a key)."""
    try:
        _write_new(Path(path), data, 0o600)
    except FileExistsError:
        raise StateError(f"{path} exists; remove it or choose another --tar") from None
    except OSError as exc:
        raise _os_error(exc, Path(path)) from None


def read_text(path: Path) -> str | None:
    """A config file's text, None when it does not exist."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise StateError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None


@dataclass(frozen=True)
class HostWrite:
    """One file `install` puts in place, with its final owner and mode."""

    path: Path
    data: bytes
    uid: int
    gid: int
    mode: int


@dataclass(frozen=True)
class HostDir:
    path: Path
    uid: int
    gid: int
    mode: int


def file_owner(path: Path) -> tuple[int, int, int]:
    st = Path(path).stat()
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def _stage_host_file(w: HostWrite) -> Path:
    tmp = w.path.with_name(f".{w.path.name}{STAGE_TAG}new")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchown(fd, w.uid, w.gid)
        os.fchmod(fd, w.mode)  # owner-only until here; 0640 root:postgres is the one group-readable key
        _write_all(fd, w.data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return tmp


def install_files(writes: list[HostWrite], dirs: list[HostDir]) -> None:
    """Put every file in place or none: stage all beside their targets, then rename one by one,
    keeping a hard link to each replaced file until all are in, so a failure puts the old ones back.

    Test steps for PGKONGTLS_TEST_FAIL_AT: `install:staged`, `install:<file name>` (after its rename).
    """
    made: list[Path] = []
    staged: list[tuple[HostWrite, Path]] = []
    done: list[tuple[Path, Path | None]] = []
    try:
        for d in dirs:
            if not d.path.exists():
                os.mkdir(d.path, 0o700)
                made.append(d.path)
                os.chown(d.path, d.uid, d.gid)
                os.chmod(d.path, d.mode)
        for w in writes:
            staged.append((w, _stage_host_file(w)))
        _checkpoint("install:staged")
        for w, tmp in staged:
            backup: Path | None = None
            if w.path.exists():
                backup = w.path.with_name(f".{w.path.name}{STAGE_TAG}old")
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(backup)
                os.link(w.path, backup)
            os.rename(tmp, w.path)
            done.append((w.path, backup))
            _checkpoint(f"install:{w.path.name}")
    except BaseException as exc:
        for path, backup in reversed(done):
            if backup is not None:
                os.rename(backup, path)
            else:
                os.unlink(path)
        for _w, tmp in staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        for d2 in reversed(made):
            with contextlib.suppress(OSError):
                os.rmdir(d2)
        if isinstance(exc, OSError):
            raise _os_error(exc, Path(exc.filename or "")) from None
        raise
    for _path, backup in done:
        if backup is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(backup)
    for parent in {w.path.parent for w in writes}:
        _fsync_dir(parent)


def log_size(path: Path) -> int:
    try:
        return Path(path).stat().st_size
    except OSError:
        return 0


def read_log_since(path: Path, mark: int) -> str:
    try:
        with Path(path).open("rb") as f:
            f.seek(mark)
            return f.read().decode(errors="replace")
    except OSError as exc:
        raise StateError(f"cannot read the server log {path}: {exc.strerror or exc}") from None
