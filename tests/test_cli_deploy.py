"""CLI tests for `bundle postgres|kong` and `install`: exit codes, exact errors, nothing changed on failure."""

from __future__ import annotations

import datetime as dt
import json
import os
import pwd
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgkongtls import ops
from pgkongtls.pki import InitOptions

from .clirun import ok, run
from .test_fsio import snapshot

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.timezone.utc)
HBA = "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n"




@pytest.fixture(autouse=True)
def in_tmp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Our own 0755 directory: pytest's is 0700, which the postgres user could not enter (install checks)."""
    tmp_path = Path(tempfile.mkdtemp(prefix="pgkongtls-deploy-"))
    os.chmod(tmp_path, 0o755)
    monkeypatch.chdir(tmp_path)
    ops.init(tmp_path / "pki", InitOptions(hosts=("db.internal",)), now=NOW)
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "postgresql.conf").write_text("ssl = off\n")
    (conf / "pg_hba.conf").write_text(HBA)
    (conf / "pg_ident.conf").write_text("# MAPNAME SYSTEM PG\n")
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.fixture
def pg_bundle(in_tmp: Path) -> Path:
    ok("bundle", "postgres", "--dir", "pki", "--out", "db", "--ssl-dir", str(in_tmp / "ssl"))
    return in_tmp / "db"


def test_bundle_is_a_0700_directory_with_a_0600_key_and_no_ca_key(pg_bundle: Path) -> None:
    assert stat.S_IMODE(pg_bundle.stat().st_mode) == 0o700
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in pg_bundle.iterdir()}
    assert modes == {"server.crt": 0o644, "server.key": 0o600, "chain.crt": 0o644, "pgkongtls.conf": 0o644,
                     "pg_hba.conf.snippet": 0o644, "pg_ident.conf.snippet": 0o644, "bundle.json": 0o644}
    desc = json.loads((pg_bundle / "bundle.json").read_text())
    assert [(f["file"], f["owner"], f["mode"]) for f in desc["files"]][:3] == [
        ("server.crt", "root", "0644"), ("server.key", "postgres", "0600"), ("chain.crt", "root", "0644")]


def test_bundle_refuses_an_existing_directory_it_did_not_write(in_tmp: Path) -> None:
    (in_tmp / "taken").mkdir()
    r = run("bundle", "kong", "--dir", "pki", "--out", "taken")
    assert r.exit_code == 1 and r.stderr == "Error: taken exists and is not a bundle; choose another --out\n"
    ok("bundle", "kong", "--dir", "pki", "--out", "kb")
    r = run("bundle", "kong", "--dir", "pki", "--out", "kb")
    assert r.exit_code == 1 and r.stderr == "Error: kb exists; pass --force to replace the bundle there\n"
    ok("bundle", "kong", "--dir", "pki", "--out", "kb", "--force")


def test_bundle_tar_is_0600_and_refuses_to_replace(in_tmp: Path) -> None:
    ok("bundle", "kong", "--dir", "pki", "--out", "kb", "--tar", "kb.tar")
    assert stat.S_IMODE((in_tmp / "kb.tar").stat().st_mode) == 0o600
    r = run("bundle", "kong", "--dir", "pki", "--out", "kb2", "--tar", "kb.tar")
    assert r.exit_code == 1 and r.stderr == "Error: kb.tar exists; remove it or choose another --tar\n"
    assert not (in_tmp / "kb2").exists()


def test_dry_run_prints_the_diff_and_changes_nothing(in_tmp: Path, pg_bundle: Path) -> None:
    before = snapshot(in_tmp)
    r = ok("install", "db", "--pg-conf-dir", "conf", "--dry-run")
    assert snapshot(in_tmp) == before
    assert f"+++ {in_tmp}/conf/pg_hba.conf\n@@ -1,2 +1,12 @@\n+# BEGIN pgkongtls pg_hba.conf" in r.stdout
    assert f"+++ {in_tmp}/ssl/server.key\n@@ private key (" in r.stdout
    assert "PRIVATE KEY" not in r.stdout


def test_install_twice_is_byte_identical_with_postgres_owning_its_key(in_tmp: Path, pg_bundle: Path) -> None:
    ok("install", "db", "--pg-conf-dir", "conf")
    once = snapshot(in_tmp)
    key = (in_tmp / "ssl" / "server.key").stat()
    assert (key.st_uid, stat.S_IMODE(key.st_mode)) == (pwd.getpwnam("postgres").pw_uid, 0o600)
    r = ok("install", "db", "--pg-conf-dir", "conf")
    assert "nothing to change: already installed" in r.stderr and snapshot(in_tmp) == once
    hba = (in_tmp / "conf" / "pg_hba.conf").read_text()
    assert hba.count("# BEGIN pgkongtls pg_hba.conf") == 1 and hba.endswith(HBA)


def test_key_group_makes_the_key_root_postgres_0640(in_tmp: Path, pg_bundle: Path) -> None:
    ok("install", "db", "--pg-conf-dir", "conf", "--key-group")
    key = (in_tmp / "ssl" / "server.key").stat()
    assert (key.st_uid, key.st_gid, stat.S_IMODE(key.st_mode)) == (0, pwd.getpwnam("postgres").pw_gid, 0o640)


def test_an_injected_failure_leaves_every_file_as_it_was(in_tmp: Path, pg_bundle: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    before = snapshot(in_tmp)
    monkeypatch.setenv("PGKONGTLS_TEST_FAIL_AT", "install:pg_hba.conf")
    r = run("install", "db", "--pg-conf-dir", "conf")
    assert r.exit_code == 1 and r.stderr == "Error: injected failure at install:pg_hba.conf\n"
    assert snapshot(in_tmp) == before and not (in_tmp / "ssl").exists()


def test_install_never_replaces_a_file_it_did_not_write(in_tmp: Path, pg_bundle: Path) -> None:
    (in_tmp / "ssl").mkdir()
    (in_tmp / "ssl" / "server.crt").write_text("someone else's\n")
    before = snapshot(in_tmp)
    r = run("install", "db", "--pg-conf-dir", "conf")
    assert r.exit_code == 1
    assert r.stderr == (f"Error: {in_tmp}/ssl/server.crt exists and was not written by pgkongtls install; "
                        "move it away or choose another --ssl-dir\n")
    (in_tmp / "conf" / "pgkongtls.conf").write_text("mine\n")
    (in_tmp / "ssl" / "server.crt").unlink()
    r = run("install", "db", "--pg-conf-dir", "conf")
    assert r.stderr == (f"Error: {in_tmp}/conf/pgkongtls.conf exists and was not written by pgkongtls install; "
                        "move it away and install again\n")
    assert snapshot(in_tmp) == {**{k: v for k, v in before.items() if k != "ssl/server.crt"},
                                "conf/pgkongtls.conf": (b"mine\n", 0o644)}


@pytest.mark.parametrize(("args", "error"), [
    ([], "this bundle does not know the postgres config; pass --pg-conf-dir PATH"),
    (["--pg-conf-dir", "conf", "--kong-conf", "k.conf"],
     "pass --pg-conf-dir PATH for a PostgreSQL bundle or --kong-conf PATH for a Kong bundle, not both"),
    (["--kong-conf", "k.conf"], "this is a PostgreSQL bundle; install it with --pg-conf-dir PATH"),
    (["--pg-conf-dir", "conf", "--ssl-dir", "/elsewhere"], "this bundle's snippets point at {ssl}; make the bundle "
     "again with --ssl-dir /elsewhere, or leave out --ssl-dir"),
    (["--pg-conf-dir", "conf", "--pg-os-user", "no-such-user"],
     "this host has no OS user 'no-such-user'; pass --pg-os-user with the account the server runs as"),
    (["--pg-conf-dir", "nowhere"], "{tmp}/nowhere/postgresql.conf does not exist; pass --pg-conf-dir the directory "
     "that holds postgresql.conf and pg_hba.conf (the data directory, or /etc/postgresql/15/main)"),
])
def test_install_refusals_are_one_line(in_tmp: Path, pg_bundle: Path, args: list[str], error: str) -> None:
    before = snapshot(in_tmp)
    r = run("install", "db", *args)
    assert r.exit_code != 0
    assert r.stderr.splitlines()[0] == "Error: " + error.format(ssl=in_tmp / "ssl", tmp=in_tmp)
    assert snapshot(in_tmp) == before


def test_a_directory_the_server_cannot_enter_is_refused(in_tmp: Path) -> None:
    locked = in_tmp / "locked"
    locked.mkdir(mode=0o700)
    ok("bundle", "postgres", "--dir", "pki", "--out", "db", "--ssl-dir", str(locked / "ssl"))
    r = run("install", "db", "--pg-conf-dir", "conf")
    assert r.exit_code == 1
    assert r.stderr == (f"Error: postgres cannot enter {locked}, so the server cannot read its files; "
                        f"chmod o+x {locked} (or choose another --ssl-dir)\n")


def test_kong_install_sets_pg_ssl_in_place_and_says_to_restart(in_tmp: Path) -> None:
    """--kong-os-user names the worker account (postgres here: any account this host has)."""
    (in_tmp / "kong.conf").write_text("database = postgres\npg_ssl = off\n")
    ok("bundle", "kong", "--dir", "pki", "--out", "kb", "--ssl-dir", str(in_tmp / "kssl"))
    r = ok("install", "kb", "--kong-conf", "kong.conf", "--kong-os-user", "postgres")
    assert "next: Kong reads these only when it prepares its prefix: kong restart (or kong reload)" in r.stderr
    conf = (in_tmp / "kong.conf").read_text()
    assert [ln for ln in conf.splitlines() if ln.startswith("pg_ssl =")] == ["pg_ssl = on"]
    assert "# replaced by pgkongtls: pg_ssl = off" in conf
    key = (in_tmp / "kssl" / "client.key").stat()
    assert (key.st_uid, stat.S_IMODE(key.st_mode)) == (pwd.getpwnam("postgres").pw_uid, 0o600)


def test_missing_parents_are_made_root_0755_and_removed_again_on_failure(in_tmp: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    ok("bundle", "postgres", "--dir", "pki", "--out", "db", "--ssl-dir", str(in_tmp / "etc" / "pg" / "tls"))
    before = snapshot(in_tmp)
    monkeypatch.setenv("PGKONGTLS_TEST_FAIL_AT", "install:pg_ident.conf")
    assert run("install", "db", "--pg-conf-dir", "conf").exit_code == 1
    assert snapshot(in_tmp) == before and not (in_tmp / "etc").exists()
    monkeypatch.delenv("PGKONGTLS_TEST_FAIL_AT")
    ok("install", "db", "--pg-conf-dir", "conf")
    assert {stat.S_IMODE(d.stat().st_mode) for d in (in_tmp / "etc", in_tmp / "etc" / "pg", in_tmp / "etc/pg/tls")} == {0o755}


def test_a_recorded_config_dir_makes_install_need_no_option(in_tmp: Path) -> None:
    r = ok("bundle", "postgres", "--dir", "pki", "--out", "db", "--ssl-dir", str(in_tmp / "ssl"),
           "--pg-conf-dir", str(in_tmp / "conf"))
    assert r.stderr.splitlines()[-1] == "next: on that host: pgkongtls install db --reload"
    ok("install", "db")
    assert (in_tmp / "conf" / "pg_hba.conf").read_text().count("# BEGIN pgkongtls pg_hba.conf") == 1
    again = ok("bundle", "postgres", "--dir", "pki", "--out", "db2")  # both paths recorded in the manifest
    assert again.stderr.splitlines()[-1] == "next: on that host: pgkongtls install db2 --reload"
    assert "nothing to change" in ok("install", "db2").stderr
