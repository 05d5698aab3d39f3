"""Library tests for install's config edits (pure) and its all-or-nothing file writes (fsio)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pgkongtls import fsio
from pgkongtls import install as ins
from pgkongtls.errors import InputError

INITDB_HBA = """\
# TYPE  DATABASE        USER            ADDRESS                 METHOD
local   all             all                                     trust
host    all             all             127.0.0.1/32            scram-sha-256
host    all             all             ::1/128                 scram-sha-256
"""
HBA = "# pg_hba.conf lines for Kong\nhostssl all kong all cert\nhostnossl all all all reject\n"
KONG = "# kong.conf settings\npg_ssl = on\npg_ssl_verify = on\nlua_ssl_verify_depth = 1\n"

#: Lines that are not our markers: what an operator's file may hold.
_BREAKS = "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"  # what str.splitlines splits on
other_lines = st.lists(st.text(st.characters(categories=("L", "M", "N", "P", "S", "Zs"), blacklist_characters=_BREAKS),
                               max_size=30).filter(lambda s: "pgkongtls" not in s), max_size=8)


def test_hba_block_goes_above_initdb_broad_lines_and_keeps_them() -> None:
    out = ins.pg_hba(INITDB_HBA, HBA)
    assert out.index("hostssl all kong all cert") < out.index("host    all             all             127.0.0.1/32")
    assert out.endswith(INITDB_HBA) and out.startswith(ins.begin("pg_hba.conf") + "\n")


@given(before=other_lines, after=other_lines)
def test_install_twice_is_byte_identical_and_lines_outside_stay(before: list[str], after: list[str]) -> None:
    text = "".join(f"{ln}\n" for ln in before)
    once = ins.pg_hba(text, HBA)
    assert ins.pg_hba(once, HBA) == once
    assert once.count(ins.begin("pg_hba.conf")) == 1
    assert once.removeprefix("".join(ins._block("pg_hba.conf", HBA))) == text
    moved = text + "".join(ins._block("pg_hba.conf", "old\n")) + "".join(f"{ln}\n" for ln in after)
    again = ins.pg_hba(moved, HBA)
    assert again == text + "".join(ins._block("pg_hba.conf", HBA)) + "".join(f"{ln}\n" for ln in after)


def test_rules_above_the_block_are_named_and_none_when_it_is_first() -> None:
    assert ins.rules_above(ins.pg_hba(INITDB_HBA, HBA), "pg_hba.conf") == []
    moved = INITDB_HBA + "".join(ins._block("pg_hba.conf", HBA))
    assert ins.rules_above(moved, "pg_hba.conf")[0] == "local   all             all                                     trust"
    assert len(ins.rules_above(moved, "pg_hba.conf")) == 3


def test_a_doubled_block_is_an_error_naming_the_line() -> None:
    block = "".join(ins._block("pg_hba.conf", HBA))
    with pytest.raises(InputError, match=r"^pg_hba.conf has a damaged or doubled pgkongtls block \(line 1\)"):
        ins.pg_hba(block + block, HBA)
    with pytest.raises(InputError, match=r"\(line 3\)"):
        ins.pg_hba("a\nb\n" + ins.begin("pg_hba.conf") + "\n", HBA)


def test_ident_block_is_appended_once() -> None:
    once = ins.pg_ident("# MAPNAME SYSTEM PG\n", "pgkongtls kong-node-1 kong\n")
    assert once.startswith("# MAPNAME SYSTEM PG\n" + ins.begin("pg_ident.conf"))
    assert ins.pg_ident(once, "pgkongtls kong-node-1 kong\n") == once


def test_postgresql_conf_gets_one_include_line_at_the_end() -> None:
    text = "ssl = off\nshared_buffers = 16MB"  # no final newline: kept, and the block starts on its own line
    out, rel = ins.pg_conf(text)
    assert rel == "pgkongtls.conf"
    assert out == text + "\n" + "".join(ins._block("postgresql.conf", "include 'pgkongtls.conf'"))
    assert ins.pg_conf(out) == (out, "pgkongtls.conf")


def test_include_dir_takes_the_file_and_postgresql_conf_is_untouched() -> None:
    debian = "ssl = on\nssl_cert_file = '/etc/ssl/certs/ssl-cert-snakeoil.pem'\ninclude_dir = 'conf.d'\n"
    assert ins.pg_conf(debian) == (debian, "conf.d/pgkongtls.conf")


def test_an_ssl_setting_after_include_dir_would_win_so_the_include_line_goes_last() -> None:
    text = "include_dir = 'conf.d'\nssl_cert_file = 'other.crt'  # set later\n"
    out, rel = ins.pg_conf(text)
    assert rel == "pgkongtls.conf" and out.endswith(ins.end("postgresql.conf") + "\n")


def test_kong_conf_replaces_pg_ssl_off_in_place_and_never_duplicates_it() -> None:
    text = "database = postgres\npg_host = db\npg_ssl = off  # old\n#pg_ssl_verify = off\nproxy_listen = 0.0.0.0:8000\n"
    once = ins.kong_conf(text, KONG)
    lines = once.splitlines()
    assert [ln for ln in lines if ln.startswith("pg_ssl ")] == ["pg_ssl = on"]
    assert lines[:2] == ["database = postgres", "pg_host = db"] and lines[2] == ins.begin("kong.conf")
    assert "# replaced by pgkongtls: pg_ssl = off  # old" in lines
    assert lines[-2:] == ["#pg_ssl_verify = off", "proxy_listen = 0.0.0.0:8000"]  # a comment is not a setting
    assert ins.kong_conf(once, KONG) == once


def test_kong_conf_without_the_keys_gets_the_block_at_the_end() -> None:
    out = ins.kong_conf("database = postgres\n", KONG)
    assert out.startswith("database = postgres\n" + ins.begin("kong.conf")) and ins.kong_conf(out, KONG) == out


def test_diff_is_empty_when_nothing_changes_and_unified_otherwise() -> None:
    assert ins.diff("/x", "a\n", "a\n") == ""
    assert ins.diff("/x", None, "a\n") == "--- /dev/null\n+++ /x\n@@ -0,0 +1 @@\n+a\n"


# --------------------------------------------------------------------------- fsio.install_files


def _writes(tmp_path: Path) -> list[fsio.HostWrite]:
    return [fsio.HostWrite(tmp_path / "a.conf", b"new a\n", 0, 0, 0o644),
            fsio.HostWrite(tmp_path / "ssl" / "server.key", b"KEY\n", 0, 0, 0o600),
            fsio.HostWrite(tmp_path / "b.conf", b"new b\n", 0, 0, 0o600)]


def test_install_files_writes_owner_and_mode(tmp_path: Path) -> None:
    (tmp_path / "a.conf").write_text("old a\n")
    fsio.install_files(_writes(tmp_path), [fsio.HostDir(tmp_path / "ssl", 0, 0, 0o755)])
    assert (tmp_path / "a.conf").read_text() == "new a\n"
    assert stat.S_IMODE((tmp_path / "ssl" / "server.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "ssl").stat().st_mode) == 0o755
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.conf", "b.conf", "ssl"]


@pytest.mark.parametrize("step", ["install:staged", "install:server.key", "install:b.conf"])
def test_a_failure_at_any_step_leaves_every_file_as_it_was(tmp_path: Path, step: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.conf").write_text("old a\n")
    (tmp_path / "b.conf").write_text("old b\n")
    os.chmod(tmp_path / "b.conf", 0o640)
    monkeypatch.setenv("PGKONGTLS_TEST_FAIL_AT", step)
    with pytest.raises(fsio.InjectedFailure):
        fsio.install_files(_writes(tmp_path), [fsio.HostDir(tmp_path / "ssl", 0, 0, 0o755)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.conf", "b.conf"]
    assert (tmp_path / "a.conf").read_text() == "old a\n" and (tmp_path / "b.conf").read_text() == "old b\n"
    assert stat.S_IMODE((tmp_path / "b.conf").stat().st_mode) == 0o640
