"""`probe` against a small hostile fake server on loopback: nothing the server sends reaches the
terminal or the JSON raw, one --timeout bounds the whole probe, and broken messages are a FAIL line.

The fake server speaks just enough of the protocol (SSLRequest -> 'S', TLS, read the
StartupMessage) and then plays one scenario; every scenario ends by itself within 15 s.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pgkongtls.cli import main

ANSI_CN = "db\x1b[2K\x1b[32m ok"
#: What the server said to make `FAIL auth` look like a green PASS on a terminal.
FAKE_PASS = "x\r\x1b[2K\x1b[32mPASS\x1b[0m auth: AuthenticationOk"
SCENARIO_BOUND = 15.0


def message(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


def _cert(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ANSI_CN)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    crt, pem = tmp / "evil.crt", tmp / "evil.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    return crt, pem


Scenario = Callable[[ssl.SSLSocket], None]


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[Callable[[Scenario], int]]:
    """Start a fake server playing `scenario` on each connection; returns its port."""
    crt, key = _cert(tmp_path)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def serve_one(conn: socket.socket, scenario: Scenario) -> None:
        conn.settimeout(SCENARIO_BOUND)
        try:
            if conn.recv(8) != struct.pack("!ii", 8, 80877103):
                return
            conn.sendall(b"S")
            with ctx.wrap_socket(conn, server_side=True) as tls:
                (length,) = struct.unpack("!i", tls.recv(4))
                tls.recv(length - 4)  # the StartupMessage
                scenario(tls)
        except (OSError, ssl.SSLError, struct.error):
            pass
        finally:
            conn.close()

    def start(scenario: Scenario) -> int:
        def accept() -> None:
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                t = threading.Thread(target=serve_one, args=(conn, scenario), daemon=True)
                t.start()
                threads.append(t)

        t = threading.Thread(target=accept, daemon=True)
        t.start()
        threads.append(t)
        return int(listener.getsockname()[1])

    yield start
    stop.set()
    for t in threads:
        t.join(SCENARIO_BOUND + 5)
    listener.close()


def probe(port: int, *extra: str) -> tuple[Result, float]:
    started = time.monotonic()
    r = CliRunner(env={"COLUMNS": "400"}).invoke(main, ["probe", f"127.0.0.1:{port}", "--user", "kong", *extra],
                                                 prog_name="pgkongtls")
    return r, time.monotonic() - started


def no_control_characters(text: str) -> bool:
    return not any(ord(c) < 0x20 and c != "\n" or 0x7F <= ord(c) <= 0x9F for c in text)


def verdict_lines(r: Result) -> list[str]:
    return [line for line in r.stderr.splitlines() if line.split(" ", 1)[0] in ("PASS", "FAIL", "NOTE")]


def test_server_error_text_cannot_fake_a_pass(hostile: Callable[[Scenario], int]) -> None:
    port = hostile(lambda tls: tls.sendall(message(b"E", b"SFATAL\0M" + FAKE_PASS.encode() + b"\0\0")))
    r, _ = probe(port)
    assert r.exit_code == 1
    assert no_control_characters(r.stderr)
    assert verdict_lines(r) == ["FAIL auth: FATAL: x\\r\\x1b[2K\\x1b[32mPASS\\x1b[0m auth: AuthenticationOk"]


def test_json_carries_no_raw_control_characters(hostile: Callable[[Scenario], int]) -> None:
    port = hostile(lambda tls: tls.sendall(message(b"E", b"SFATAL\0M" + FAKE_PASS.encode() + b"\0\0")))
    r, _ = probe(port, "--json")
    assert r.exit_code == 1
    report = json.loads(r.stdout)
    assert report["presented"][0]["subject"] == "CN=db\\x1b[2K\\x1b[32m ok"
    assert report["verdicts"][0]["detail"] == "FATAL: x\\r\\x1b[2K\\x1b[32mPASS\\x1b[0m auth: AuthenticationOk"
    assert no_control_characters(json.dumps(report, ensure_ascii=False))


def test_certificate_subject_reaches_the_terminal_escaped(hostile: Callable[[Scenario], int]) -> None:
    port = hostile(lambda tls: tls.sendall(message(b"E", b"SFATAL\0Mno\0\0")))
    r, _ = probe(port)
    assert "\x1b" not in r.stderr
    assert "CN=db\\x1b[2K\\x1b[32m ok" in r.stderr  # COLUMNS=400: the table cell is not folded


def test_an_authentication_message_of_length_4(hostile: Callable[[Scenario], int]) -> None:
    port = hostile(lambda tls: tls.sendall(b"R" + struct.pack("!i", 4)))
    r, _ = probe(port)
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert r.exit_code == 1
    assert verdict_lines(r) == [
        "FAIL auth: the server sent an authentication message without a code; it is not a PostgreSQL server"]


def test_a_message_longer_than_postgresql_sends(hostile: Callable[[Scenario], int]) -> None:
    def huge(tls: ssl.SSLSocket) -> None:
        tls.sendall(b"S" + struct.pack("!i", 0x7FFFFFFF))
        time.sleep(3)

    r, _ = probe(hostile(huge))
    assert r.exit_code == 1
    assert verdict_lines(r) == ["FAIL auth: the server sent a 'S' message of length 2147483647 "
                                "(PostgreSQL's are 4 to 30000); it is not a PostgreSQL server"]


def test_parameter_status_forever_ends_within_the_timeout(hostile: Callable[[Scenario], int]) -> None:
    def forever(tls: ssl.SSLSocket) -> None:
        end = time.monotonic() + SCENARIO_BOUND
        while time.monotonic() < end:  # one ParameterStatus every 10 ms, never ReadyForQuery
            tls.sendall(message(b"S", b"application_name\0pgkongtls probe\0"))
            time.sleep(0.01)

    r, took = probe(hostile(forever), "--timeout", "1")
    assert r.exit_code == 1
    assert verdict_lines(r) == ["FAIL auth: the server did not finish the StartupMessage exchange within --timeout 1 s"]
    assert took < SCENARIO_BOUND / 2  # the old code waited for the server to stop (15 s here, forever in the issue)
