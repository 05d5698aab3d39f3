"""CLI tests for renders that stay true to the deployment: recorded paths, render all, hosts, addresses."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from pgkongtls import fsio, ops
from pgkongtls.lifecycle import LeafRequest
from pgkongtls.manifest import MANIFEST_NAME
from pgkongtls.pki import InitOptions

from .clirun import ok, run

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.timezone.utc)




@pytest.fixture(autouse=True)
def pki(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    ops.init(tmp_path / "pki", InitOptions(hosts=("db.internal", "10.0.0.5")), now=NOW)
    ops.issue(tmp_path / "pki", [LeafRequest(role="server", name="replica-1", cn=None, hosts=("replica1.internal",))], now=NOW)
    return tmp_path / "pki"


def test_bundle_records_its_ssl_dir_and_render_uses_it(pki: Path) -> None:
    ok("bundle", "postgres", "--dir", "pki", "--out", "db", "--ssl-dir", "/srv/pg/tls")
    ok("bundle", "kong", "--dir", "pki", "--out", "kb", "--ssl-dir", "/srv/kong/tls")
    assert fsio.load_manifest(pki).deploy == {"postgres": "/srv/pg/tls", "kong": "/srv/kong/tls"}
    assert "ssl_cert_file = '/srv/pg/tls/server.crt'\n" in ok("render", "postgres", "--dir", "pki").stdout
    assert "pg_ssl_cert = /srv/kong/tls/client.crt\n" in ok("render", "kong", "--dir", "pki").stdout
    again = ok("bundle", "postgres", "--dir", "pki", "--out", "db2")  # no --ssl-dir: the recorded one
    assert "/srv/pg/tls/server.key" in again.stderr


def test_deploy_paths_sets_and_prints_the_paths(pki: Path) -> None:
    before = (pki / MANIFEST_NAME).read_bytes()
    assert ok("deploy-paths", "--dir", "pki").stdout == ("postgres /etc/postgresql/pgkongtls (default)\n"
                                                        "kong /etc/kong/pgkongtls (default)\n")
    assert (pki / MANIFEST_NAME).read_bytes() == before
    ok("deploy-paths", "--dir", "pki", "--postgres", "/var/lib/pg/tls/", "--pg-conf-dir", "/etc/postgresql/15/main")
    assert ok("deploy-paths", "--dir", "pki").stdout == ("postgres /var/lib/pg/tls\nkong /etc/kong/pgkongtls (default)\n"
                                                        "postgres-conf /etc/postgresql/15/main\n")
    r = run("deploy-paths", "--dir", "pki", "--kong", "relative")
    assert r.exit_code == 1 and r.stderr == "Error: --ssl-dir 'relative' must be an absolute directory other than /\n"


def test_render_all_passes_every_option_of_the_single_targets(pki: Path) -> None:
    ok("render", "all", "--dir", "pki", "--write", "out", "--allow-plaintext", "--user", "gw", "--database", "kongdb",
       "--address", "10.0.0.0/8", "--host", "10.0.0.5")
    hba = (Path("out") / "pg_hba.conf.snippet").read_text()
    assert "hostssl kongdb gw 10.0.0.0/8 cert map=pgkongtls\n" in hba and "hostnossl" not in hba
    assert "pgkongtls kong gw\n" in (Path("out") / "pg_ident.conf.snippet").read_text()
    libpq = (Path("out") / "libpq.conninfo").read_text()
    assert "host=10.0.0.5 user=gw " in libpq


@pytest.mark.parametrize(("address", "error"), [
    ("10.0.0.0/33", "--address '10.0.0.0/33' is not a valid CIDR range (PostgreSQL rejects it); use e.g. 10.0.0.0/8 "
                    "or 2001:db8::/32"),
    ("[::1]", "--address '[::1]': pg_hba.conf takes an IPv6 address without brackets, e.g. ::1/128"),
    ("a b", "--address 'a b' is neither all, samehost, samenet, a CIDR range nor a host name"),
])
def test_render_hba_refuses_addresses_postgres_would_misread(address: str, error: str) -> None:
    r = run("render", "hba", "--dir", "pki", "--address", address)
    assert r.exit_code == 1 and r.stderr == f"Error: {error}\n"


@pytest.mark.parametrize(("address", "column"), [("10.0.0.5", "10.0.0.5/32"), ("::1", "::1/128"),
                                                 ("samenet", "samenet"), (".internal", ".internal"),
                                                 ("fd00::/8", "fd00::/8")])
def test_render_hba_accepts_what_postgres_reads(address: str, column: str) -> None:
    assert f"hostssl all kong {column} cert\n" in ok("render", "hba", "--dir", "pki", "--address", address).stdout


def test_render_libpq_for_a_replica_uses_its_own_host_and_refuses_others(pki: Path) -> None:
    out = ok("render", "libpq", "--dir", "pki", "--server", "replica-1").stdout
    assert "host=replica1.internal " in out
    assert "host=REPLICA1.internal " in ok("render", "libpq", "--dir", "pki", "--server", "replica-1",
                                           "--host", "REPLICA1.internal").stdout
    r = run("render", "libpq", "--dir", "pki", "--server", "replica-1", "--host", "db.internal")
    assert r.exit_code == 1
    assert r.stderr == ("Error: --host 'db.internal' is not in the certificate of 'replica-1' (replica1.internal): "
                        "libpq verify-full would refuse it; use one of those, or issue server --name NAME "
                        "--db-host db.internal\n")
    assert "host=10.0.0.5 " in ok("render", "libpq", "--dir", "pki", "--host", "10.0.0.5").stdout


def test_render_kong_connection_is_a_whole_database_section(pki: Path) -> None:
    out = ok("render", "kong", "--dir", "pki", "--connection", "--ro-server", "replica-1", "--port", "6432").stdout
    assert out.endswith("pg_host = db.internal\npg_port = 6432\npg_user = kong\npg_database = kong\n")
    assert "pg_ro_host = replica1.internal\n" in out  # --ro-server (render kong's read replica) adds it
    assert "pg_host" not in ok("render", "kong", "--dir", "pki").stdout
    r = run("render", "kong", "--dir", "pki", "--connection", "--server", "client")
    assert r.exit_code == 1 and r.stderr.startswith("Error: 'client' is not a server certificate in this PKI")
