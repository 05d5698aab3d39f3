"""Writes outside a PKI directory: rendered snippets, exported keys, bundles and installs on a host."""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from pgkongtls.errors import StateError
from pgkongtls.fsio import (
    STAGE_TAG,
    _checkpoint,
    _fsync_dir,
    _os_error,
    _write_all,
    _write_new,
    transaction,
    write_private,
)


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
