"""Issue 11, "No traceback, ever" and the --client checks: each input that printed a traceback,
hung or rendered the wrong key now gives exactly one `Error:` line and a non-zero exit."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from click.testing import Result

from pgkongtls import pki as pki_mod
from pgkongtls.manifest import MANIFEST_NAME
from pgkongtls.pki import InitOptions, SelfCheckError, plan_init, self_check

from .clirun import run

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)



def refused(r: Result, message: str, code: int = 1) -> None:
    """Exactly one Error line on stderr, nothing on stdout, the exit code, and no traceback."""
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    assert (r.exit_code, r.stderr, r.stdout) == (code, f"Error: {message}\n", "")


@pytest.fixture
def pki(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    assert run("init", "--db-host", "db.internal").exit_code == 0
    return tmp_path / "pki"


def test_render_libpq_with_an_unknown_client_name(pki: Path) -> None:
    refused(run("render", "libpq", "--dir", "pki", "--client", "kong-node-9"),
            "--client 'kong-node-9' is not in this PKI; issue it: pgkongtls issue client --name kong-node-9")


def test_render_libpq_refuses_the_server_key(pki: Path) -> None:
    refused(run("render", "libpq", "--dir", "pki", "--client", "server"),
            "--client 'server' is a server certificate; pass the name of a client certificate")


def test_render_kong_refuses_a_revoked_client(pki: Path) -> None:
    assert run("issue", "client", "--dir", "pki", "--name", "n1").exit_code == 0
    assert run("revoke", "n1", "--dir", "pki").exit_code == 0
    day = json.loads((pki / MANIFEST_NAME).read_text())["certificates"]["n1"]["revoked"][:10]
    refused(run("render", "kong", "--dir", "pki", "--client", "n1"),
            f"--client 'n1' was revoked on {day}; issue a new one: pgkongtls issue client --name n1 --force")


def test_render_kong_refuses_an_archived_client(pki: Path) -> None:
    assert run("issue", "client", "--dir", "pki", "--name", "n1").exit_code == 0
    assert run("revoke", "n1", "--dir", "pki").exit_code == 0
    assert run("issue", "client", "--dir", "pki", "--name", "n1", "--force").exit_code == 0
    archived = next(n for n in json.loads((pki / MANIFEST_NAME).read_text())["certificates"] if "@" in n)
    refused(run("render", "kong", "--dir", "pki", "--client", archived),
            f"--client {archived!r} is a superseded certificate kept for the CRL; pass --client n1")
    assert run("render", "kong", "--dir", "pki", "--client", "n1").exit_code == 0  # the new one renders


@pytest.mark.parametrize("target", ["libpq", "all"])
def test_a_manifest_with_no_hosts(pki: Path, target: str) -> None:
    data = json.loads((pki / MANIFEST_NAME).read_text())
    data["hosts"] = []
    (pki / MANIFEST_NAME).write_text(json.dumps(data))
    refused(run("render", target, "--dir", "pki", "--write", "out"),
            f"{MANIFEST_NAME}: manifest.hosts is empty; it needs the database host names from init --db-host")
    assert not Path("out").exists()


def test_probe_an_empty_dns_label() -> None:
    refused(run("probe", "db..internal"),
            "invalid host name 'db..internal': an empty or too long label, or a character DNS does not allow; "
            "use a name such as db.internal or an IP address")


@pytest.mark.parametrize(("value", "shown"), [("nan", "nan"), ("inf", "inf"), ("1e300", "1e+300")])
def test_probe_timeout_that_is_not_a_usable_number(value: str, shown: str) -> None:
    """Found beyond the issue's list: click's FloatRange(min=0.1) lets NaN and infinity through."""
    refused(run("probe", "127.0.0.1:1", "--timeout", value), f"--timeout must be 0.1 to 86400 seconds, got {shown}")


def test_init_root_cn_over_64_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cn = "é" * 33  # 33 characters, 66 bytes: cryptography's 64 counts bytes
    refused(run("init", "--root-cn", cn),
            f"common name {cn!r} is 66 bytes in UTF-8; it must be 1 to 64 bytes (64 ASCII characters, fewer for accented ones)")
    assert list(tmp_path.iterdir()) == []


def test_a_non_utf8_argument(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    arg = os.fsdecode(b"\xff")  # what Python makes of `--db-user $'\xff'` (surrogateescape)
    refused(run("init", "--db-user", arg), "argument '\\xff' is not valid UTF-8; pass UTF-8 text", code=2)
    assert list(tmp_path.iterdir()) == []


def test_a_nul_in_an_argument(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by tests/test_cli_fuzz.py: no shell can pass one, but a caller of main() can."""
    monkeypatch.chdir(tmp_path)
    refused(run("status", "--dir", "a\0b"), "argument 'a\\x00b' contains a NUL character", code=2)


def test_an_error_line_stays_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by tests/test_cli_fuzz.py: a newline in a path split the Error line in two."""
    monkeypatch.chdir(tmp_path)
    refused(run("status", "--dir", "a\nb"),
            "a\\nb does not exist; create a PKI with pgkongtls init --out a\\nb")


@pytest.mark.parametrize("kind", ["dev-zero", "fifo"])
def test_verify_refuses_a_key_that_is_not_a_regular_file(pki: Path, kind: str) -> None:
    (pki / "server.key").unlink()
    if kind == "fifo":
        os.mkfifo(pki / "server.key")  # reading it hung
        what = "a FIFO"
    else:
        (pki / "server.key").symlink_to("/dev/zero")  # reading it ate all memory
        what = "a character device"
    done: list[Result] = []
    worker = threading.Thread(target=lambda: done.append(run("verify", "pki")), daemon=True)
    worker.start()
    worker.join(30)
    if not done and kind == "fifo":
        with open(pki / "server.key", "wb"):  # unblock the old code's read so the thread ends
            pass
    assert done, "verify hung"
    refused(done[0], f"pki/server.key is {what}, not a regular file; point at the file itself")


def test_ctrl_c_during_the_self_check_is_not_a_bug(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(**_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(pki_mod, "self_check", interrupted)
    refused(run("init", "--out", "pki"), "interrupted (Ctrl-C); nothing was changed", code=130)
    assert list(tmp_path.iterdir()) == []


def test_sigint_inside_the_verifier_is_an_interrupt_not_a_failed_self_check() -> None:
    """A real SIGINT while cryptography's verifier runs: it used to surface as 'signature does not match'.

    Library test: the signal arrives from another thread at a random point of a busy loop of
    self-checks, most of whose time is spent inside the verifier (3 of 4 runs hit it on the old code).
    """
    fs = plan_init(InitOptions(db_user="kong"), now=NOW)
    from cryptography import x509

    root = x509.load_pem_x509_certificate(fs.files["root.crt"])
    inter = x509.load_pem_x509_certificate(fs.files["intermediate.crt"])
    server = x509.load_pem_x509_certificates(fs.files["server.crt"])[0]
    client = x509.load_pem_x509_certificates(fs.files["client.crt"])[0]
    outcomes: list[str] = []
    for attempt in range(8):
        timer = threading.Timer(0.02 + attempt * 0.013, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        end = time.monotonic() + 5
        try:
            while time.monotonic() < end:
                self_check(anchors=[root], intermediates=[inter], server=server, client=client,
                           host="localhost", now=NOW)
            outcomes.append("no signal")
        except KeyboardInterrupt:
            outcomes.append("interrupt")
        except SelfCheckError as exc:
            outcomes.append(f"self-check error: {exc}")
        finally:
            timer.cancel()
    assert outcomes == ["interrupt"] * 8
