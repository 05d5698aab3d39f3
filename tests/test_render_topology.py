"""The topology renderers (standby, pgbouncer, Patroni, Kong's --via/--ro-server) as pure functions."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import psycopg
import pytest

from pgkongtls import render
from pgkongtls import render_topology as t
from pgkongtls.errors import InputError
from pgkongtls.manifest import MANIFEST_NAME, Manifest, loads

from .consumer_parsers import pg_settings

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
FILES = render.Files(pg_dir="/etc/postgresql/ssl", kong_dir="/etc/kong/ssl")


def add(m: Manifest, name: str, role: str, cn: str, sans: tuple[str, ...] = ()) -> Manifest:
    base = m.certificates[role]
    return m.with_cert(replace(base, name=name, file=f"{name}.crt", key_file=f"{name}.key", cn=cn, sans=sans))


@pytest.fixture
def m() -> Manifest:
    """The intermediate example plus a replication identity, a standby and a pooler, as `issue` adds them."""
    m = loads((EXAMPLES / "intermediate" / MANIFEST_NAME).read_text())
    m = add(m, "replicator", "client", "replicator")
    m = add(m, "db-2", "server", "db-2.internal", ("db-2.internal", "db.internal"))
    m = add(m, "pgbouncer", "server", "pgbouncer.internal", ("pgbouncer.internal",))
    return add(m, "pgbouncer-up", "client", "pgbouncer")


def records(text: str) -> list[str]:
    return [ln for ln in text.split("\n") if ln and not ln.startswith("#")]


def test_replication_line_and_kong_keeps_its_own_map(m: Manifest) -> None:
    m = replace(m, certificates={k: v for k, v in m.certificates.items() if k != "pgbouncer-up"})
    hba = render.render_hba(m, replication="replicator")
    assert "hostssl all kong all cert\n" in hba  # no map: the replication CN is not Kong's
    assert "hostssl replication replicator all cert\n" in hba
    ident = render.render_ident(m, replication="replicator")
    assert "replicator" not in "\n".join(records(ident))


def test_without_replication_the_replication_cn_would_be_mapped_to_kong(m: Manifest) -> None:
    """Twin: the exclusion is what keeps replicator's certificate from logging in as kong."""
    m = replace(m, certificates={k: v for k, v in m.certificates.items() if k != "pgbouncer-up"})
    ident = render.render_ident(m)
    assert "pgkongtls replicator kong" in records(ident)


def test_replication_identity_with_another_cn_is_mapped(m: Manifest) -> None:
    m = add(m, "standby-id", "client", "standby-node")
    hba = render.render_hba(m, replication="standby-id")
    assert f"hostssl replication standby-id all cert map={t.REPLICATION_MAP}\n" in hba
    assert f"{t.REPLICATION_MAP} standby-node standby-id" in records(render.render_ident(m, replication="standby-id"))


def test_replication_needs_a_certificate(m: Manifest) -> None:
    with pytest.raises(InputError, match="^no client certificate for replication role 'repl'; pgkongtls issue client"):
        render.render_hba(m, replication="repl")


def test_standby_conninfo_round_trips_through_postgresql_conf_and_libpq(m: Manifest) -> None:
    files = replace(FILES, pg_dir="/srv/pg ssl/it's", server="db-2")
    text = t.render_standby(m, files, client="replicator", primary="db.example.internal:6000")
    settings = dict(pg_settings(text))
    parsed = psycopg.conninfo.conninfo_to_dict(settings["primary_conninfo"])
    assert parsed == {
        "host": "db.example.internal", "port": "6000", "user": "replicator", "sslmode": "verify-full",
        "sslrootcert": "/srv/pg ssl/it's/chain.crt", "sslcert": "/srv/pg ssl/it's/replicator.crt",
        "sslkey": "/srv/pg ssl/it's/replicator.key", "application_name": "db-2",
    }
    assert settings["ssl_cert_file"] == "/srv/pg ssl/it's/db-2.crt"


def test_standby_adds_sslcrl_when_the_pki_has_one(m: Manifest) -> None:
    text = t.render_standby(replace(m, crl_file="crl.pem"), replace(FILES, server="db-2"), client="replicator",
                            primary="10.0.0.5")
    parsed = psycopg.conninfo.conninfo_to_dict(dict(pg_settings(text))["primary_conninfo"])
    assert (parsed["sslcrl"], parsed["port"]) == ("/etc/postgresql/ssl/crl.pem", "5432")


def test_standby_refuses_a_primary_no_certificate_covers(m: Manifest) -> None:
    with pytest.raises(InputError, match="^no server certificate in this PKI covers --primary host 'db-9.internal'"):
        t.render_standby(m, replace(FILES, server="db-2"), client="replicator", primary="db-9.internal")


@pytest.mark.parametrize(("text", "want"), [
    ("db", ("db", 5432)), ("db:6000", ("db", 6000)), ("::1", ("::1", 5432)), ("[::1]:7", ("::1", 7)),
])
def test_parse_hostport(text: str, want: tuple[str, int]) -> None:
    assert t.parse_hostport(text) == want


@pytest.mark.parametrize("text", ["db:0", "db:x", "a b", "[xyz]:1"])
def test_parse_hostport_refuses(text: str) -> None:
    with pytest.raises(InputError, match="--primary"):
        t.parse_hostport(text)


def test_multi_san_node_covers_both_names(m: Manifest) -> None:
    assert t.covering_servers(m, "db.internal") == ["db-2"]
    assert t.covering_servers(m, "db-2.internal") == ["db-2"]
    assert t.covering_servers(m, "db-3.internal") == []


def test_pgbouncer_cert_mode(m: Manifest) -> None:
    text = t.render_pgbouncer(m, replace(FILES, server="pgbouncer", client="pgbouncer-up"))
    body = records(text)
    assert {"auth_type = cert", "client_tls_sslmode = verify-full", "server_tls_sslmode = verify-full",
            "server_tls_cert_file = /etc/postgresql/ssl/pgbouncer-up.crt",
            "client_tls_cert_file = /etc/postgresql/ssl/pgbouncer.crt",
            "kong = host=db.example.internal port=5432 dbname=kong"} <= set(body)
    assert '; "kong" ""' in body


def test_pgbouncer_scram_mode(m: Manifest) -> None:
    body = records(t.render_pgbouncer(m, replace(FILES, server="pgbouncer", client="pgbouncer-up"), auth="scram"))
    assert {"auth_type = scram-sha-256", "client_tls_sslmode = require"} <= set(body)


def test_pgbouncer_refuses_a_comment_character_in_a_path(m: Manifest) -> None:
    with pytest.raises(InputError, match="cannot go into pgbouncer.ini"):
        t.render_pgbouncer(m, replace(FILES, pg_dir="/etc/a;b", server="pgbouncer", client="pgbouncer-up"))


def test_kong_via_pooler_and_read_replica(m: Manifest) -> None:
    text = render.render_kong(m, FILES, via="pgbouncer", ro_server="db-2")
    assert {"pg_host = pgbouncer.internal", "pg_port = 6432", "pg_ro_host = db-2.internal"} <= set(records(text))


def test_kong_via_pooler_needs_the_cn_to_be_the_user(m: Manifest) -> None:
    with pytest.raises(InputError, match="pgbouncer has no map"):
        render.render_kong(m, replace(FILES, client="pgbouncer-up"), via="pgbouncer")


def test_patroni_fragment(m: Manifest) -> None:
    m = add(m, "patroni", "client", "patroni")
    text = t.render_patroni(m, replace(FILES, server="db-2"), replication="replicator", ctl_client="patroni")
    assert "  verify_client: required\n" in text
    assert '      sslcert: "/etc/postgresql/ssl/replicator.crt"\n' in text
    assert '    - "hostssl replication replicator all cert"\n' in text
    assert text.count("hostssl replication") == 1
    assert '    - "hostnossl all all all reject"\n' in text
    # the pooler's CN maps to kong (render ident would too); the ctl identity does not
    assert '  pg_ident:\n    - "pgkongtls pgbouncer kong"\n    - "pgkongtls kong kong"\n' in text
    assert "patroni kong" not in text
