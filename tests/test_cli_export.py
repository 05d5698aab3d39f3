"""export and render jdbc / libpq --url (CLI): exact errors, modes, and nothing written on failure."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from pgkongtls.cli import main


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("x") / "pki"
    res = CliRunner().invoke(main, ["init", "--out", str(out), "--db-host", "db.internal", "--db-host", "::1"])
    assert res.exit_code == 0, res.output
    return out


def run(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(main, list(args))
    return res.exit_code, res.stdout, res.stderr


def test_export_writes_0600_and_refuses_to_replace(pki: Path, tmp_path: Path) -> None:
    out = tmp_path / "client.pk8"
    assert run("export", "--dir", str(pki), "client", "--format", "pk8", "--out", str(out)) == (
        0, "", f"wrote {out} (pk8, 0600)\n")
    assert os.stat(out).st_mode & 0o777 == 0o600
    before = out.read_bytes()
    assert run("export", "--dir", str(pki), "client", "--format", "pk8", "--out", str(out)) == (
        1, "", f"Error: {out} exists; pass --force to replace it\n")
    assert out.read_bytes() == before


@pytest.mark.parametrize(("args", "error"), [
    (["nope", "--format", "pk8"], "Error: {pki} has no certificate named 'nope'; see pgkongtls status --dir {pki}"),
    (["root", "--format", "pk8"], "Error: root is a CA: export takes a client or server name; CA keys never leave the PKI"),
    (["client", "--format", "p12"],
     "Error: --format p12 needs --password-file: PKCS#12 is always encrypted, and pgjdbc takes the password as sslpassword="),
])
def test_export_errors(pki: Path, tmp_path: Path, args: list[str], error: str) -> None:
    out = tmp_path / "k"
    assert run("export", "--dir", str(pki), *args, "--out", str(out)) == (1, "", error.format(pki=pki) + "\n")
    assert not out.exists()


def test_render_jdbc_names_the_pk8_and_the_export_command(pki: Path) -> None:
    code, out, _ = run("render", "jdbc", "--dir", str(pki), "--kong-dir", "/etc/app/ssl", "--port", "6432")
    assert code == 0
    assert out.splitlines()[-1] == ("jdbc:postgresql://db.internal:6432/kong?user=kong&sslmode=verify-full"
                                    "&sslrootcert=/etc/app/ssl/chain.crt&sslcert=/etc/app/ssl/client.crt"
                                    "&sslkey=/etc/app/ssl/client.pk8")
    assert f"# pgjdbc cannot read PEM keys: pgkongtls export --dir {pki} client --format pk8 --out client.pk8" in out


def test_render_libpq_url_quotes_paths_and_leaves_out_the_default_port(pki: Path) -> None:
    code, out, _ = run("render", "libpq", "--url", "--dir", str(pki), "--kong-dir", "/etc/my app", "--host", "::1")
    assert code == 0
    assert out.splitlines()[-1] == ("postgresql://kong@[::1]/kong?sslmode=verify-full&sslrootcert=/etc/my%20app/chain.crt"
                                    "&sslcert=/etc/my%20app/client.crt&sslkey=/etc/my%20app/client.key")


@pytest.mark.parametrize(("args", "error"), [
    (["--client", "server"], "Error: --client 'server' is a server certificate; pass the name of a client certificate"),
    (["--host", "db.elsewhere"], "Error: --host 'db.elsewhere' is not in the certificate of 'server' (db.internal, ::1): "
                                 "libpq verify-full would refuse it; use one of those, or issue server --name NAME "
                                 "--db-host db.elsewhere"),
])
def test_render_jdbc_errors(pki: Path, args: list[str], error: str) -> None:
    assert run("render", "jdbc", "--dir", str(pki), *args) == (1, "", error + "\n")


def test_render_kubernetes_needs_for(pki: Path) -> None:
    assert run("render", "kubernetes", "--dir", str(pki)) == (
        1, "", "Error: render kubernetes needs --for, one of kong-helm, cloudnativepg, zalando, bitnami, cert-manager\n")


def test_render_kubernetes_refuses_a_bad_object_name(pki: Path) -> None:
    assert run("render", "kubernetes", "--dir", str(pki), "--for", "zalando", "--name", "Bad_Name") == (
        1, "", "Error: --name 'Bad_Name-tls' is not a Kubernetes name (lower-case letters, digits and '-', at most 63)\n")


def test_render_kubernetes_prints_no_key_unless_asked(pki: Path) -> None:
    code, out, _ = run("render", "kubernetes", "--dir", str(pki), "--for", "bitnami")
    assert code == 0 and "# tls.key left out: rerun with --with-keys to include it" in out
    assert "tls.key:" not in out
    code, out, _ = run("render", "kubernetes", "--dir", str(pki), "--for", "bitnami", "--with-keys")
    assert code == 0 and "tls.key:" in out
