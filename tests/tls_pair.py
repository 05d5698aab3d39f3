"""Mutual-TLS handshake over a socketpair with the stdlib's default contexts.

Run as a script under any Python (3.13+ makes the default context strict), so
the tests can check minted files with exactly what asyncpg and friends use:
    python tls_pair.py SERVER_CRT SERVER_KEY SERVER_TRUST CLIENT_CRT CLIENT_KEY CLIENT_TRUST HOSTNAME
Prints "OK <protocol>" and exits 0, or prints the failing side's error and exits 1.
"""

from __future__ import annotations

import socket
import ssl
import sys
import threading


def handshake(
    server_crt: str, server_key: str, server_trust: str,
    client_crt: str, client_key: str, client_trust: str, hostname: str,
) -> str:
    """Both sides verify the other; returns the negotiated protocol or raises ssl.SSLError."""
    sctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=server_trust)
    sctx.verify_mode = ssl.CERT_REQUIRED
    sctx.load_cert_chain(server_crt, server_key)
    cctx = ssl.create_default_context(cafile=client_trust)
    cctx.load_cert_chain(client_crt, client_key)
    a, b = socket.socketpair()
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            with sctx.wrap_socket(a, server_side=True) as s:
                s.recv(1)
        except (ssl.SSLError, OSError) as exc:
            errors.append(exc)

    t = threading.Thread(target=serve)
    t.start()
    try:
        with cctx.wrap_socket(b, server_hostname=hostname) as c:
            version = c.version() or "?"
            c.sendall(b"x")
    finally:
        t.join(10)
    if errors:
        raise errors[0]
    return version


if __name__ == "__main__":
    try:
        print("OK", handshake(*sys.argv[1:8]))
    except (ssl.SSLError, OSError) as exc:
        print(f"FAIL {exc}")
        sys.exit(1)
