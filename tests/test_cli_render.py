"""CLI tests for `render`: stdout carries the snippet alone, errors are one line, nothing overwritten."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgkongtls import fsio, render
from pgkongtls.cli_render import RENDER_TARGETS

from .clirun import run


@pytest.fixture
def pki(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    assert run("init", "--db-host", "db.internal").exit_code == 0
    return tmp_path / "pki"


def test_render_kong_stdout_is_the_snippet_alone(pki: Path) -> None:
    r = run("render", "kong", "--dir", "pki", "--kong-dir", "/etc/kong/ssl")
    assert r.exit_code == 0 and r.stderr == ""
    m = fsio.load_manifest(pki)
    assert r.stdout == render.render_kong(m, render.Files(pg_dir=str(pki), kong_dir="/etc/kong/ssl"))


def test_render_postgres_never_defaults_to_the_pki_dir(pki: Path) -> None:
    """The PKI directory is 0700 root with the CA keys: PostgreSQL cannot, and must not, read it."""
    r = run("render", "postgres", "--dir", "pki")
    assert r.exit_code == 0
    assert "ssl_cert_file = '/etc/postgresql/pgkongtls/server.crt'\n" in r.stdout and str(pki) not in r.stdout


def test_render_hba_oss_defaults_to_scram(pki: Path) -> None:
    r = run("render", "hba", "--dir", "pki", "--edition", "oss")
    assert r.exit_code == 0
    assert "hostssl all kong all scram-sha-256\n" in r.stdout


def test_render_mismatched_options_one_line(pki: Path) -> None:
    r = run("render", "hba", "--dir", "pki", "--auth", "cert", "--edition", "oss")
    assert r.exit_code == 1
    assert r.stderr == ("Error: --auth cert needs a client certificate, which open-source Kong cannot send; "
                        "use --auth scram\n")
    assert r.stdout == ""


def test_render_missing_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    r = run("render", "kong", "--dir", "nope")
    assert r.exit_code == 1
    assert r.stderr == "Error: nope does not exist; create a PKI with pgkongtls init --out nope\n"


def test_render_dir_without_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "certs").mkdir()
    r = run("render", "postgres", "--dir", "certs")
    assert r.exit_code == 1
    assert r.stderr == "Error: certs is not a pgkongtls PKI (no pgkongtls.json); create one with pgkongtls init\n"


def test_render_unknown_target(pki: Path) -> None:
    r = run("render", "nginx", "--dir", "pki")
    assert r.exit_code == 2
    targets = ("postgres", "hba", "ident", "kong", "kong-env", "libpq", "jdbc", "kubernetes", "all",
               "standby", "pgbouncer", "patroni")
    assert RENDER_TARGETS == targets  # a new target is a user-visible change: say so here
    assert r.stderr == (f"Error: Invalid value for 'TARGET': 'nginx' is not one of "
                        f"{', '.join(repr(t) for t in targets)}. See 'pgkongtls render --help'.\n")


def test_render_all_needs_write(pki: Path) -> None:
    r = run("render", "all", "--dir", "pki")
    assert r.exit_code == 1
    assert r.stderr == "Error: render all writes one file per snippet; pass --write DIR\n"


def test_render_all_write_and_no_overwrite(pki: Path, tmp_path: Path) -> None:
    r = run("render", "all", "--dir", "pki", "--write", "out")
    assert r.exit_code == 0 and r.stdout == ""
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["kong.conf.snippet", "kong.env", "libpq.conninfo", "pg_hba.conf.snippet", "postgresql.conf.snippet"]
    (tmp_path / "out" / "kong.env").write_text("edited")
    r2 = run("render", "all", "--dir", "pki", "--write", "out", "--edition", "oss")
    assert r2.exit_code == 1
    assert r2.stderr == "Error: out/kong.conf.snippet exists; pass --force to replace it\n"
    assert (tmp_path / "out" / "kong.env").read_text() == "edited"
    assert run("render", "all", "--dir", "pki", "--write", "out", "--force").exit_code == 0
    assert (tmp_path / "out" / "kong.env").read_text().startswith("# Kong environment")


def test_render_unknown_server_name(pki: Path) -> None:
    r = run("render", "postgres", "--dir", "pki", "--server", "replica-9")
    assert r.exit_code == 1
    assert r.stderr == "Error: 'replica-9' is not a server certificate in this PKI\n"


def test_render_kong_derives_pg_ssl_version_from_min_tls(pki: Path) -> None:
    r = run("render", "kong", "--dir", "pki", "--min-tls", "TLSv1.3")
    assert r.exit_code == 0
    assert "\npg_ssl_version = tlsv1_3\n" in r.stdout


def test_render_kong_refuses_pg_ssl_version_below_min_tls(pki: Path) -> None:
    r = run("render", "all", "--dir", "pki", "--min-tls", "TLSv1.3", "--pg-ssl-version", "tlsv1_2", "--write", "out")
    assert r.exit_code == 1 and r.stdout == ""
    assert r.stderr == ("Error: --pg-ssl-version tlsv1_2 is below --min-tls TLSv1.3: Kong Enterprise would not start "
                        "(its start-up connection speaks only TLSv1.2); use tlsv1_3 or any\n")
    assert not (pki.parent / "out").exists()


def test_render_kong_os_user_names_the_key_owner(pki: Path) -> None:
    r = run("render", "kong", "--dir", "pki", "--kong-dir", "/etc/kong/ssl", "--kong-os-user", "gateway")
    assert r.exit_code == 0
    assert "#   chown gateway:gateway /etc/kong/ssl/client.key && chmod 0600 /etc/kong/ssl/client.key\n" in r.stdout


def test_render_postgres_modern_refuses_a_365_day_server_leaf(pki: Path) -> None:
    r = run("render", "postgres", "--dir", "pki", "--tls-profile", "modern")
    assert r.exit_code == 1
    assert r.stderr == ("Error: --tls-profile modern allows a server certificate of at most 90 days and server.crt "
                        "lasts 365; re-issue it with --days 90\n")


def test_render_postgres_modern_on_ecdsa_90_days(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert run("init", "--db-host", "db.internal", "--days", "90", "--out", "p90").exit_code == 0
    r = run("render", "postgres", "--dir", "p90", "--tls-profile", "modern")
    assert r.exit_code == 0, r.stderr
    assert "ssl_min_protocol_version = 'TLSv1.3'\n" in r.stdout and "\nssl_ciphers" not in r.stdout


def test_render_hba_enterprise_scram_warns_on_stderr(pki: Path) -> None:
    r = run("render", "hba", "--dir", "pki", "--auth", "scram")
    assert r.exit_code == 0
    assert r.stderr == ("warning: Kong Enterprise with --auth scram: pgmoon 2.3.3.0 breaks every new connection in a "
                        "worker after its first SCRAM-SHA-256-PLUS login (2.3.2.0, pinned by Kong Enterprise 3.10, is "
                        "not verified); use --auth cert\n")
    assert "hostssl all kong all scram-sha-256 clientcert=verify-full\n" in r.stdout
    assert run("render", "hba", "--dir", "pki", "--auth", "scram", "--edition", "oss").stderr == ""
