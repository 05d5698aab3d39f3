"""CLI tests for `issue`, `renew`, `revoke`, `crl`, `status`: exit codes, exact messages, streams.

Every refusal must be one `Error:` line and leave the directory (and its
parent: nothing written outside --dir) byte for byte as it was.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click
import pytest

from pgkongtls import cli_lifecycle, cli_status, lifecycle, ops
from pgkongtls.manifest import MANIFEST_NAME
from pgkongtls.pki import InitOptions

from .clirun import ok, run
from .test_fsio import snapshot

pytestmark = pytest.mark.usefixtures("in_tmp")


@pytest.fixture
def pki(cli_pki: Path) -> Path:
    return cli_pki


def ago(*, days: int, hours: int = 0) -> dt.datetime:
    """A clock in the past, for minting; whole seconds like certs.utcnow()."""
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(days=days, hours=hours)


def manifest(d: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((d / MANIFEST_NAME).read_text())


def refused(tmp_path: Path, args: list[str], message: str) -> None:
    """One exact Error line, exit 1, and nothing changed anywhere under tmp_path."""
    before = snapshot(tmp_path)
    r = run(*args)
    assert (r.exit_code, r.stderr, r.stdout) == (1, f"Error: {message}\n", "")
    assert snapshot(tmp_path) == before


def test_cli_defaults_are_the_librarys() -> None:
    def default(cmd: click.Command, name: str) -> object:
        return next(p for p in cmd.params if p.name == name).default

    assert default(cli_lifecycle.revoke, "crl_days") == default(cli_lifecycle.crl, "crl_days") == lifecycle.DEFAULT_CRL_DAYS
    assert default(cli_status.status, "warn_days") == lifecycle.DEFAULT_WARN_DAYS
    reason = next(p for p in cli_lifecycle.revoke.params if p.name == "reason")
    assert tuple(reason.type.choices) == tuple(lifecycle.REASONS)  # type: ignore[attr-defined]


# ---------------------------------------------------------------- issue

def test_issue_three_node_clients_then_render_a_regex_map(pki: Path) -> None:
    r = ok("issue", "client", "--name", "kong-node-1", "--name", "kong-node-2", "--name", "kong-node-3", "--cn", "{name}")
    assert r.stdout == ""
    assert "issued in pki" in r.stderr and "kong-node-3" in r.stderr
    assert ("next: pgkongtls bundle postgres --dir pki --out pki-db-bundle --force; then, on the database host, "
            "the pgkongtls install command it prints\n") in r.stderr
    ident = ok("render", "ident").stdout
    assert "pgkongtls /^kong-node-[0-9]+$ kong\n" in ident
    assert "hostssl all kong all cert map=pgkongtls\n" in ok("render", "hba").stdout
    assert {n: c["cn"] for n, c in manifest(pki)["certificates"].items() if n.startswith("kong-node")} == {
        "kong-node-1": "kong-node-1", "kong-node-2": "kong-node-2", "kong-node-3": "kong-node-3"}


def test_issue_a_fleet_summarises_instead_of_listing(pki: Path) -> None:
    names = [a for i in range(25) for a in ("--name", f"n{i}")]
    r = ok("issue", "client", *names)
    assert "… 5 more" in r.stderr
    assert len([n for n in manifest(pki)["certificates"] if n.startswith("n")]) == 25


def test_issue_server_for_a_replica(pki: Path) -> None:
    r = ok("issue", "server", "--name", "replica-1", "--db-host", "replica1.internal", "--db-host", "10.0.0.6")
    assert "SAN: replica1.internal, 10.0.0.6" in r.stderr
    assert ("next: pgkongtls bundle postgres --dir pki --server replica-1 --out pki-replica-1-bundle --force; "
            "then, on that server, the pgkongtls install command it prints\n") in r.stderr
    assert "ssl_cert_file = '/etc/postgresql/pgkongtls/replica-1.crt'" in ok(  # never the PKI directory
        "render", "postgres", "--server", "replica-1").stdout


def test_issue_existing_name_without_force(pki: Path, tmp_path: Path) -> None:
    ok("issue", "client", "--name", "kong-node-1")
    refused(tmp_path, ["issue", "client", "--name", "kong-node-1"],
            "kong-node-1 already exists in this PKI; pass --force to replace it, or renew it")


def test_issue_force_replaces(pki: Path) -> None:
    ok("issue", "client", "--name", "kong-node-1")
    old = manifest(pki)["certificates"]["kong-node-1"]["serial"]
    ok("issue", "client", "--name", "kong-node-1", "--force")
    assert manifest(pki)["certificates"]["kong-node-1"]["serial"] != old
    assert (pki / f"kong-node-1.crt.{old}.bak").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--name", "../evil"], "invalid --name '../evil': use 1 to 63 letters, digits, '.', '_' or '-', "
                            "starting with a letter or digit"),
    (["--name", "/tmp/evil"], "invalid --name '/tmp/evil': use 1 to 63 letters, digits, '.', '_' or '-', "
                              "starting with a letter or digit"),
    (["--name", "chain"], "--name 'chain' is reserved for pgkongtls' own files; choose another --name"),
    (["--name", "server"], "server is a server certificate; choose another --name"),
    (["--name", "n1", "--cn", "/^kong"], "invalid --cn '/^kong': pg_ident.conf would read a leading '/' as a "
                                         "regular expression"),
    (["--name", "n1", "--cn", "kong\nhost all all all trust"],
     "invalid --cn 'kong\\nhost all all all trust': spaces, quotes, commas, # and control characters are not allowed"),
    (["--name", "n1", "--days", "4000"],
     "--days 4000 outlives the intermediate CA (it expires {inter}); use --days 1815 or less"),
    (["--name", "n1", "--name", "n1"], "--name n1 is given twice"),
])
def test_issue_client_bad_input(tmp_path: Path, args: list[str], message: str) -> None:
    ops.init(tmp_path / "pki", InitOptions(), now=ago(days=10, hours=-12))  # the intermediate has 1815.5 days left
    inter = manifest(tmp_path / "pki")["certificates"]["intermediate"]["not_after"]
    refused(tmp_path, ["issue", "client", *args], message.format(inter=inter[:10]))


def test_issue_server_bad_host(pki: Path, tmp_path: Path) -> None:
    refused(tmp_path, ["issue", "server", "--name", "r1", "--db-host", "bad_host"],
            "invalid host 'bad_host': not a valid DNS name or IP address")


def test_issue_on_a_self_signed_pki(tmp_path: Path) -> None:
    ok("self-signed", "--test", "--out", "t")
    refused(tmp_path, ["issue", "client", "--dir", "t", "--name", "n1"],
            "this is a self-signed test PKI: it has no CA to sign with; create one with pgkongtls init")


def test_issue_without_a_pki(tmp_path: Path) -> None:
    refused(tmp_path, ["issue", "client", "--name", "n1"],
            f"{tmp_path / 'pki'} does not exist; create a PKI with pgkongtls init --out {tmp_path / 'pki'}")


def test_issue_with_a_hand_edited_file(pki: Path, tmp_path: Path) -> None:
    (pki / "client.crt").write_bytes((pki / "server.crt").read_bytes())
    refused(tmp_path, ["issue", "client", "--name", "n1"],
            "client.crt differs from what pgkongtls.json recorded (edited by hand?); restore the file pgkongtls wrote")


# ---------------------------------------------------------------- renew

def test_renew_server_keeps_the_rendered_config(pki: Path) -> None:
    before = ok("render", "postgres").stdout, ok("render", "kong").stdout
    old = manifest(pki)["certificates"]["server"]["serial"]
    r = ok("renew", "server")
    assert "renewed in pki" in r.stderr
    assert "next: pgkongtls bundle postgres --dir pki --out pki-db-bundle --force; then, on the database host" in r.stderr
    assert manifest(pki)["certificates"]["server"]["serial"] != old
    assert (pki / f"server.crt.{old}.bak").exists() and (pki / f"server.key.{old}.bak").exists()
    assert (ok("render", "postgres").stdout, ok("render", "kong").stdout) == before


def test_renew_expiring_within_with_nothing_due(pki: Path, tmp_path: Path) -> None:
    before = snapshot(tmp_path)
    r = ok("renew", "--expiring-within", "30d")
    assert r.stderr == "nothing expires within 30d; nothing renewed\n"
    assert snapshot(tmp_path) == before


def test_renew_expiring_within_renews_what_is_due(tmp_path: Path) -> None:
    ops.init(tmp_path / "old", InitOptions(), now=ago(days=350, hours=-1))
    r = ok("renew", "--dir", "old", "--expiring-within", "30d")
    assert "client" in r.stderr and "server" in r.stderr and "(it ends with kong restart)" in r.stderr
    assert run("status", "--dir", "old").exit_code == 0


@pytest.mark.parametrize(("args", "message"), [
    ([], "name the certificates to renew, or pass --expiring-within 30d (not both)"),
    (["server", "--expiring-within", "30d"], "name the certificates to renew, or pass --expiring-within 30d (not both)"),
    (["nope"], "no certificate named 'nope' in this PKI; pgkongtls status lists them"),
    (["root", "--reuse-key"], "root is a CA; renew it on its own, without --reuse-key (it always keeps its key): "
                              "pgkongtls renew --dir PKI root"),
    (["root", "server"], "root is a CA; renew it on its own, without --reuse-key (it always keeps its key): "
                         "pgkongtls renew --dir PKI root"),
    (["--expiring-within", "soon"],
     "invalid --expiring-within 'soon': use a number and a unit, like 30d (h hours, d days, w weeks)"),
    (["--expiring-within", "30"], "--expiring-within 30 has no unit; write 30d for days (or h hours, w weeks)"),
])
def test_renew_bad_input(pki: Path, tmp_path: Path, args: list[str], message: str) -> None:
    refused(tmp_path, ["renew", *args], message)


# ---------------------------------------------------------------- revoke and crl

def test_revoke_writes_crl_and_render_postgres_picks_it_up(pki: Path) -> None:
    ok("issue", "client", "--name", "kong-node-1", "--name", "kong-node-2", "--cn", "{name}")
    assert "ssl_crl_file" not in ok("render", "postgres").stdout
    r = ok("revoke", "kong-node-2", "--reason", "keyCompromise")
    assert "wrote pki/crl.pem: CRLs of the intermediate and root CA, next update" in r.stderr
    data = manifest(pki)
    assert data["certificates"]["kong-node-2"]["revocation_reason"] == "keyCompromise"
    assert data["crl_file"] == "crl.pem"
    assert "ssl_crl_file = '/etc/postgresql/pgkongtls/crl.pem'\n" in ok("render", "postgres").stdout
    assert (pki / "crl.pem").read_bytes().count(b"-----BEGIN X509 CRL-----") == 2


def test_revoking_a_server_certificate_says_kong_will_not_notice(pki: Path) -> None:
    r = ok("revoke", "server")
    assert ("note: Kong never checks a CRL for the database's certificate (libpq only with sslcrl=); "
            "replace server on the database host: pgkongtls renew --dir pki server") in r.stderr
    assert "note:" not in ok("revoke", "client").stderr


def test_status_of_a_self_signed_pki(tmp_path: Path) -> None:
    ok("self-signed", "--test", "--out", "t")
    data = json.loads(ok("status", "--dir", "t", "--json").stdout)
    assert [(c["name"], c["issuer"], c["state"]) for c in data["certificates"]] == [
        ("server", None, "valid"), ("client", None, "valid")]


def test_revoke_twice(pki: Path, tmp_path: Path) -> None:
    ok("revoke", "client")
    since = manifest(pki)["certificates"]["client"]["revoked"][:10]
    refused(tmp_path, ["revoke", "client"], f"client is already revoked (since {since}); pgkongtls crl re-signs the CRL")


@pytest.mark.parametrize(("args", "message"), [
    (["nope"], "no certificate named 'nope' in this PKI; pgkongtls status lists them"),
    (["intermediate"], "intermediate is a CA; revoke works on server and client certificates; to replace a CA "
                       "re-create the PKI with pgkongtls init --force"),
])
def test_revoke_bad_input(pki: Path, tmp_path: Path, args: list[str], message: str) -> None:
    refused(tmp_path, ["revoke", *args], message)


@pytest.mark.parametrize("value", ["0", "3651", "-1"])
def test_revoke_crl_days_out_of_range_is_a_usage_error(pki: Path, tmp_path: Path, value: str) -> None:
    before = snapshot(tmp_path)
    r = run("revoke", "client", "--crl-days", value)
    assert (r.exit_code, r.stderr) == (2, f"Error: Invalid value for '--crl-days': {value} is not in the range "
                                          "1<=x<=3650. See 'pgkongtls revoke --help'.\n")
    assert snapshot(tmp_path) == before


def test_revoke_bad_reason_is_a_usage_error(pki: Path, tmp_path: Path) -> None:
    before = snapshot(tmp_path)
    r = run("revoke", "client", "--reason", "bored")
    assert r.exit_code == 2 and "Invalid value for '--reason'" in r.stderr
    assert snapshot(tmp_path) == before


def test_crl_refresh_without_revoking(pki: Path) -> None:
    r = ok("crl", "--crl-days", "120")
    assert "next update" in r.stderr
    data = manifest(pki)
    assert data["crl_file"] == "crl.pem" and all(not c["revoked"] for c in data["certificates"].values())
    assert ok("status").stderr.count("crl.pem") == 1


# ---------------------------------------------------------------- status

def test_status_table_on_stderr_and_exit_0(pki: Path) -> None:
    r = ok("status")
    assert r.stdout == ""
    for text in ("root", "intermediate", "server", "client", "SAN: localhost", "valid",
                 "nothing expires within 30 days"):
        assert text in r.stderr


def test_status_json_on_stdout_only(pki: Path) -> None:
    r = ok("status", "--json")
    assert r.stderr == ""
    data = json.loads(r.stdout)
    assert data["exit_code"] == 0 and data["warn_days"] == 30
    assert [c["name"] for c in data["certificates"]] == ["root", "intermediate", "server", "client"]


def test_status_warns_about_expiring_certificates(tmp_path: Path) -> None:
    ops.init(tmp_path / "old", InitOptions(), now=ago(days=350, hours=-1))
    r = run("status", "--dir", "old")
    assert r.exit_code == 0
    assert "warning: server expires in 15 days" in r.stderr and "pgkongtls renew --dir old server" in r.stderr
    assert "expiring" in r.stderr
    assert "warning" not in run("status", "--dir", "old", "--warn-days", "7").stderr


def test_status_exits_3_when_a_certificate_expired(tmp_path: Path) -> None:
    ops.init(tmp_path / "old", InitOptions(), now=ago(days=400))
    r = run("status", "--dir", "old")
    assert r.exit_code == 3
    assert "EXPIRED: server expired on" in r.stderr and "EXPIRED: client expired on" in r.stderr
    j = run("status", "--dir", "old", "--json")
    assert j.exit_code == 3 and json.loads(j.stdout)["expired"] == ["server", "client"]
    ok("renew", "--dir", "old", "server", "client")
    assert run("status", "--dir", "old").exit_code == 0


def test_status_json_round_trips(pki: Path) -> None:
    data = json.loads(json.dumps(json.loads(ok("status", "--json").stdout)))
    assert data["exit_code"] == 0 and data["crl"] is None and data["notices"] == [] and data["expired"] == []
    row = data["certificates"][2]
    assert (row["name"], row["sans"], row["issuer"], row["serial"]) == (
        "server", ["localhost"], "intermediate", manifest(pki)["certificates"]["server"]["serial"])


def test_status_words_each_remedy_as_a_command(tmp_path: Path) -> None:
    """The library says which remedy; the CLI prints the command, on the terminal and in --json alike."""
    ops.init(tmp_path / "old", InitOptions(), now=ago(days=1810))  # the intermediate has 15 days left
    ops.refresh_crl(tmp_path / "old", crl_days=40, now=ago(days=30))
    r = run("status", "--dir", "old", "--json")
    assert r.exit_code == cli_status.EXIT_EXPIRED == 3
    notices = {n["name"]: n for n in json.loads(r.stdout)["notices"]}
    assert notices["server"]["message"].endswith("; pgkongtls renew --dir old server")
    assert notices["intermediate"]["message"].endswith(
        "; pgkongtls renew --dir old intermediate (same key: only chain.crt changes on the hosts), "
        "or pgkongtls rotate --dir old begin (new keys)")
    assert notices["crl.pem"]["message"].endswith(
        ": then PostgreSQL refuses every client certificate; pgkongtls crl --dir old, copy crl.pem to the database "
        "and reload it")
    table = run("status", "--dir", "old").stderr
    for n in notices.values():
        assert n["message"] in " ".join(table.split())


def test_status_of_a_missing_pki_is_exit_1(tmp_path: Path) -> None:
    refused(tmp_path, ["status", "--dir", "nowhere"], "nowhere does not exist; create a PKI with pgkongtls init --out nowhere")


def test_status_help_documents_the_exit_codes() -> None:
    out = ok("status", "--help").stdout
    assert "3  a certificate in service, or the CRL, has expired" in out
    assert "1  error" in out


# ---------------------------------------------------------------- --ca-passphrase-file

@pytest.fixture
def locked(tmp_path: Path) -> Path:
    (tmp_path / "phrase").write_text("correct horse battery\n")
    ok("init", "--out", "locked", "--ca-passphrase-file", "phrase")
    return tmp_path / "locked"


def test_init_with_a_passphrase_encrypts_only_the_ca_keys(locked: Path) -> None:
    assert (locked / "root.key").read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert (locked / "intermediate.key").read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert (locked / "server.key").read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert (locked / "client.key").read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")


def test_every_signing_command_takes_the_passphrase(locked: Path) -> None:
    """Each signing command succeeds with the passphrase, does what it says, and leaves the CA keys as they were."""
    ca_keys = {n: (locked / n).read_bytes() for n in ("root.key", "intermediate.key")}
    serials = []
    for args in (["issue", "client", "--name", "n1"], ["issue", "server", "--name", "r1", "--db-host", "r1.internal"],
                 ["renew", "n1"], ["revoke", "n1"], ["crl"]):
        ok(*args, "--dir", "locked", "--ca-passphrase-file", "phrase")
        m = json.loads((locked / MANIFEST_NAME).read_text())
        serials.append(m["certificates"]["n1"]["serial"])
    assert serials[0] == serials[1] != serials[2] == serials[3] == serials[4]  # only renew re-issued n1
    assert m["certificates"]["r1"]["role"] == "server"
    assert m["certificates"]["n1"]["revoked"] is not None and m["crl_file"] == "crl.pem"
    assert (locked / "crl.pem").read_bytes().startswith(b"-----BEGIN X509 CRL-----")
    assert {n: (locked / n).read_bytes() for n in ca_keys} == ca_keys
    assert (locked / "n1.key").read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")


@pytest.mark.parametrize(("extra", "message"), [
    ([], "intermediate.key is encrypted; pass --ca-passphrase-file"),
    (["--ca-passphrase-file", "wrong"], "wrong CA passphrase for intermediate.key; check --ca-passphrase-file"),
    (["--ca-passphrase-file", "empty"], "--ca-passphrase-file empty is empty; write the CA passphrase into it"),
    (["--ca-passphrase-file", "missing"], "cannot read --ca-passphrase-file missing: No such file or directory"),
])
def test_a_wrong_or_missing_passphrase(locked: Path, tmp_path: Path, extra: list[str], message: str) -> None:
    (tmp_path / "wrong").write_text("incorrect horse\n")
    (tmp_path / "empty").write_text("")
    for name in ("wrong", "empty"):
        (tmp_path / name).chmod(0o600)  # a readable one adds a Warning line (tests/test_kdf.py)
    refused(tmp_path, ["issue", "client", "--dir", "locked", "--name", "n1", *extra], message)


def test_init_with_an_empty_passphrase_file_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n")
    (tmp_path / "empty").chmod(0o600)
    refused(tmp_path, ["init", "--out", "pki", "--ca-passphrase-file", "empty"],
            "--ca-passphrase-file empty is empty; write the CA passphrase into it")


def test_a_passphrase_for_plain_keys(pki: Path, tmp_path: Path) -> None:
    (tmp_path / "phrase").write_text("x\n")
    (tmp_path / "phrase").chmod(0o600)
    refused(tmp_path, ["crl", "--ca-passphrase-file", "phrase"], "root.key is not encrypted; drop --ca-passphrase-file")


def test_the_whole_day_2_walk_through(tmp_path: Path) -> None:
    """init → three nodes → revoke one → renew it → status, each step leaving a loadable PKI."""
    ok("init", "--out", "pki", "--db-host", "db.internal")
    ok("issue", "client", "--name", "kong-node-1", "--name", "kong-node-2", "--name", "kong-node-3", "--cn", "{name}")
    ok("revoke", "kong-node-2", "--reason", "keyCompromise")
    ok("renew", "kong-node-2")
    data = json.loads(ok("status", "--json").stdout)
    states = {c["name"]: c["state"] for c in data["certificates"]}
    revoked = [n for n, s in states.items() if s == "revoked"]
    assert len(revoked) == 1 and revoked[0].startswith("kong-node-2@")
    assert states["kong-node-2"] == "valid" and data["crl"]["state"] == "valid"
