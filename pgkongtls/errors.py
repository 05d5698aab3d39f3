"""Library exceptions; cli.py turns them into one-line click errors."""

from __future__ import annotations

import contextlib
import re
import signal
import threading
from collections.abc import Iterator
from types import FrameType


class PgkError(Exception):
    """Base of every error pgkongtls reports to the user as one line."""


class InputError(PgkError, ValueError):
    """A value the user gave cannot be used."""


class StateError(PgkError):
    """The directory is not in a state the command can work on (exists, missing, edited)."""


class PgkWarning(UserWarning):
    """Something works but is unsafe (a passphrase file others can read); the CLI prints one line."""


#: C0 and C1 controls, DEL, lone surrogates (non-UTF-8 bytes via surrogateescape) and the Unicode
#: line/paragraph separators: anything that can move a terminal's cursor, recolour it or break a line.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def printable(text: str) -> str:
    """`text` with every control character as a visible escape (\\x1b, \\n): one line, no ANSI."""
    def esc(m: re.Match[str]) -> str:
        c = ord(m.group())
        return {0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}.get(c) or (f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}")
    return _UNPRINTABLE.sub(esc, text)


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold Ctrl-C until the block ends, then raise KeyboardInterrupt.

    cryptography's verifier calls back into Python; a KeyboardInterrupt raised there comes
    back as a failed signature, which the self-check reports as a pgkongtls bug.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread receives signals
        return
    pending: list[int] = []

    def hold(signum: int, _frame: FrameType | None) -> None:
        pending.append(signum)

    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pending:
        raise KeyboardInterrupt
