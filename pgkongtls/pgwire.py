"""Reading PostgreSQL's wire protocol from a server that may be hostile.

One `Deadline` bounds the whole probe (every connect, read and handshake gets what is left of
--timeout), and a message longer than libpq would accept, or too short for its type, ends the
exchange: a server streaming ParameterStatus forever or announcing a 2 GiB message cannot keep
`probe` running. Every text a server sends goes through `errors.printable`.
"""

from __future__ import annotations

import socket
import struct
import time

from pgkongtls.errors import PgkError, printable

#: libpq's limit for the messages a probe can meet (fe-protocol3.c): a longer one is not PostgreSQL.
MAX_MESSAGE = 30000


class Expired(PgkError):
    """The --timeout ran out before a step finished."""


class Hostile(Exception):
    """The server broke the protocol (a message too short or too long, or no end in time)."""


class Deadline:
    """The one --timeout for the whole probe."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self, who: str, doing: str) -> float:
        remaining = self.end - time.monotonic()
        if remaining <= 0:
            raise Expired(f"{who} did not finish {doing} within --timeout {self.seconds:g} s")
        return remaining

    def arm(self, sock: socket.socket, who: str, doing: str) -> None:
        """Bound the next blocking read/write on a socket pyOpenSSL uses (it ignores settimeout)."""
        remaining = self.left(who, doing)
        usec = max(int((remaining % 1) * 1e6), 0 if int(remaining) else 1)  # 0 s 0 us would mean "forever"
        tv = struct.pack("ll", int(remaining), usec)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)

    def startup_expired(self) -> str:
        return f"the server did not finish the StartupMessage exchange within --timeout {self.seconds:g} s"


def _recv_exact(conn: object, n: int, sock: socket.socket, deadline: Deadline) -> bytes:
    buf = b""
    while len(buf) < n:
        try:
            deadline.arm(sock, "the server", "the StartupMessage exchange")
        except Expired:
            raise Hostile(deadline.startup_expired()) from None
        chunk = conn.recv(n - len(buf))  # type: ignore[attr-defined]
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def read_message(conn: object, sock: socket.socket, deadline: Deadline) -> tuple[bytes, bytes]:
    """One backend message (type, body), refusing lengths PostgreSQL never sends."""
    kind = _recv_exact(conn, 1, sock, deadline)
    length = struct.unpack("!i", _recv_exact(conn, 4, sock, deadline))[0]
    if not 4 <= length <= MAX_MESSAGE:
        raise Hostile(f"the server sent a {printable(repr(kind)[2:-1])!r} message of length {length} "
                      f"(PostgreSQL's are 4 to {MAX_MESSAGE}); it is not a PostgreSQL server")
    body = _recv_exact(conn, length - 4, sock, deadline)
    if kind == b"R" and len(body) < 4:
        raise Hostile("the server sent an authentication message without a code; it is not a PostgreSQL server")
    return kind, body


def error_fields(body: bytes) -> dict[str, str]:
    """An ErrorResponse's fields by code letter, each made printable."""
    fields: dict[str, str] = {}
    for part in body.split(b"\0"):
        if part:
            fields[chr(part[0])] = printable(part[1:].decode("utf-8", "replace"))
    return fields
