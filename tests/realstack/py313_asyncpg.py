"""Connect with asyncpg through Python's DEFAULT ssl context (strict on 3.13+); print one JSON line.

Runs under $PGKONGTLS_PY313 (a separate virtualenv with asyncpg), so it imports
nothing from the test suite. `--resolve NAME:IP` plays the part of libpq's
hostaddr: asyncpg has no such option and checks the certificate against the
host it was given, so NAME is answered with IP by getaddrinfo in this process
only. `--relaxed` clears VERIFY_X509_STRICT, to show that strictness alone is
what rejects a chain.

    python py313_asyncpg.py --host H --port P --cafile CA [--cert C --key K] [--user U]
        [--password PW] [--database D] [--resolve NAME:IP] [--relaxed]
Output: {"ok": true, "ssl": ..., "version": ..., "client_dn": ..., "strict": ..., "python": ...}
     or {"ok": false, "error": "...", "type": "...", "strict": ..., "python": ...}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import ssl
import sys


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cafile", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--user", default="kong")
    ap.add_argument("--password")
    ap.add_argument("--database", default="postgres")
    ap.add_argument("--resolve")
    ap.add_argument("--relaxed", action="store_true")
    a = ap.parse_args()

    if a.resolve:
        name, _, ip = a.resolve.partition(":")
        real = socket.getaddrinfo

        def fake(host: object, *args: object, **kwargs: object) -> list:  # type: ignore[type-arg]
            return real(ip if host == name else host, *args, **kwargs)  # type: ignore[arg-type]

        socket.getaddrinfo = fake  # type: ignore[assignment]

    ctx = ssl.create_default_context(cafile=a.cafile)
    if a.relaxed:
        ctx.verify_flags &= ~ssl.VERIFY_X509_STRICT
    if a.cert:
        ctx.load_cert_chain(a.cert, a.key)
    base = {"strict": bool(ctx.verify_flags & ssl.VERIFY_X509_STRICT), "python": sys.version.split()[0],
            "openssl": ssl.OPENSSL_VERSION}
    try:
        import asyncpg

        base["asyncpg"] = asyncpg.__version__
        row = asyncio.run(_query(a, ctx))
    except Exception as exc:  # report every failure to the test as data
        print(json.dumps({"ok": False, "error": str(exc), "type": type(exc).__name__, **base}))
        return 1
    print(json.dumps({"ok": True, **row, **base}))
    return 0


async def _query(a: argparse.Namespace, ctx: ssl.SSLContext) -> dict[str, object]:
    import asyncpg

    conn = await asyncpg.connect(host=a.host, port=a.port, user=a.user, password=a.password,
                                 database=a.database, ssl=ctx, timeout=15)
    try:
        r = await conn.fetchrow("SELECT ssl, version, client_dn, current_user AS user "
                                "FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        return dict(r)
    finally:
        await conn.close()


if __name__ == "__main__":
    sys.exit(main())
