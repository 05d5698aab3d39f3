"""verify's Kong-side policy checks: pg_ssl_version vs the server's floor, the workers' access to
the key and certificate, and `system` in lua_ssl_trusted_certificate. Pure: inputs are built here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pgkongtls import inputs
from pgkongtls.confparse import KongValue, Setting
from pgkongtls.inputs import path_chain
from pgkongtls.inputs_model import Account, KongInput, PathStat, PgInput, TrustEntry, VerifyInput
from pgkongtls.verify import ERROR, WARNING
from pgkongtls.verify.kong import check_kong_policy, check_ssl_version, check_trust_system, check_worker_access

KONG = Account(name="kong", uid=999, gids=frozenset({999}))
KEY = "/etc/kong/ssl/client.key"
CERT = "/etc/kong/ssl/client.crt"


def kong_input(*, values: dict[str, str] | None = None, trust: tuple[str, ...] = ("/etc/kong/ssl/chain.crt",),
               access: dict[str, tuple[PathStat, ...]] | None = None) -> KongInput:
    vals = {k: KongValue(val, i + 1) for i, (k, val) in enumerate((values or {}).items())}
    return KongInput(path="kong.conf", values=vals, trust=tuple(TrustEntry(t, None) for t in trust), cert=None,
                     key=None, access=access or {})


def pg_with_floor(floor: str | None) -> PgInput:
    settings = {"ssl_min_protocol_version": Setting("ssl_min_protocol_version", floor, 9)} if floor else {}
    return PgInput(path="postgresql.conf", settings=settings, cert=inputs.Missing("s"), key=inputs.Missing("k"),
                   ca=None, crl=None, crl_dir=None)


def chain(file_mode: int, file_uid: int, file_gid: int, *, dir_mode: int = 0o755) -> tuple[PathStat, ...]:
    names = {0: "root", 999: "kong"}
    return (PathStat("/", 0o755, 0, 0, "root", "root"), PathStat("/etc", 0o755, 0, 0, "root", "root"),
            PathStat("/etc/kong", 0o755, 0, 0, "root", "root"), PathStat("/etc/kong/ssl", dir_mode, 0, 0, "root", "root"),
            PathStat(KEY, file_mode, file_uid, file_gid, names[file_uid], names[file_gid]))


# ---- pg_ssl_version vs ssl_min_protocol_version ---------------------------------------------------

def test_tlsv1_2_against_a_tls13_floor_is_an_error() -> None:
    v = VerifyInput(pg=pg_with_floor("TLSv1.3"))
    [f] = check_ssl_version(v, kong_input(values={"pg_ssl_version": "tlsv1_2"}))
    assert (f.id, f.severity, f.fix) == ("kong-ssl-version", ERROR,
                                         "set pg_ssl_version = tlsv1_3 (pgkongtls render kong --min-tls TLSv1.3)")
    assert f.message.startswith("line 1: pg_ssl_version = tlsv1_2 is below the server's ssl_min_protocol_version = "
                                "TLSv1.3 (postgresql.conf): Kong Enterprise's start-up connection")


def test_kongs_default_tlsv1_2_counts_when_pg_ssl_version_is_unset() -> None:
    [f] = check_ssl_version(VerifyInput(pg=pg_with_floor("TLSv1.3")), kong_input())
    assert "pg_ssl_version = tlsv1_2 (Kong default) is below" in f.message


@pytest.mark.parametrize(("floor", "version"), [("TLSv1.3", "tlsv1_3"), ("TLSv1.3", "any"), ("TLSv1.2", "tlsv1_2"),
                                                (None, "tlsv1_2"), ("TLSv1.2", "tlsv1_3")])
def test_a_version_that_reaches_the_floor_is_fine(floor: str | None, version: str) -> None:
    assert check_ssl_version(VerifyInput(pg=pg_with_floor(floor)), kong_input(values={"pg_ssl_version": version})) == []


def test_unknown_pg_ssl_version_is_an_error_even_without_postgresql_conf() -> None:
    [f] = check_ssl_version(VerifyInput(), kong_input(values={"pg_ssl_version": "tlsv1_1"}))
    assert (f.id, f.severity) == ("kong-ssl-version", ERROR) and "Kong Enterprise refuses to start" in f.message


# ---- the workers' user must traverse to and read the key and certificate ------------------------

@pytest.mark.parametrize(("mode", "uid", "gid"), [(0o600, 999, 999), (0o640, 0, 999)])
def test_the_rendered_owners_let_kong_read_the_key(mode: int, uid: int, gid: int) -> None:
    assert check_worker_access(kong_input(access={"pg_ssl_cert_key": chain(mode, uid, gid)}), "kong", KONG) == []


def test_root_owned_0600_key_is_an_error_naming_kongs_own_symptom() -> None:
    [f] = check_worker_access(kong_input(access={"pg_ssl_cert_key": chain(0o600, 0, 0)}), "kong", KONG)
    assert (f.id, f.severity, f.file) == ("kong-key-access", ERROR, KEY)
    assert f.message == ("pg_ssl_cert_key: Kong's workers run as kong and cannot read /etc/kong/ssl/client.key "
                         "(owner root:root, mode 0600): Kong starts (the master is root), then every connection "
                         "fails with \"attempt to get length of local 'pem' (a nil value)\"")
    assert f.fix == f"chown kong:kong {KEY} && chmod 0600 {KEY} (or root:kong 0640)"


def test_a_directory_kong_cannot_traverse_is_an_error() -> None:
    [f] = check_worker_access(kong_input(access={"pg_ssl_cert_key": chain(0o600, 999, 999, dir_mode=0o700)}),
                              "kong", KONG)
    assert "cannot traverse /etc/kong/ssl (owner root:root, mode 0700)" in f.message
    assert f.fix == "chgrp kong /etc/kong/ssl && chmod g+x /etc/kong/ssl (or chmod o+x)"


def test_no_such_user_on_this_host_is_a_warning() -> None:
    [f] = check_worker_access(kong_input(access={"pg_ssl_cert_key": chain(0o600, 0, 0)}), "kong", None)
    assert (f.id, f.severity) == ("kong-user-unchecked", WARNING)


def test_path_chain_records_every_step(tmp_path: Path) -> None:
    f = tmp_path / "d" / "client.key"
    f.parent.mkdir()
    f.write_text("x")
    os.chmod(f.parent, 0o710)
    os.chmod(f, 0o640)
    steps = path_chain(str(f))
    assert steps[0].path == "/" and [s.path for s in steps[-2:]] == [str(f.parent), str(f)]
    assert (steps[-2].mode, steps[-1].mode) == (0o710, 0o640)
    assert path_chain(str(tmp_path / "none")) == ()


# ---- `system` ------------------------------------------------------------------------------------

def test_system_in_the_trust_list_is_a_warning_with_the_reason() -> None:
    [f] = check_trust_system(kong_input(values={"lua_ssl_trusted_certificate": "system,/x"}, trust=("system", "/x")))
    assert (f.id, f.severity) == ("kong-trust-system", WARNING)
    assert "Kong checks no host name, so any server with a certificate from any publicly trusted CA" in f.message
    assert f.fix.startswith("trust only the database's own CA (pgkongtls render kong --no-system)")
    assert check_trust_system(kong_input(trust=("/x",))) == []


def test_open_source_kong_gets_only_the_trust_check() -> None:
    k = kong_input(values={"pg_ssl_version": "tlsv1_2"}, trust=("system",),
                   access={"pg_ssl_cert_key": chain(0o600, 0, 0)})
    assert [f.id for f in check_kong_policy(VerifyInput(pg=pg_with_floor("TLSv1.3")), k, edition="oss")] == [
        "kong-trust-system"]
    assert sorted(f.id for f in check_kong_policy(VerifyInput(pg=pg_with_floor("TLSv1.3"), kong_account=KONG), k,
                                                  edition="enterprise")) == [
        "kong-key-access", "kong-ssl-version", "kong-trust-system"]
