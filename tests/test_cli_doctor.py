"""CLI tests for `verify` and `probe`: exit codes, streams, and one exact line for every bad input."""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import Result

from pgkongtls import ops
from pgkongtls.certs import utcnow
from pgkongtls.pki import InitOptions

from .clirun import run
from .openssl_procedure import run_source_procedure


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    now = utcnow()  # the clock of this fixture's PKI, read when it is minted
    d = tmp_path_factory.mktemp("tpl") / "pki"
    ops.init(d, InitOptions(), now=now)
    return d


@pytest.fixture
def pki(template: Path, tmp_path: Path) -> Path:
    d = tmp_path / "pki"
    shutil.copytree(template, d)
    return d


@pytest.fixture(scope="module")
def source_doc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("doc") / "openssl"
    run_source_procedure(d, "intermediate")
    return d


def one_error_line(r: Result, text: str) -> None:
    """Exit 1, nothing on stdout, exactly `Error: text` on stderr, no traceback."""
    assert r.exit_code == 1, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert r.stdout == ""
    assert r.stderr == f"Error: {text}\n"


def test_verify_clean_pki_exits_0(pki: Path) -> None:
    r = run("verify", str(pki))
    assert r.exit_code == 0 and r.stdout == ""
    assert r.stderr == f"verify: no problems found in {pki}\n"
    r = run("verify", str(pki), "--json")
    assert r.exit_code == 0 and json.loads(r.stdout) == []


def test_verify_source_document_json_and_table(source_doc: Path) -> None:
    r = run("verify", str(source_doc), "--json")
    assert r.exit_code == 1
    found = json.loads(r.stdout)
    assert {(f["id"], Path(f["file"]).name) for f in found if f["severity"] == "error"} == {
        ("ca-key-usage", "root.crt"), ("ca-key-usage", "intermediate.crt"),
        ("chain-strict", "server.crt"), ("chain-strict", "client.crt")}
    assert set(found[0]) == {"id", "severity", "file", "message", "fix"}
    assert r.stderr == ""  # --json: the JSON on stdout and no table on stderr
    table = run("verify", str(source_doc))
    assert table.exit_code == 1 and table.stdout == ""
    assert "ca-key-usage" in table.stderr and table.stderr.endswith("\n4 error(s), 5 warning(s)\n")


def test_verify_warnings_only_exit_0(source_doc: Path, tmp_path: Path) -> None:
    """A self-signed pair from the document has warnings but no error."""
    d = tmp_path / "ss"
    run_source_procedure(d, "self-signed")
    r = run("verify", str(d))
    assert r.exit_code == 0 and "0 error(s), 5 warning(s)" in r.stderr


#: The PKI shapes the README says verify finds nothing wrong with, with render all's kong.conf and pg_hba.conf.
SHAPES = {"init": ["init"], "init --chain root": ["init", "--chain", "root"], "self-signed --test": ["self-signed", "--test"]}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_verify_of_each_shape_with_render_all_kong_conf_and_pg_hba_has_no_findings(shape: str, tmp_path: Path) -> None:
    """render all's kong.conf and pg_hba.conf agree with the PKI (postgresql.conf: see below)."""
    pki, out = tmp_path / "pki", tmp_path / "conf"
    assert run(*SHAPES[shape], "--out", str(pki)).exit_code == 0
    assert run("render", "all", "--dir", str(pki), "--write", str(out)).exit_code == 0
    me = pwd.getpwuid(os.getuid()).pw_name  # the files' own user, so the key is readable whatever the host has
    r = run("verify", str(pki), "--kong-conf", str(out / "kong.conf.snippet"), "--pg-hba",
            str(out / "pg_hba.conf.snippet"), "--kong-os-user", me, "--json")
    assert r.exit_code == 0, r.stderr
    assert [f["id"] for f in json.loads(r.stdout)] == ["kong-trust-system"]  # render kong keeps Kong's default


def test_verify_of_render_all_kong_conf_on_oss_reports_only_the_enterprise_keys(pki: Path, tmp_path: Path) -> None:
    out = tmp_path / "conf"
    assert run("render", "all", "--dir", str(pki), "--write", str(out)).exit_code == 0
    r = run("verify", str(pki), "--kong-conf", str(out / "kong.conf.snippet"), "--edition", "oss", "--json")
    assert r.exit_code == 1
    assert {f["id"] for f in json.loads(r.stdout)} == {"kong-enterprise-key", "kong-trust-system"}


def _as_root_with_postgres() -> int:
    """The postgres group id, when this test runs as root on a machine with a postgres account."""
    if os.geteuid() != 0:
        pytest.skip("the key belongs to whoever ran init; as root the rule and its fix are known exactly")
    try:
        pwd.getpwnam("postgres")
        return grp.getgrnam("postgres").gr_gid
    except KeyError:
        pytest.skip("no postgres account on this machine")


def _render_all_args(pki: Path, out: Path) -> list[str]:
    assert run("render", "all", "--dir", str(pki), "--write", str(out)).exit_code == 0
    return ["verify", str(pki), "--kong-conf", str(out / "kong.conf.snippet"), "--pg-hba",
            str(out / "pg_hba.conf.snippet"), "--postgresql-conf", str(out / "postgresql.conf.snippet"), "--json",
            "--kong-os-user", pwd.getpwuid(os.getuid()).pw_name]  # Kong's own key access: tests/test_verify_kong_policy.py


def test_verify_of_render_all_postgresql_conf_pointing_at_the_pki_finds_what_postgres_cannot_read(
    pki: Path, tmp_path: Path,
) -> None:
    """render postgres --pg-dir <the PKI> (no longer the default): the PKI directory is 0700 and init (run as
    root here) leaves the key root:root 0600, so PostgreSQL can neither enter the directory nor read the key.
    Both are findings, the only errors, and their fixes satisfy PostgreSQL (checked afterwards)."""
    pg_gid = _as_root_with_postgres()
    base = Path(tempfile.mkdtemp(prefix="pgkongtls-doctor-"))
    try:
        os.chmod(base, 0o755)  # pytest's own tmp is 0700: the first directory postgres cannot enter is the PKI's
        shutil.copytree(pki, base / "pki")
        pki, out = base / "pki", tmp_path / "conf"
        assert run("render", "all", "--dir", str(pki), "--pg-dir", str(pki), "--write", str(out)).exit_code == 0
        r = run("verify", str(pki), "--kong-conf", str(out / "kong.conf.snippet"), "--pg-hba",
                str(out / "pg_hba.conf.snippet"), "--postgresql-conf", str(out / "postgresql.conf.snippet"), "--json",
                "--kong-os-user", pwd.getpwuid(os.getuid()).pw_name)
        assert r.exit_code == 1
        key = pki / "server.key"
        found = json.loads(r.stdout)
        assert sorted((f["id"], f["file"], f["fix"]) for f in found if f["severity"] == "error") == [
            ("key-mode", str(key), f"chown root:postgres {key} && chmod 0640 {key}"),
            ("key-unreachable", str(key), f"chmod o+x {pki}, or install the files with pgkongtls bundle + install")]
        os.chown(key, 0, pg_gid)  # the fixes, as they say
        os.chmod(key, 0o640)
        os.chmod(pki, 0o701)
        r = run("verify", "--postgresql-conf", str(out / "postgresql.conf.snippet"), "--json")
        assert r.exit_code == 0, r.stderr
        assert json.loads(r.stdout) == []
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _pki_served_in_place(pki: Path, base: Path, out: Path) -> Path:
    """A copy of the PKI that PostgreSQL reads in place (render all --pg-dir <the PKI>), with verify's fixes applied."""
    pg_gid = _as_root_with_postgres()
    os.chmod(base, 0o755)
    shutil.copytree(pki, base / "pki")
    pki = base / "pki"
    assert run("render", "all", "--dir", str(pki), "--pg-dir", str(pki), "--write", str(out)).exit_code == 0
    os.chown(pki / "server.key", 0, pg_gid)
    os.chmod(pki / "server.key", 0o640)
    os.chmod(pki, 0o701)
    return pki


def _verify_args(pki: Path, out: Path, *, kong: bool = True) -> list[str]:
    return ["verify", str(pki), *(["--kong-conf", str(out / "kong.conf.snippet")] if kong else []),
            "--pg-hba", str(out / "pg_hba.conf.snippet"), "--postgresql-conf", str(out / "postgresql.conf.snippet"),
            "--json", "--kong-os-user", pwd.getpwuid(os.getuid()).pw_name]


def test_verify_of_render_all_has_no_findings_once_the_named_fix_is_applied(pki: Path, tmp_path: Path) -> None:
    """PostgreSQL reads server.key in place: its rule (root:postgres 0640) judges the key, not the PKI's 0600,
    so the PKI directory and the configs together give no error once PostgreSQL's fixes are applied."""
    base = Path(tempfile.mkdtemp(prefix="pgkongtls-doctor-"))
    try:
        served = _pki_served_in_place(pki, base, tmp_path / "conf")
        r = run(*_verify_args(served, tmp_path / "conf"))
        assert [f for f in json.loads(r.stdout) if f["severity"] == "error"] == [], r.stdout
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_verify_still_refuses_a_group_readable_key_that_no_config_reads(pki: Path, tmp_path: Path) -> None:
    """Twin: the same 0640 on client.key, which no given config reads (no --kong-conf), is the PKI's finding."""
    base = Path(tempfile.mkdtemp(prefix="pgkongtls-doctor-"))
    try:
        served = _pki_served_in_place(pki, base, tmp_path / "conf")
        os.chmod(served / "client.key", 0o640)
        r = run(*_verify_args(served, tmp_path / "conf", kong=False))
        errors = [(f["id"], f["file"], f["fix"]) for f in json.loads(r.stdout) if f["severity"] == "error"]
        assert errors == [("key-mode", str(served / "client.key"), f"chmod 0600 {served / 'client.key'}")], r.stdout
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _der(pem: Path) -> bytes:
    return subprocess.run(["openssl", "x509", "-in", str(pem), "-outform", "der"], capture_output=True,
                          check=True).stdout


@pytest.mark.parametrize(("name", "damage", "message"), [
    ("server.crt", lambda d: (d / "server.crt").read_bytes()[:300],
     "{d}/server.crt has a truncated PEM certificate (BEGIN and END do not pair up); copy it again"),
    ("server.crt", lambda d: _der(d / "server.crt"),
     "{d}/server.crt is DER, not PEM; convert it: openssl x509 -inform der -in {d}/server.crt -out "
     "{d}/server.crt.pem"),
    ("client.crt", lambda d: (d / "client.key").read_bytes(),
     "{d}/client.crt holds a private key where a certificate should be; point it at the .crt file"),
    ("root.crt", lambda d: b"", "{d}/root.crt is empty; restore it or re-create it"),
    ("server.key", lambda d: (d / "server.crt").read_bytes(),
     "{d}/server.key holds a certificate where a private key should be; point it at the .key file"),
    ("client.key", lambda d: (d / "client.key").read_bytes()[:120],
     "{d}/client.key has a truncated PEM private key (BEGIN and END do not pair up); copy it again"),
])
def test_verify_malformed_files_give_one_line(pki: Path, source_doc: Path, tmp_path: Path, name: str,
                                              damage: object, message: str) -> None:
    bare = tmp_path / "bare"
    shutil.copytree(source_doc, bare)
    for d in (pki, bare):
        (d / name).write_bytes(damage(d))  # type: ignore[operator]
        one_error_line(run("verify", str(d)), message.format(d=d))


@pytest.mark.parametrize(("edit", "message"), [
    (lambda m: m.pop("hosts"), "pgkongtls.json: manifest is missing 'hosts'; re-create it with pgkongtls init --force"),
    (lambda m: m.update(bundle="yes"),
     "pgkongtls.json: manifest.bundle has the wrong type; re-create it with pgkongtls init --force"),
    (lambda m: m["certificates"]["server"].pop("file"),
     "pgkongtls.json: certificates.server is missing 'file'; re-create it with pgkongtls init --force"),
])
def test_verify_broken_manifest_gives_one_line(pki: Path, edit: object, message: str) -> None:
    data = json.loads((pki / "pgkongtls.json").read_text())
    edit(data)  # type: ignore[operator]
    (pki / "pgkongtls.json").write_text(json.dumps(data))
    one_error_line(run("verify", str(pki)), message)


def test_verify_truncated_manifest(pki: Path) -> None:
    (pki / "pgkongtls.json").write_text((pki / "pgkongtls.json").read_text()[:50])
    one_error_line(run("verify", str(pki)), "pgkongtls.json is not valid JSON; re-create it with pgkongtls init --force")


def test_verify_needs_something(tmp_path: Path) -> None:
    one_error_line(run("verify"),
                   "nothing to verify; pass a PKI directory and/or --postgresql-conf, --pg-hba, --kong-conf")
    one_error_line(run("verify", str(tmp_path)),
                   f"{tmp_path} holds neither pgkongtls.json nor the source document's files (root.crt, server.crt, "
                   "client.crt, ...); pass a PKI directory")
    one_error_line(run("verify", "--kong-conf", str(tmp_path / "kong.conf")),
                   f"{tmp_path / 'kong.conf'} does not exist; pass the path of the config file")
    one_error_line(run("verify", str(tmp_path / "nope")), f"{tmp_path / 'nope'} does not exist; pass the PKI directory")
    (tmp_path / "afile").write_text("x")
    one_error_line(run("verify", str(tmp_path / "afile")), f"{tmp_path / 'afile'} is not a directory; pass the PKI directory")


def test_verify_malformed_configs(tmp_path: Path) -> None:
    pg = tmp_path / "postgresql.conf"
    pg.write_text("ssl = on\nssl_cert_file = '/x\n")
    one_error_line(run("verify", "--postgresql-conf", str(pg)), f"{pg} line 2: unterminated quoted string")
    hba = tmp_path / "pg_hba.conf"
    hba.write_text("hostssl all all cert\n")
    one_error_line(run("verify", "--pg-hba", str(hba)), f"{hba} line 1: too few fields for a hostssl record")
    kong = tmp_path / "kong.conf"
    kong.write_text("pg_ssl on\n")
    one_error_line(run("verify", "--kong-conf", str(kong)), f"{kong} line 1: expected key = value")


# --------------------------------------------------------------------------- probe (no server needed)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_probe_closed_port_is_one_line() -> None:
    port = closed_port()
    one_error_line(run("probe", f"127.0.0.1:{port}"), f"cannot connect to 127.0.0.1:{port}: Connection refused")


@pytest.fixture
def http_server() -> Iterator[int]:
    """Something that is not PostgreSQL: it answers any bytes with an HTTP error."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            conn.recv(8)
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield int(srv.getsockname()[1])
    t.join(5)
    srv.close()


def test_probe_not_postgres(http_server: int) -> None:
    one_error_line(run("probe", f"127.0.0.1:{http_server}", "--timeout", "2"),
                   f"127.0.0.1:{http_server} answered b'H' to SSLRequest; it is not a PostgreSQL server")


@pytest.mark.parametrize(("args", "message"), [
    (["db:notaport"], "invalid target 'db:notaport'; use HOST[:PORT] with a port from 1 to 65535"),
    (["[::1"], "invalid target '[::1'; use HOST[:PORT] or [IPv6]:PORT"),
    (["db", "--cert", "c.crt"], "--cert and --key go together; pass both"),
    (["db", "--depth", "2"], "--depth needs --ca (the trust file it applies to)"),
    (["db", "--kong-conf", "k.conf", "--ca", "c.crt"],
     "--kong-conf brings its own trust file and depth; drop --ca/--depth or --kong-conf"),
    (["db", "--kong-conf", "k.conf"], "k.conf does not exist; pass the path of kong.conf"),
])
def test_probe_bad_options(args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    one_error_line(run("probe", *args), message)


def test_probe_encrypted_key_and_damaged_cert(pki: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    from pgkongtls.pki import key_pem

    key = serialization.load_pem_private_key((pki / "client.key").read_bytes(), None)
    (pki / "client.key").write_bytes(key_pem(key, b"pw"))  # type: ignore[arg-type]
    one_error_line(run("probe", "db", "--cert", str(pki / "client.crt"), "--key", str(pki / "client.key")),
                   f"{pki}/client.key is encrypted; Kong cannot use an encrypted key, and probe neither")
    one_error_line(run("probe", "db", "--ca", str(pki / "root.key")),
                   f"{pki}/root.key holds a private key where a certificate should be; point it at the .crt file")
