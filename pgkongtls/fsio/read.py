"""Reads for the commands: the manifest, passphrases and PKI files, each a regular file, capped."""

from __future__ import annotations

import os
import stat
import warnings
from collections.abc import Callable
from pathlib import Path

from pgkongtls.errors import InputError, PgkWarning, StateError
from pgkongtls.manifest import MANIFEST_NAME, Manifest, loads


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
