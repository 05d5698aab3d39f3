"""`init --eku` and `issue server --eku` through the CLI: exact errors, the why-comment, nothing written on refusal."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from .clirun import ok, run
from .test_fsio import snapshot

WHY = ("Warning: the server certificate for {host} also carries clientAuth (--eku server,client), for charts whose "
       "probes present it as a client certificate (Bitnami); PostgreSQL accepts it as a client too, so map its CN "
       "to no role it should not have\n")


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def client_auth(path: Path) -> bool:
    cert = x509.load_pem_x509_certificates(path.read_bytes())[0]
    return ExtendedKeyUsageOID.CLIENT_AUTH in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value


def test_init_eku_server_client_says_why_on_stderr(tmp_path: Path) -> None:
    r = ok("init", "--out", "pki", "--db-host", "pg.db.svc", "--eku", "server,client")
    assert r.stderr.startswith(WHY.format(host="pg.db.svc"))
    assert r.stdout == ""
    assert client_auth(tmp_path / "pki" / "server.crt")


def test_init_default_is_server_only_and_silent_about_it(tmp_path: Path) -> None:
    r = ok("init", "--out", "pki")
    assert "clientAuth" not in r.stderr
    assert not client_auth(tmp_path / "pki" / "server.crt")


def test_issue_server_eku_server_client(tmp_path: Path) -> None:
    ok("init", "--out", "pki")
    r = ok("issue", "server", "--dir", "pki", "--name", "pg-bitnami", "--db-host", "pg.db.svc", "--eku", "server,client")
    assert r.stderr.startswith(WHY.format(host="pg.db.svc"))
    assert client_auth(tmp_path / "pki" / "pg-bitnami.crt")


@pytest.mark.parametrize("command", [["init", "--out", "pki"], ["issue", "server", "--dir", "pki", "--name", "x",
                                                                 "--db-host", "x.internal"]])
def test_unknown_eku_is_a_usage_error_and_writes_nothing(tmp_path: Path, command: list[str]) -> None:
    if command[0] == "issue":
        ok("init", "--out", "pki")
    before = snapshot(tmp_path)
    r = run(*command, "--eku", "client")
    assert r.exit_code == 2
    where = "issue server" if command[0] == "issue" else "init"
    assert r.stderr.splitlines()[-1] == (f"Error: Invalid value for '--eku': 'client' is not one of 'server', "
                                         f"'server,client'. See 'pgkongtls {where} --help'.")
    assert snapshot(tmp_path) == before
