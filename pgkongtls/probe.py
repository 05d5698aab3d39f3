"""`pgkongtls probe`: what a live PostgreSQL server presents, judged as Kong and as libpq would.

Library choice: the stdlib `ssl` module can neither set the verify depth nor
return the whole presented chain before Python 3.13, so the handshakes use
pyOpenSSL (PyCA, maintained with `cryptography`): `Context.set_verify_depth`
is the very OpenSSL call nginx makes for `lua_ssl_verify_depth`, the verify
callback collects OpenSSL's own errors without aborting, and
`get_peer_cert_chain` returns what the server sent. Two handshakes are made,
each configured like the client it stands for:

* Kong (pgmoon over lua-nginx-module): trust = lua_ssl_trusted_certificate,
  depth = lua_ssl_verify_depth, no SNI, no host name check;
* libpq `sslmode=verify-full`: trust = the same file, OpenSSL's default
  depth, SNI, then libpq's host name rule (`consumers.libpq_host_check`).

With a user, the StartupMessage goes over the Kong-like connection and the
server's answer (AuthenticationOk, a password request, or its ErrorResponse
text) is reported verbatim.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import asdict, dataclass

from cryptography import x509

from pgkongtls.consumers import KONG_SENDS_SNI, LIBPQ_SENDS_SNI, libpq_host_check, x509_error_text
from pgkongtls.errors import InputError, PgkError, printable
from pgkongtls.manifest import fingerprint, iso, sans_of
from pgkongtls.pgwire import Deadline, Hostile, error_fields, read_message
from pgkongtls.probe_options import ProbeOptions, Target, is_ip

SSL_REQUEST = struct.pack("!ii", 8, 80877103)
PROTOCOL_3 = 196608
AUTH_NAMES = {3: "a cleartext password", 5: "an MD5 password", 10: "a SASL (SCRAM-SHA-256) password"}


class ProbeError(PgkError):
    """The server could not be reached or did not speak PostgreSQL's protocol."""


@dataclass(frozen=True)
class Presented:
    """One certificate the server sent, as shown to people."""

    subject: str
    issuer: str
    sans: tuple[str, ...]
    not_after: str
    sha256: str

    @classmethod
    def of(cls, cert: x509.Certificate) -> Presented:
        """Every text the server chose goes through `printable`: a subject can carry ANSI escapes."""
        return cls(subject=printable(cert.subject.rfc4514_string()), issuer=printable(cert.issuer.rfc4514_string()),
                   sans=tuple(printable(n) for n in sans_of(cert)), not_after=iso(cert.not_valid_after_utc),
                   sha256=fingerprint(cert))


@dataclass(frozen=True)
class Verdict:
    """`ok` is None when the check was not run or is not a pass/fail (a password request)."""

    name: str
    ok: bool | None
    detail: str


@dataclass(frozen=True)
class ProbeReport:
    target: str
    ssl: bool
    protocol: str = ""
    cipher: str = ""
    presented: tuple[Presented, ...] = ()
    verdicts: tuple[Verdict, ...] = ()

    @property
    def failed(self) -> bool:
        return not self.ssl or any(v.ok is False for v in self.verdicts)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class _Handshake:
    conn: object
    sock: socket.socket
    errors: list[tuple[int, int, str]]
    chain: list[x509.Certificate]
    protocol: str
    cipher: str


def _connect(t: Target, timeout: float) -> socket.socket:
    try:
        sock = socket.create_connection((t.hostaddr or t.host, t.port), timeout=timeout)
    except UnicodeError:
        raise ProbeError(f"cannot resolve {printable(t.host)}: not a valid host name") from None
    except socket.gaierror as exc:
        raise ProbeError(f"cannot resolve {printable(t.host)}: {exc.strerror}") from None
    except TimeoutError:
        raise ProbeError(f"no answer from {t} within {timeout:g} s") from None
    except OSError as exc:
        raise ProbeError(f"cannot connect to {t}: {exc.strerror or exc}") from None
    return sock


def _ssl_request(sock: socket.socket, t: Target) -> bool:
    """Send SSLRequest; True for 'S', False for 'N' (the server does not do TLS)."""
    try:
        sock.sendall(SSL_REQUEST)
        answer = sock.recv(1)
    except TimeoutError:
        raise ProbeError(f"{t} did not answer the SSLRequest within the timeout; is it PostgreSQL?") from None
    except OSError as exc:
        raise ProbeError(f"{t} closed the connection during SSLRequest: {exc.strerror or exc}") from None
    if answer == b"S":
        return True
    if answer == b"N":
        return False
    if not answer:
        raise ProbeError(f"{t} closed the connection on SSLRequest; is it PostgreSQL?")
    raise ProbeError(f"{t} answered {answer!r} to SSLRequest; it is not a PostgreSQL server")


def _handshake(t: Target, opts: ProbeOptions, *, depth: int | None, sni: bool,
               deadline: Deadline) -> _Handshake | None:
    """One TLS handshake after SSLRequest; None when the server refused SSL."""
    from OpenSSL import SSL

    sock = _connect(t, deadline.left(str(t), "connecting"))
    try:
        sock.settimeout(deadline.left(str(t), "the SSLRequest"))
    except PgkError:
        sock.close()
        raise
    if not _ssl_request(sock, t):
        sock.close()
        return None
    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
    errors: list[tuple[int, int, str]] = []

    def record(_conn: object, cert: object, errno: int, err_depth: int, ok: int) -> bool:
        if not ok:
            subject = cert.to_cryptography().subject.rfc4514_string()  # type: ignore[attr-defined]
            errors.append((errno, err_depth, printable(subject)))
        return True  # keep going: the verdict is ours to give, and the chain is wanted either way

    ctx.set_verify(SSL.VERIFY_PEER, record)
    if depth is not None:
        ctx.set_verify_depth(depth)
    if opts.trusted is not None:
        from OpenSSL import crypto

        store = ctx.get_cert_store()
        assert store is not None
        for c in opts.trusted:
            store.add_cert(crypto.X509.from_cryptography(c))
    if opts.cert_file is not None and opts.key_file is not None:
        try:
            ctx.use_certificate_chain_file(str(opts.cert_file))
            ctx.use_privatekey_file(str(opts.key_file))
            ctx.check_privatekey()
        except SSL.Error:
            sock.close()
            raise InputError(f"{opts.key_file} does not match {opts.cert_file}; pass the key made with it") from None
    sock.settimeout(None)
    try:
        deadline.arm(sock, str(t), "the TLS handshake")
    except PgkError:
        sock.close()
        raise
    conn = SSL.Connection(ctx, sock)
    conn.set_connect_state()
    if sni and not is_ip(t.host):
        conn.set_tlsext_host_name(t.host.encode("idna"))
    try:
        conn.do_handshake()
    except SSL.WantReadError:
        sock.close()
        raise ProbeError(f"{t} did not finish the TLS handshake within --timeout {opts.timeout:g} s") from None
    except (SSL.Error, OSError) as exc:
        sock.close()
        raise ProbeError(f"TLS handshake with {t} failed: {printable(_ssl_text(exc))}") from None
    chain = [c.to_cryptography() for c in conn.get_peer_cert_chain() or []]
    return _Handshake(conn=conn, sock=sock, errors=errors, chain=chain,
                      protocol=conn.get_protocol_version_name(), cipher=conn.get_cipher_name() or "")


def _ssl_text(exc: BaseException) -> str:
    """The OpenSSL reason of a pyOpenSSL error (e.g. 'tlsv1 alert unknown ca')."""
    args = getattr(exc, "args", ())
    if args and isinstance(args[0], list) and args[0] and isinstance(args[0][0], tuple):
        return "; ".join(str(e[-1]) for e in args[0])
    if args and isinstance(args[0], tuple) and len(args[0]) == 2:
        return str(args[0][1])
    return str(exc) or type(exc).__name__


def _chain_verdict(name: str, hs: _Handshake, label: str) -> Verdict:
    if not hs.errors:
        return Verdict(name, True, f"chain verified against {label}")
    errno, depth, subject = hs.errors[0]
    text = x509_error_text(errno)
    return Verdict(name, False, f"certificate verify failed: {text} (depth {depth}, {subject})")


#: How long to listen for the server's verdict on our certificate before sending the StartupMessage.
POST_HANDSHAKE_WAIT = 0.2


def _post_handshake_alert(hs: _Handshake) -> str | None:
    """In TLS 1.3 the server judges the client certificate after the handshake. Sending the
    StartupMessage first makes it reset the connection with that message unread, and the reset can
    drop its alert (measured: 'certificate expired' became ECONNRESET about 1 run in 3). So listen
    briefly first: PostgreSQL sends nothing of its own before the StartupMessage."""
    import select

    from OpenSSL import SSL

    if hs.protocol != "TLSv1.3":
        return None
    readable, _, _ = select.select([hs.sock], [], [], POST_HANDSHAKE_WAIT)
    if not readable:
        return None
    previous = hs.sock.gettimeout()
    hs.sock.settimeout(POST_HANDSHAKE_WAIT)
    try:
        hs.conn.recv(1)  # type: ignore[attr-defined]
    except (SSL.WantReadError, SSL.ZeroReturnError, TimeoutError):
        return None
    except SSL.Error as exc:
        return _ssl_text(exc)
    except OSError:
        return None
    finally:
        hs.sock.settimeout(previous)
    return None


def startup(hs: _Handshake, user: str, database: str, *, deadline: Deadline) -> Verdict:
    """StartupMessage over the TLS connection; the server's answer, its text made printable."""
    from OpenSSL import SSL

    if "\0" in user + database:
        raise InputError("--user and --database cannot contain a NUL character")

    params = b"".join(k + b"\0" + v.encode() + b"\0" for k, v in (
        (b"user", user), (b"database", database), (b"application_name", "pgkongtls probe"))) + b"\0"
    authenticated = False
    refused = _post_handshake_alert(hs)
    if refused is not None:
        return Verdict("auth", False, f"the server closed the connection: {printable(refused)}")
    try:
        hs.conn.sendall(struct.pack("!ii", len(params) + 8, PROTOCOL_3) + params)  # type: ignore[attr-defined]
        while True:
            kind, body = read_message(hs.conn, hs.sock, deadline)
            if kind == b"E":
                f = error_fields(body)
                text = f"{f.get('S', 'ERROR')}: {f.get('M', '')}"
                if authenticated:
                    return Verdict("auth", True, f"AuthenticationOk as {user!r}, then the server said {text}")
                return Verdict("auth", False, text)
            if kind == b"R":
                code = struct.unpack("!i", body[:4])[0]
                if code == 0:
                    authenticated = True
                    continue
                return Verdict("auth", None,
                               f"the server asks for {AUTH_NAMES.get(code, f'authentication method {code}')}; "
                               "probe sends no password")
            if kind == b"Z":
                hs.conn.sendall(b"X\0\0\0\4")  # type: ignore[attr-defined]
                return Verdict("auth", True, f"AuthenticationOk as {user!r} to database {database!r}")
    except Hostile as exc:
        return Verdict("auth", False, str(exc))
    except SSL.WantReadError:
        return Verdict("auth", False, deadline.startup_expired())
    except (SSL.Error, OSError) as exc:
        return Verdict("auth", False, f"the server closed the connection: {printable(_ssl_text(exc))}")
    except EOFError:
        if authenticated:
            return Verdict("auth", True, f"AuthenticationOk as {user!r}, then the server closed the connection")
        return Verdict("auth", False, "the server closed the connection without an answer")


def _close(hs: _Handshake) -> None:
    from OpenSSL import SSL

    try:
        hs.conn.shutdown()  # type: ignore[attr-defined]
    except (SSL.Error, OSError):
        pass
    hs.sock.close()


def probe(target: Target, opts: ProbeOptions) -> ProbeReport:
    """Connect as Kong would (and, with a trust file, as libpq verify-full would); report what happened."""
    deadline = Deadline(opts.timeout)
    kong = _handshake(target, opts, depth=opts.depth if opts.trusted is not None else None, sni=KONG_SENDS_SNI,
                      deadline=deadline)
    if kong is None:
        refused = "the server refused SSL (it answered N to SSLRequest): set ssl = on in postgresql.conf and reload"
        return ProbeReport(target=str(target), ssl=False, verdicts=(Verdict("ssl", False, refused),))
    verdicts: list[Verdict] = []
    try:
        if opts.trusted is not None:
            verdicts.append(_chain_verdict("kong", kong, f"{opts.trust_label} at lua_ssl_verify_depth {opts.depth}"))
        if opts.user is not None:
            verdicts.append(startup(kong, opts.user, opts.database or opts.user, deadline=deadline))
    finally:
        _close(kong)
    if opts.trusted is not None:
        libpq = _handshake(target, opts, depth=None, sni=LIBPQ_SENDS_SNI, deadline=deadline)
        if libpq is None:
            verdicts.append(Verdict("libpq", False, "the server refused SSL on the second connection"))
        else:
            _close(libpq)
            chain = _chain_verdict("libpq", libpq, opts.trust_label)
            if chain.ok and libpq.chain:
                ok, why = libpq_host_check(libpq.chain[0], target.host)
                chain = Verdict("libpq", ok, f"chain verified and host name {target.host!r} matches" if ok else why)
            verdicts.insert(1, chain)
    return ProbeReport(target=str(target), ssl=True, protocol=kong.protocol, cipher=kong.cipher,
                       presented=tuple(Presented.of(c) for c in kong.chain), verdicts=tuple(verdicts))
