"""Hostile input (hypothesis): every value is accepted and round-trips exactly, or refused in one line.

Over `--db-host`, `--db-user`, client CNs (`issue client --cn`), `--name`, and the
`--pg-dir`/`--kong-dir` paths that render writes into configs. Accepted values
must come back unchanged from the certificate (SAN/CN) and from the rendered
postgresql.conf, pg_hba.conf, pg_ident.conf, kong.conf, kong.env and libpq
snippets, parsed here the way their consumers parse them (small parsers below,
independent of pgkongtls' own). Nothing may add a line, a key or a field.
Mostly the library layer (fast); a few examples go through the CLI.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import os
import posixpath
import re
from functools import cache
from pathlib import Path

import idna
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, currently_in_test_context, event, example, given, settings
from hypothesis import strategies as st

from pgkongtls import certs, consumers, lifecycle, pki, render
from pgkongtls.certs import utcnow
from pgkongtls.cli import main
from pgkongtls.errors import InputError
from pgkongtls.hostnames import parse_host
from pgkongtls.manifest import Manifest, host_text

from .consumer_parsers import conninfo, env_settings, hba_records, keyword, kong_settings, literal, pg_settings

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MINTING = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CLI = settings(max_examples=12, deadline=None,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# ------------------------------------------------------------------ inputs

INJECTIONS = [
    "kong\nhost all all all trust", "kong\rhost all all all trust", "kong\r\nssl = off", "kong\x00", "\x00",
    "kong\u2028x", "kong\x85x", "kong\x0bx", "kong\tx", "kong x", "kong#x", "kong,x", 'kong"x', "kong'x",
    "kong\\x", "kong\\", "+kong", "@kong", "/kong", "/^kong[0-9]+$", "all", "sameuser", "samerole", "samegroup",
    "replication", "public", "", " ", "..", ".", "../x", "a/b", "/", "-kong", "{name}", "k" * 63, "k" * 64,
    "é" * 31 + "x", "é" * 32, "кон", "🐒", "ǅ", "ﬁ", "\u200b", "kong\u202e", "pg_ssl = off", "ssl=off",
]
HOSTS = [
    "localhost", "db.internal", "DB.Internal.", "10.0.0.5", "::1", "fe80::1%eth0", "fe80::1%25eth0",
    "::ffff:10.0.0.5", "[::1]", "010.0.0.5", "1.2.3", "4294967295", "0x7f.1", "127.1", "a.1", "1e2.example",
    "*.example.com", "*", "db*.example", "straße.de", "xn--strae-oqa.de", "xn--zz.example", "bücher.example",
    "ＥＸＡＭＰＬＥ．com", "exa\u200bmple.com", "İstanbul.tr", "💩.la", "a" * 63 + ".example", "a" * 64 + ".example",
    ".".join(["a" * 63] * 4), "db..internal", ".db", "db-.internal", "-db.internal", "db_1.internal",
    "db.internal\n", "db\x00.internal", "db internal", "db/..", "../etc", "db.internal#x", "db,internal",
]


def text_with(*extra: str) -> st.SearchStrategy[str]:
    """Arbitrary Unicode, the hand-picked cases, and near-valid shapes."""
    return st.one_of(
        st.sampled_from([*INJECTIONS, *extra]),
        st.text(max_size=70),
        st.text(alphabet=st.characters(codec="ascii"), max_size=70),
        st.from_regex(r"[a-z][a-z0-9_.@+/-]{0,62}", fullmatch=True),
    )


hosts = st.one_of(
    st.sampled_from(HOSTS),
    st.ip_addresses().map(str),
    st.tuples(st.ip_addresses(v=6).map(str), st.text(min_size=1, max_size=8)).map("%".join),
    st.from_regex(r"[A-Za-z0-9-]{1,66}(\.[A-Za-z0-9-]{1,66}){0,4}\.?", fullmatch=True),
    st.lists(st.text(max_size=12), min_size=1, max_size=4).map(".".join),
    st.text(max_size=40),
)
paths = st.one_of(
    st.sampled_from(["/etc/ssl", "/etc/kong ssl", "/e'tc", "/e\\tc", "/etc/#x", "/etc/a,b", "/etc/\nssl = off",
                     "relative", "/", "//x", "/x/../y", "/é/ü", "/x\u2028y"]),
    st.text(max_size=30).map(lambda s: "/" + s),
)


# ------------------------------------------------------------------ shared material

@cache
def base() -> tuple[Manifest, certs.Issued]:
    """One small CA-based PKI (manifest + its issuing CA) to render and sign with."""
    now = certs.utcnow()
    root = certs.make_root(cn="hostile root", key=certs.generate_key("ecdsa-p256"), with_intermediate=False, now=now)
    fs = pki.plan_init(pki.InitOptions(chain="root"), now=now)
    return fs.manifest, root


FILES = render.Files(pg_dir="/etc/postgresql/ssl", kong_dir="/etc/kong/ssl")


def refused_in_one_line(exc: InputError) -> None:
    if currently_in_test_context():
        event("refused")
    msg = str(exc)
    assert msg and "\n" not in msg and "\r" not in msg, repr(msg)


HBA_METHOD = {"cert": ["cert"], "verify-full": ["trust", "clientcert=verify-full"],
              "scram": ["scram-sha-256", "clientcert=verify-full"]}


def check_hba(text: str, user: str, auth: str, *, mapped: bool) -> None:
    records = hba_records(text)
    assert len(records) == 2, records
    ssl, plain = records
    assert keyword(ssl[0], "hostssl") and keyword(ssl[1], "all") and keyword(ssl[3], "all")
    assert literal(ssl[2], user), f"user column {ssl[2]} is not exactly the role {user!r}"
    assert [f for f in ssl[4:]] == [[(w, False)] for w in HBA_METHOD[auth] + (["map=pgkongtls"] if mapped else [])]
    assert [f for f in plain] == [[("hostnossl", False)], *[[("all", False)]] * 3, [("reject", False)]]


# ------------------------------------------------------------------ --db-host

def expected_san(host: str) -> x509.GeneralName | None:
    """What an accepted host must become; None when no exact round trip exists (so it must be refused)."""
    try:
        return x509.IPAddress(ipaddress.ip_address(host)) if "%" not in host else None
    except ValueError:
        pass
    name = host[:-1] if host.endswith(".") else host
    if name.isascii():
        return x509.DNSName(name.lower())
    try:  # IDNA 2008 (UTS 46 mapping), what browsers and libidn2 resolve; not Python's IDNA 2003 codec
        ascii_name = idna.encode(name.lower(), uts46=True).decode("ascii")
        back = idna.decode(ascii_name)
    except (idna.IDNAError, UnicodeError):
        return None
    return x509.DNSName(ascii_name) if back == name.lower() else None


@MINTING
@given(host=hosts)
@example(host="fe80::1%eth0")
@example(host="straße.de")
@example(host="010.0.0.5")
def test_db_host_round_trips_into_the_server_certificate_or_is_refused(host: str) -> None:
    now = utcnow()  # read in the test: hypothesis runs each example with one fixture set
    try:
        fs = pki.plan_init(pki.InitOptions(chain="root", hosts=(host,)), now=now)
    except InputError as exc:
        refused_in_one_line(exc)
        return
    want = expected_san(host)
    assert want is not None, f"{host!r} was accepted but cannot round-trip exactly"
    server = x509.load_pem_x509_certificate(fs.files["server.crt"])
    assert list(server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value) == [want]
    assert fs.manifest.hosts == (host_text(want),)
    if isinstance(want, x509.DNSName):
        last = want.value.rsplit(".", 1)[-1]
        assert not last.isdigit(), f"{host!r}: a DNS name whose last label is a number reads as an IPv4 address"
    assert server.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == host_text(want)
    assert dict(conninfo(render.render_libpq(fs.manifest, FILES)))["host"] == host_text(want)


@pytest.mark.parametrize("host", ["010.0.0.5", "1.2.3", "4294967295", "127.1", "0x7f.1", "a.1"])
def test_a_db_host_that_reads_as_an_ipv4_address_is_refused(host: str) -> None:
    """libpq and getaddrinfo read these as IPv4 (inet_aton): a DNS SAN for them names another host."""
    with pytest.raises(InputError, match=rf"invalid host '{re.escape(host)}': its last label is a number"):
        parse_host(host)


# ------------------------------------------------------------------ --db-user

@MINTING
@given(user=text_with())
@example(user="kong\nhost all all all trust")
@example(user="all")
def test_db_user_round_trips_into_the_client_cn_and_every_config_or_is_refused(user: str) -> None:
    now = utcnow()  # read in the test: hypothesis runs each example with one fixture set
    try:
        fs = pki.plan_init(pki.InitOptions(chain="root", db_user=user), now=now)
    except InputError as exc:
        refused_in_one_line(exc)
        return
    client = x509.load_pem_x509_certificate(fs.files["client.crt"])
    assert client.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == user
    m = fs.manifest
    assert m.db_user == user
    for auth in HBA_METHOD:
        check_hba(render.render_hba(m, auth=auth), user, auth, mapped=False)
    assert hba_records(render.render_ident(m)) == []
    assert dict(conninfo(render.render_libpq(m, FILES)))["user"] == user


def test_a_db_user_with_a_newline_never_renders_a_trust_line(now: dt.datetime) -> None:
    m, _ = base()
    with pytest.raises(InputError) as exc:
        pki.plan_init(pki.InitOptions(db_user="kong\nhost all all all trust"), now=now)
    refused_in_one_line(exc.value)
    with pytest.raises(InputError, match="contains a newline or control character"):
        render.render_hba(m, auth="verify-full", user="kong\nhost all all all trust")


@FAST
@given(user=text_with())
def test_render_user_option_is_one_literal_role_or_refused(user: str) -> None:
    """`render hba --user` goes into the same column: one role, never a keyword, list or new line."""
    m, _ = base()
    for auth in HBA_METHOD:
        try:
            out = render.render_hba(m, auth=auth, user=user)
        except InputError as exc:
            refused_in_one_line(exc)
            continue
        check_hba(out, user or m.db_user, auth, mapped=needs_map(m, user or m.db_user))


def needs_map(m: Manifest, user: str) -> bool:
    return any(e.cn != user for e in m.by_role("client") if not e.revoked)


# ------------------------------------------------------------------ client CN (issue client --cn)

def with_client(m: Manifest, name: str, cn: str) -> Manifest:
    return m.with_cert(dataclasses.replace(m.certificates["client"], name=name, file=f"{name}.crt",
                                           key_file=f"{name}.key", cn=cn))


@FAST
@given(cn=text_with())
@example(cn="/^kong[0-9]+$")
@example(cn="all")
def test_client_cn_round_trips_into_the_certificate_and_the_ident_map_or_is_refused(cn: str) -> None:
    m, root = base()
    try:
        got = lifecycle.client_cn(cn, "node1", m.db_user)
    except InputError as exc:
        refused_in_one_line(exc)
        return
    assert got == cn.replace("{name}", "node1")
    issued = certs.make_client(cn=got, key=certs.generate_key("ecdsa-p256"), issuer=root, now=certs.utcnow())
    assert issued.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == got
    m2 = with_client(m, "node1", got)
    records = hba_records(render.render_ident(m2))
    if got == m.db_user:
        assert records == []
    else:  # the new CN, plus an identity line for init's client (its CN is the db user)
        assert len(records) == 2 and all(len(r) == 3 for r in records), records
        for (mapname, system, role), cn in zip(sorted(records, key=lambda r: r[1][0][0] != got), (got, m.db_user),
                                               strict=True):
            assert keyword(mapname, "pgkongtls")
            assert literal(system, cn, keywords=()), f"system-username {system} is not exactly the CN {cn!r}"
            assert literal(role, m.db_user)
    check_hba(render.render_hba(m2), m.db_user, "cert", mapped=got != m.db_user)


@FAST
@given(prefix=text_with("kong-node-", "a.b", "x+", "(", "[a-z]", "\\d", "^$"))
def test_a_numbered_fleet_regex_matches_exactly_the_fleet(prefix: str) -> None:
    m, _ = base()
    cns = [f"{prefix}{i}" for i in (1, 2, 10)]
    try:
        for cn in cns:
            lifecycle.client_cn(cn, "n", m.db_user)
    except InputError as exc:
        refused_in_one_line(exc)
        return
    for i, cn in enumerate(cns):
        m = with_client(m, f"n{i}", cn)
    records = hba_records(render.render_ident(m))
    assert all(len(r) == 3 and literal(r[2], m.db_user) for r in records), records
    identity = [r for r in records if literal(r[1], m.db_user, keywords=())]
    assert len(identity) == 1  # init's client keeps its line once the map is in use
    records = [r for r in records if r not in identity]
    systems = [r[1] for r in records]
    if len(records) == 1 and systems[0][0][0].startswith("/"):
        regex = systems[0][0][0][1:]
        mt = re.fullmatch(r"\^(.*)\[0-9\]\+\$", regex)
        assert mt, regex
        shared = re.sub(r"\\(.)", r"\1", mt.group(1))  # the literal prefix the regex stands for
        assert all(cn.startswith(shared) and cn[len(shared):].isdigit() for cn in cns)
        assert all(re.fullmatch(regex, cn) for cn in cns)
        for other in (shared + "x", "x" + shared + "1", shared, shared + "1\n", shared + "1x",
                      *([shared[:-1] + "1"] if shared else [])):
            assert not re.fullmatch(regex, other), (regex, other)
    else:
        assert sorted(s[0][0] for s in systems) == sorted(cns) and all(literal(s, s[0][0], keywords=())
                                                                        for s in systems)


# ------------------------------------------------------------------ --name

@FAST
@given(name=text_with("NAME", "a" * 63, "a" * 64, "x.crt", ".hidden", "con", "nul", "a\\b"))
def test_a_name_is_a_plain_file_name_inside_the_dir_or_refused(name: str) -> None:
    try:
        got = lifecycle.validate_name(name)
    except InputError as exc:
        refused_in_one_line(exc)
        return
    assert got == name
    d = Path("/srv/pki")
    for suffix in (".crt", ".key", ".crt.1f.bak"):
        p = d / f"{name}{suffix}"
        assert p.parent == d and os.path.normpath(p) == str(p) and "\x00" not in str(p)
        assert not p.name.startswith(".")


# ------------------------------------------------------------------ --pg-dir / --kong-dir

@FAST
@given(where=paths)
def test_config_paths_round_trip_into_postgresql_conf_or_are_refused(where: str) -> None:
    m, _ = base()
    try:
        out = render.render_postgres(m, render.Files(pg_dir=where, kong_dir="/k"))
    except InputError as exc:
        refused_in_one_line(exc)
        return
    files = {"ssl_cert_file": "server.crt", "ssl_key_file": "server.key", "ssl_ca_file": "chain.crt"}
    want = [("ssl", "on"), *((k, posixpath.join(where, v)) for k, v in files.items()),
            ("ssl_min_protocol_version", "TLSv1.2"), ("ssl_ciphers", consumers.MOZILLA_INTERMEDIATE_CIPHERS)]
    assert pg_settings(out) == want


@FAST
@given(where=paths)
def test_config_paths_round_trip_into_kong_conf_and_env_or_are_refused(where: str) -> None:
    m, _ = base()
    files = render.Files(pg_dir="/p", kong_dir=where)
    try:
        conf = render.render_kong(m, files)
        env = render.render_kong_env(m, files)
        libpq = render.render_libpq(m, files)
    except InputError as exc:
        refused_in_one_line(exc)
        return
    want = [("pg_ssl", "on"), ("pg_ssl_required", "on"), ("pg_ssl_verify", "on"), ("pg_ssl_version", "tlsv1_2"),
            ("pg_ssl_cert", posixpath.join(where, "client.crt")), ("pg_ssl_cert_key", posixpath.join(where, "client.key")),
            ("lua_ssl_trusted_certificate", "system," + posixpath.join(where, "chain.crt")),
            ("lua_ssl_verify_depth", "1")]
    assert kong_settings(conf) == want
    assert env_settings(env) == [(f"KONG_{k.upper()}", v) for k, v in want]
    assert dict(conninfo(libpq))["sslcert"] == posixpath.join(where, "client.crt")


# ------------------------------------------------------------------ a few through the CLI

def one_error_line(result: object) -> None:
    from click.testing import Result

    assert isinstance(result, Result)
    assert result.exit_code in (1, 2), (result.exit_code, result.output)
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    if result.exit_code == 1:
        assert result.stderr.splitlines() == errors


@CLI
@given(host=hosts, user=text_with())
def test_init_through_the_cli_round_trips_or_refuses_in_one_line(host: str, user: str, tmp_path: Path) -> None:
    out = tmp_path / f"pki-{os.urandom(4).hex()}"
    result = CliRunner().invoke(main, ["init", "--chain", "root", "--out", str(out), "--db-host", host,
                                       "--db-user", user, "--json"])
    if result.exit_code != 0:
        one_error_line(result)
        assert not out.exists()
        return
    hba = CliRunner().invoke(main, ["render", "hba", "--dir", str(out)])
    assert hba.exit_code == 0, hba.output
    check_hba(hba.stdout, user, "cert", mapped=False)


@CLI
@given(name=text_with("../../escape", "../escape", "/tmp/escape", "escape/..", "..\x00"))
def test_issue_names_never_write_outside_the_dir(name: str, tmp_path: Path) -> None:
    pki_dir = tmp_path / "pki"
    if not pki_dir.exists():
        assert CliRunner().invoke(main, ["init", "--chain", "root", "--out", str(pki_dir)]).exit_code == 0
    before = set(tmp_path.iterdir())
    result = CliRunner().invoke(main, ["issue", "client", "--dir", str(pki_dir), "--name", name])
    assert set(tmp_path.iterdir()) == before
    if result.exit_code != 0:
        one_error_line(result)
        return
    assert (pki_dir / f"{name}.crt").is_file() and (pki_dir / f"{name}.crt").parent == pki_dir
