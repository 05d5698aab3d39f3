"""Config parsers split lines on \\n only, as PostgreSQL and Kong do (FACTS.md): str.splitlines()
also breaks at \\f, \\v, \\x1c-\\x1e, \\x85 and U+2028/9, and showed lines the servers never read."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from pgkongtls import confparse, inputs, ops
from pgkongtls import verify as v
from pgkongtls.errors import InputError
from pgkongtls.pki import InitOptions

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)
BREAKS = ["\f", "\v", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


@pytest.mark.parametrize("brk", BREAKS)
def test_hba_a_comment_hides_what_follows_a_break(brk: str) -> None:
    """PostgreSQL reads `#<brk>hostssl ... cert` as one comment, so the trust line below decides."""
    lines = confparse.parse_hba(f"#{brk}hostssl all all all cert\nhost all all all trust\n")
    assert [(x.line, x.type, x.method) for x in lines] == [(2, "host", "trust")]


@pytest.mark.parametrize("brk", BREAKS)
def test_pg_conf_and_kong_conf_comments_run_to_the_newline(brk: str) -> None:
    assert confparse.parse_pg_conf(f"# old{brk}ssl_key_file = '/tmp/k'\nssl = on\n") == [
        confparse.Setting(name="ssl", value="on", line=2)]
    assert list(confparse.parse_kong_conf(f"# x{brk}pg_ssl_verify = on\npg_ssl = on\n")) == ["pg_ssl"]


def test_pg_conf_form_feed_is_not_blank() -> None:
    """guc-file.l eats only space, tab and CR: a leading form feed is a syntax error to PostgreSQL."""
    with pytest.raises(InputError, match="line 1: syntax error"):
        confparse.parse_pg_conf("\fssl = on\n")


def test_hba_continuation_after_crlf() -> None:
    """tokenize_auth_file strips the CR before it looks for the continuation backslash."""
    lines = confparse.parse_hba("hostssl all all \\\r\n all cert\r\n")
    assert [(x.line, x.type, x.address, x.method) for x in lines] == [(1, "hostssl", "all", "cert")]


def test_verify_sees_the_trust_line_behind_a_form_feed(tmp_path: Path) -> None:
    ops.init(tmp_path / "pki", InitOptions(hosts=("db.internal",)), now=NOW)
    hba = tmp_path / "pg_hba.conf"
    hba.write_text("#\fhostssl all kong all cert\nhost all all all trust\n")
    findings = v.run_checks(inputs.gather(tmp_path / "pki", postgresql_conf=None, pg_hba=hba, pg_ident=None,
                                          kong_conf=None, pg_os_user="postgres"), now=NOW, warn_days=30,
                            edition="enterprise")
    assert [(f.severity, f.id, f.message) for f in findings] == [
        ("error", "hba-method",
         "line 2 (host all all all trust) decides for Kong and does not check the client certificate's CN")]
