"""One TLS policy across PostgreSQL and Kong: --tls-profile, --min-tls, pg_ssl_version, key owner, `system`."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import pytest

from pgkongtls import consumers, render
from pgkongtls.errors import InputError
from pgkongtls.manifest import MANIFEST_NAME, Manifest, loads

from .consumer_parsers import kong_settings, pg_settings

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
FILES = render.Files(pg_dir="/etc/postgresql/ssl", kong_dir="/etc/kong/ssl")


def manifest(shape: str = "intermediate") -> Manifest:
    return loads((EXAMPLES / shape / MANIFEST_NAME).read_text())


def leaves_of(m: Manifest, days: int) -> Manifest:
    """Every server/client certificate made `days` long (as `init --days N` would)."""
    for e in list(m.certificates.values()):
        if e.role in ("server", "client"):
            end = dt.datetime.fromisoformat(e.not_before.replace("Z", "+00:00")) + dt.timedelta(days=days)
            m = m.with_cert(replace(e, not_after=end.strftime("%Y-%m-%dT%H:%M:%SZ")))
    return m


def pg(text: str) -> dict[str, str]:
    return dict(pg_settings(text))


def kong(text: str) -> dict[str, str]:
    return dict(kong_settings(text))


# ---- PostgreSQL side --------------------------------------------------------------------------

def test_intermediate_is_the_default_and_sets_mozillas_tls12_list() -> None:
    s = pg(render.render_postgres(manifest(), FILES))
    assert (s["ssl_min_protocol_version"], s["ssl_ciphers"]) == ("TLSv1.2", consumers.MOZILLA_INTERMEDIATE_CIPHERS)
    assert "ssl_prefer_server_ciphers" not in s and "ssl_ecdh_curve" not in s


def test_legacy_is_the_old_output_without_ssl_ciphers() -> None:
    out = render.render_postgres(manifest(), FILES, tls_profile="legacy")
    assert "ssl_ciphers" not in pg(out)
    assert "# --tls-profile legacy: PostgreSQL's own ssl_ciphers default (HIGH:MEDIUM:+3DES:!aNULL) stays," in out


def test_modern_is_tls13_only_on_an_ecdsa_pki_of_90_day_leaves() -> None:
    s = pg(render.render_postgres(leaves_of(manifest(), 90), FILES, tls_profile="modern"))
    assert s["ssl_min_protocol_version"] == "TLSv1.3" and "ssl_ciphers" not in s


def test_modern_refuses_rsa_keys() -> None:
    m = replace(leaves_of(manifest(), 90), key_type="rsa-2048")
    with pytest.raises(InputError, match="^--tls-profile modern needs ECDSA keys and this PKI has rsa-2048; "
                                         "re-create it with pgkongtls init --key-type ecdsa-p256$"):
        render.render_postgres(m, FILES, tls_profile="modern")


def test_modern_refuses_a_server_leaf_over_90_days() -> None:
    with pytest.raises(InputError, match="^--tls-profile modern allows a server certificate of at most 90 days and server.crt "
                                         "lasts 91; re-issue it with --days 90$"):
        render.render_postgres(leaves_of(manifest(), 91), FILES, tls_profile="modern")


def test_modern_refuses_a_tls12_floor() -> None:
    with pytest.raises(InputError, match="^--tls-profile modern is TLS 1.3 only; drop --min-tls TLSv1.2"):
        render.render_postgres(leaves_of(manifest(), 90), FILES, tls_profile="modern", min_tls="TLSv1.2")


def test_unknown_profile_is_refused() -> None:
    with pytest.raises(InputError, match="^unknown --tls-profile 'old'; use one of intermediate, modern, legacy$"):
        render.render_postgres(manifest(), FILES, tls_profile="old")


# ---- Kong side ------------------------------------------------------------------------------

@pytest.mark.parametrize(("min_tls", "want"), [(None, "tlsv1_2"), ("TLSv1.2", "tlsv1_2"), ("TLSv1.3", "tlsv1_3")])
def test_pg_ssl_version_follows_the_postgresql_minimum(min_tls: str | None, want: str) -> None:
    assert kong(render.render_kong(manifest(), FILES, min_tls=min_tls))["pg_ssl_version"] == want


def test_modern_profile_gives_kong_tlsv1_3_and_names_the_matching_lua_ssl_protocols() -> None:
    out = render.render_kong(manifest(), FILES, tls_profile="modern")
    assert kong(out)["pg_ssl_version"] == "tlsv1_3"
    assert "#   lua_ssl_protocols = TLSv1.3\n" in out and "lua_ssl_protocols" not in kong(out)


def test_explicit_pg_ssl_version_below_min_tls_is_refused() -> None:
    with pytest.raises(InputError, match=r"^--pg-ssl-version tlsv1_2 is below --min-tls TLSv1\.3: Kong Enterprise would "
                                         r"not start \(its start-up connection speaks only TLSv1\.2\); use tlsv1_3 or any$"):
        render.render_kong(manifest(), FILES, min_tls="TLSv1.3", pg_ssl_version="tlsv1_2")


@pytest.mark.parametrize("version", ["any", "tlsv1_3"])
def test_explicit_pg_ssl_version_that_reaches_the_floor_is_kept(version: str) -> None:
    out = render.render_kong(manifest(), FILES, min_tls="TLSv1.3", pg_ssl_version=version)
    assert kong(out)["pg_ssl_version"] == version


def test_render_all_uses_one_floor_for_both_ends() -> None:
    out = render.render_all(manifest(), FILES, min_tls="TLSv1.3")
    assert pg(out["postgresql.conf.snippet"])["ssl_min_protocol_version"] == "TLSv1.3"
    assert kong(out["kong.conf.snippet"])["pg_ssl_version"] == "tlsv1_3"
    assert "KONG_PG_SSL_VERSION=tlsv1_3\n" in out["kong.env"]


def test_key_owner_is_the_kong_user_by_default_and_can_be_named() -> None:
    out = render.render_kong(manifest(), FILES)
    assert "#   chown kong:kong /etc/kong/ssl/client.key && chmod 0600 /etc/kong/ssl/client.key\n" in out
    assert "#   (or: chown root:kong /etc/kong/ssl/client.key && chmod 0640 /etc/kong/ssl/client.key)\n" in out
    other = render.render_kong(manifest(), FILES, os_user="gateway")
    assert "#   chown gateway:gateway /etc/kong/ssl/client.key && chmod 0600 /etc/kong/ssl/client.key\n" in other


def test_open_source_kong_has_no_key_to_own() -> None:
    assert "chown" not in render.render_kong(manifest(), FILES, edition="oss")


@pytest.mark.parametrize("bad", ["Kong", "kong\nx", "a b", ""])
def test_kong_os_user_must_be_a_user_name(bad: str) -> None:
    with pytest.raises(InputError, match="^--kong-os-user .* is not a user name"):
        render.render_kong(manifest(), FILES, os_user=bad)


def test_system_is_kept_only_with_the_warning_and_the_way_out() -> None:
    out = render.render_kong(manifest(), FILES)
    assert kong(out)["lua_ssl_trusted_certificate"] == "system,/etc/kong/ssl/chain.crt"
    assert "# WARNING: 'system,' makes Kong trust every public CA in the OS bundle for PostgreSQL too." in out
    assert "# Render with --no-system to trust only this PKI" in out
    hardened = render.render_kong(manifest(), FILES, system=False)
    assert kong(hardened)["lua_ssl_trusted_certificate"] == "/etc/kong/ssl/chain.crt"
    assert "WARNING" not in hardened


def test_enterprise_scram_warns_and_recommends_cert() -> None:
    out = render.render_hba(manifest(), auth="scram", edition="enterprise")
    assert ("# WARNING: Kong Enterprise with --auth scram: pgmoon 2.3.3.0 breaks every new connection in a worker "
            "after its first SCRAM-SHA-256-PLUS login") in out
    assert out.count("use --auth cert") == 1
    assert "WARNING" not in render.render_hba(manifest(), auth="scram", edition="oss")
    assert "WARNING" not in render.render_hba(manifest(), auth="cert", edition="enterprise")
