"""The kong.conf -> nginx translation the Kong-equivalent client relies on (no servers needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .kong import SYSTEM_BUNDLES, KongConfError, combine_trusted, parse_kong_conf, replace_setting, translate


def test_parse_strips_comments_but_keeps_escaped_hashes() -> None:
    text = "# heading\n  pg_ssl = on   # trailing comment\nPG_PASSWORD = a\\#b\n\nlua_ssl_verify_depth=2\n"
    assert parse_kong_conf(text) == {"pg_ssl": "on", "pg_password": "a#b", "lua_ssl_verify_depth": "2"}


def test_parse_refuses_a_line_without_equals() -> None:
    with pytest.raises(KongConfError, match="not a 'key = value' line: 'pg_ssl on'"):
        parse_kong_conf("pg_ssl on\n")


def test_trusted_certificates_are_concatenated_in_order_with_system_expanded(tmp_path: Path) -> None:
    a, b = tmp_path / "a.crt", tmp_path / "b.crt"
    a.write_text("AAA")  # no final newline: the combined file must still separate the entries
    b.write_text("BBB\n")
    system = next((p for p in SYSTEM_BUNDLES if Path(p).exists()), None)
    if system is None:
        pytest.skip("no system CA bundle on this machine")
    combined = combine_trusted(f"{a}, system ,{b}")
    # Kong's prefix_handler writes each entry followed by "\n", whatever the entry ends with
    assert combined == "AAA\n" + Path(system).read_text() + "\n" + "BBB\n\n"


def test_missing_trusted_certificate_is_refused_as_kong_does(tmp_path: Path) -> None:
    with pytest.raises(KongConfError, match=f"lua_ssl_trusted_certificate: no such file at {tmp_path}/none.crt"):
        combine_trusted(f"system,{tmp_path}/none.crt")


def test_open_source_kong_ignores_enterprise_keys(tmp_path: Path) -> None:
    cert = tmp_path / "c.crt"
    cert.write_text("x")
    text = f"pg_ssl = on\npg_ssl_cert = {cert}\npg_ssl_cert_key = {cert}\nlua_ssl_trusted_certificate = {cert}\n"
    assert translate(text, edition="enterprise").pg_ssl_cert == str(cert)
    assert translate(text, edition="oss").pg_ssl_cert is None


def test_enterprise_needs_both_cert_and_key(tmp_path: Path) -> None:
    cert = tmp_path / "c.crt"
    cert.write_text("x")
    with pytest.raises(KongConfError, match="^pg_ssl_cert_key must be specified$"):
        translate(f"pg_ssl = on\npg_ssl_cert = {cert}\nlua_ssl_trusted_certificate = {cert}\n")


def test_kong_defaults_apply_when_keys_are_absent(tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("x\n")
    s = translate(f"lua_ssl_trusted_certificate = {ca}\n")
    assert (s.pg_ssl, s.pg_ssl_verify, s.verify_depth, s.protocols) == (False, False, 1, "TLSv1.2 TLSv1.3")
    assert s.pg_ssl_version == "tlsv1_2"  # Kong Enterprise's default, handed to LuaSec at start-up


def test_pg_ssl_version_is_checked_and_ignored_by_open_source_kong(tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("x\n")
    text = f"pg_ssl_version = tlsv1_3\nlua_ssl_trusted_certificate = {ca}\n"
    assert translate(text).pg_ssl_version == "tlsv1_3"
    assert translate(text, edition="oss").pg_ssl_version == "any"
    with pytest.raises(KongConfError, match="^pg_ssl_version has an invalid value: 'tlsv1_1'"):
        translate(text.replace("tlsv1_3", "tlsv1_1"))


def test_replace_setting_changes_exactly_one_line() -> None:
    text = "# c\npg_ssl = on\nlua_ssl_verify_depth = 1\n"
    assert replace_setting(text, "lua_ssl_verify_depth", "0") == "# c\npg_ssl = on\nlua_ssl_verify_depth = 0\n"
    with pytest.raises(KongConfError, match="pg_ssl_cert appears 0 times"):
        replace_setting(text, "pg_ssl_cert", "x")
