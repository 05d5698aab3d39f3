"""CLI tests for the topology targets of `render`: stdout is the snippet, each mistake is one `Error:` line."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgkongtls import fsio, render
from pgkongtls import render_topology as t

from .clirun import run


@pytest.fixture
def pki(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for args in (("init", "--db-host", "db-1.internal"),
                 ("issue", "client", "--dir", "pki", "--name", "replicator", "--cn", "replicator"),
                 ("issue", "server", "--dir", "pki", "--name", "db-2", "--db-host", "db-2.internal",
                  "--db-host", "db.internal"),
                 ("issue", "server", "--dir", "pki", "--name", "pgbouncer", "--db-host", "pgbouncer.internal")):
        r = run(*args)
        assert r.exit_code == 0, r.stderr
    return tmp_path / "pki"


def test_issue_server_with_two_names_covers_both(pki: Path) -> None:
    m = fsio.load_manifest(pki)
    assert m.certificates["db-2"].sans == ("db-2.internal", "db.internal")
    assert m.certificates["db-2"].cn == "db-2.internal"


def test_render_standby_stdout_is_the_library_output(pki: Path) -> None:
    r = run("render", "standby", "--dir", "pki", "--client", "replicator", "--primary", "db-1.internal:5433",
            "--server", "db-2", "--pg-dir", "/etc/postgresql/ssl")
    assert r.exit_code == 0 and r.stderr == ""
    files = render.Files(pg_dir="/etc/postgresql/ssl", kong_dir=str(pki), server="db-2", client="replicator")
    assert r.stdout == t.render_standby(fsio.load_manifest(pki), files, client="replicator", primary="db-1.internal:5433")


def test_render_standby_needs_primary(pki: Path) -> None:
    r = run("render", "standby", "--dir", "pki", "--client", "replicator")
    assert (r.exit_code, r.stderr) == (1, "Error: render standby needs --primary HOST[:PORT] (the server to stream from)\n")


def test_render_standby_needs_an_explicit_client(pki: Path) -> None:
    r = run("render", "standby", "--dir", "pki", "--primary", "db-1.internal")
    assert (r.exit_code, r.stderr) == (
        1, "Error: render standby needs --client NAME (the replication identity, e.g. replicator)\n")


def test_render_standby_refuses_a_server_certificate_as_client(pki: Path) -> None:
    r = run("render", "standby", "--dir", "pki", "--client", "db-2", "--primary", "db-1.internal", "--server", "db-2")
    assert (r.exit_code, r.stderr) == (
        1, "Error: --client 'db-2' is not a client certificate in this PKI; pgkongtls issue client --dir PKI --name "
           "db-2 ...\n")


def test_topology_option_on_another_target_is_an_error(pki: Path) -> None:
    r = run("render", "postgres", "--dir", "pki", "--via", "pgbouncer")
    assert (r.exit_code, r.stderr) == (1, "Error: --via applies to render kong / kong-env, not postgres\n")


def test_render_pgbouncer_refuses_verify_full_auth(pki: Path) -> None:
    r = run("render", "pgbouncer", "--dir", "pki", "--server", "pgbouncer", "--auth", "verify-full")
    assert (r.exit_code, r.stderr) == (1, "Error: pgbouncer --auth 'verify-full': use cert or scram\n")


def test_render_patroni_needs_node(pki: Path) -> None:
    r = run("render", "patroni", "--dir", "pki")
    assert (r.exit_code, r.stderr) == (1, "Error: render patroni needs --node NAME (this node's server certificate)\n")


def test_render_hba_replication_unknown_identity(pki: Path) -> None:
    r = run("render", "hba", "--dir", "pki", "--replication", "standby")
    assert (r.exit_code, r.stderr) == (
        1, "Error: no client certificate for replication role 'standby'; pgkongtls issue client --dir PKI --name standby "
           "--cn standby\n")


def test_render_standby_write(pki: Path, tmp_path: Path) -> None:
    r = run("render", "standby", "--dir", "pki", "--client", "replicator", "--primary", "db-1.internal", "--server",
            "db-2", "--write", "out")
    assert r.exit_code == 0, r.stderr
    assert "primary_conninfo = " in (tmp_path / "out" / "standby.conf.snippet").read_text()
