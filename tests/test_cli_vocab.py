"""One vocabulary: --dir, certificate names, option names and their validation mean one thing in every command."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest

from pgkongtls.errors import InputError
from pgkongtls.probe_options import Target, parse_target

from .clirun import command_at, ok, run
from .test_fsio import snapshot
from .test_help import ALL

pytestmark = pytest.mark.usefixtures("in_tmp")


@pytest.fixture
def pki(cli_pki: Path) -> Path:
    return cli_pki


_command = command_at


def _options(path: tuple[str, ...]) -> dict[str, click.Option]:
    return {flag: p for p in _command(path).params if isinstance(p, click.Option) for flag in p.opts}




def test_the_same_option_has_one_type_in_every_command() -> None:
    """--warn-days, --days, --crl-days, --port: one click type each, so one validation and one exit code."""
    seen: dict[str, set[str]] = {}
    for path in ALL:
        for flag, opt in _options(path).items():
            if flag in ("--warn-days", "--days", "--crl-days", "--port", "--dir"):
                seen.setdefault(flag, set()).add(json.dumps(opt.type.to_info_dict(), sort_keys=True))
    assert {flag: len(types) for flag, types in seen.items()} == {
        "--warn-days": 1, "--days": 1, "--crl-days": 1, "--port": 1, "--dir": 1}


def test_every_command_that_reads_or_writes_a_pki_takes_dir() -> None:
    takes_pki = [p for p in ALL if not isinstance(_command(p), click.Group) and p[0] not in ("install", "probe")]
    # a group may own --dir for its phases (`rotate --dir PKI begin`, as issue #14 spells it)
    missing = [" ".join(p) for p in takes_pki if "--dir" not in _options(p) and "--dir" not in _options(p[:-1])]
    assert missing == []


def test_install_and_probe_take_no_pki_dir() -> None:
    """Twin: the rule above is not vacuous; these two work on a bundle and a live server."""
    assert "--dir" not in _options(("install",)) and "--dir" not in _options(("probe",))


@pytest.mark.parametrize("warn", ["-3", "-1", "36501"])
@pytest.mark.parametrize("command", [["status", "--dir", "pki"], ["verify", "pki"]])
def test_warn_days_out_of_range_is_the_same_usage_error_everywhere(pki: Path, command: list[str], warn: str) -> None:
    r = run(*command, "--warn-days", warn)
    assert (r.exit_code, r.stdout) == (2, "")
    assert r.stderr == (f"Error: Invalid value for '--warn-days': {warn} is not in the range 0<=x<=36500. "
                        f"See 'pgkongtls {command[0]} --help'.\n")


@pytest.mark.parametrize("command", [["status", "--dir", "pki"], ["verify", "pki"]])
def test_warn_days_zero_is_accepted_everywhere(pki: Path, command: list[str]) -> None:
    assert run(*command, "--warn-days", "0").exit_code == 0


@pytest.mark.parametrize(("command", "flag"), [
    (["issue", "client", "n1"], "--days"), (["renew", "client"], "--days"), (["init", "--out", "p2"], "--days"),
])
def test_days_zero_is_a_usage_error_in_every_writing_command(pki: Path, tmp_path: Path, command: list[str],
                                                             flag: str) -> None:
    before = snapshot(tmp_path)
    r = run(*command, flag, "0")
    assert r.exit_code == 2 and r.stderr.startswith(f"Error: Invalid value for '{flag}': 0 is not in the range 1<=x")
    assert snapshot(tmp_path) == before


def test_render_port_out_of_range_is_a_usage_error(pki: Path) -> None:
    r = run("render", "jdbc", "--port", "70000")
    assert (r.exit_code, r.stderr) == (2, "Error: Invalid value for '--port': 70000 is not in the range "
                                          "1<=x<=65535. See 'pgkongtls render --help'.\n")
    assert run("render", "jdbc", "--port", "6432").exit_code == 0


def test_verify_takes_the_directory_as_dir_or_argument(pki: Path) -> None:
    as_arg = run("verify", "pki", "--json")
    as_opt = run("verify", "--dir", "pki", "--json")
    assert as_arg.exit_code == as_opt.exit_code == 0
    assert json.loads(as_arg.stdout) == json.loads(as_opt.stdout) == []
    assert run("verify", "pki", "--dir", "pki").exit_code == 0  # the same directory twice is fine


def test_verify_dir_and_argument_that_differ_are_refused(pki: Path) -> None:
    r = run("verify", "pki", "--dir", "other")
    assert (r.exit_code, r.stderr) == (2, "Error: DIRECTORY pki and --dir other differ; pass one of them. "
                                          "See 'pgkongtls verify --help'.\n")


def test_verify_dir_reads_that_directory(pki: Path, tmp_path: Path) -> None:
    """Twin: --dir is not ignored; a directory without a PKI gives findings, not the default's silence."""
    (tmp_path / "empty").mkdir()
    assert run("verify", "--dir", "empty").exit_code == 1


@pytest.mark.parametrize("flag", ["--out", "--dir"])
def test_init_names_its_directory_with_out_or_dir(tmp_path: Path, flag: str) -> None:
    ok("init", flag, "made")
    assert (tmp_path / "made" / "pgkongtls.json").exists()


@pytest.mark.parametrize("args", [["a1", "a2"], ["--name", "a1", "--name", "a2"], ["a1", "--name", "a2"]])
def test_issue_client_takes_names_as_arguments_or_options(pki: Path, args: list[str]) -> None:
    ok("issue", "client", *args, "--cn", "{name}")
    certs = json.loads((pki / "pgkongtls.json").read_text())["certificates"]
    assert {"a1", "a2"} <= set(certs) and certs["a2"]["cn"] == "a2"


def test_issue_client_without_a_name_is_a_usage_error(pki: Path, tmp_path: Path) -> None:
    before = snapshot(tmp_path)
    r = run("issue", "client")
    assert (r.exit_code, r.stderr) == (2, "Error: issue client needs at least one certificate NAME (or --name NAME). "
                                          "See 'pgkongtls issue client --help'.\n")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("args", [["r1"], ["--name", "r1"]])
def test_issue_server_takes_its_name_as_argument_or_option(pki: Path, args: list[str]) -> None:
    ok("issue", "server", *args, "--db-host", "r1.internal")
    assert json.loads((pki / "pgkongtls.json").read_text())["certificates"]["r1"]["sans"] == ["r1.internal"]


def test_issue_server_refuses_two_names(pki: Path, tmp_path: Path) -> None:
    before = snapshot(tmp_path)
    r = run("issue", "server", "r1", "--name", "r2", "--db-host", "r1.internal")
    assert r.exit_code == 2 and "issue server makes one certificate per run" in r.stderr
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("args", [["client"], ["--name", "client"]])
def test_renew_takes_names_as_arguments_or_options(pki: Path, args: list[str]) -> None:
    serial = json.loads((pki / "pgkongtls.json").read_text())["certificates"]["client"]["serial"]
    ok("renew", *args)
    assert json.loads((pki / "pgkongtls.json").read_text())["certificates"]["client"]["serial"] != serial


@pytest.mark.parametrize("args", [["client"], ["--name", "client"]])
def test_revoke_takes_names_as_arguments_or_options(pki: Path, args: list[str]) -> None:
    ok("revoke", *args)
    assert json.loads((pki / "pgkongtls.json").read_text())["certificates"]["client"]["revoked"]


def test_revoke_without_a_name_is_a_usage_error(pki: Path, tmp_path: Path) -> None:
    before = snapshot(tmp_path)
    r = run("revoke")
    assert r.exit_code == 2 and "revoke needs at least one certificate NAME (or --name NAME)" in r.stderr
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(("new", "old"), [("--db-user", "--user"), ("--db-host", "--host")])
def test_render_db_user_and_db_host_keep_their_old_names(pki: Path, new: str, old: str) -> None:
    value = "kong" if new == "--db-user" else "localhost"
    assert ok("render", "libpq", new, value).stdout == ok("render", "libpq", old, value).stdout


def test_render_db_user_is_used(pki: Path) -> None:
    """Twin: the alias carries the value (a different role shows up in the output)."""
    assert "user=app" in ok("render", "libpq", "--db-user", "app").stdout
    assert "user=app" not in ok("render", "libpq").stdout


def test_render_kubernetes_prefix_keeps_name_as_alias(pki: Path) -> None:
    a = ok("render", "kubernetes", "--for", "kong-helm", "--prefix", "pk").stdout
    assert a == ok("render", "kubernetes", "--for", "kong-helm", "--name", "pk").stdout and '"pk-' in a


def test_probe_db_user_and_user_are_one_option() -> None:
    opts = _options(("probe",))
    assert opts["--db-user"] is opts["--user"]


def test_deploy_paths_take_render_names(pki: Path) -> None:
    r = ok("deploy-paths", "--pg-dir", "/srv/pg", "--kong-dir", "/srv/kong")
    assert r.stdout == "postgres /srv/pg\nkong /srv/kong\n"
    assert ok("deploy-paths", "--postgres", "/srv/pg2").stdout.startswith("postgres /srv/pg2\n")


def test_parse_target_with_hostaddr_connects_there_and_checks_the_name() -> None:
    t = parse_target("db.internal:6432", hostaddr="127.0.0.1")
    assert t == Target("db.internal", 6432, hostaddr="127.0.0.1")
    assert str(t) == "db.internal:6432 (hostaddr 127.0.0.1)"
    assert parse_target("db.internal").hostaddr is None and str(parse_target("db.internal")) == "db.internal:5432"


@pytest.mark.parametrize("addr", ["db.internal", "", "127.0.0.1:5432", "localhost"])
def test_parse_target_refuses_a_hostaddr_that_is_not_an_ip(addr: str) -> None:
    with pytest.raises(InputError, match=r"invalid --hostaddr .*: it must be an IP address \(libpq's hostaddr\)"):
        parse_target("db.internal", hostaddr=addr)


def test_probe_hostaddr_not_an_ip_is_one_error_line() -> None:
    r = run("probe", "db.internal", "--hostaddr", "db.internal")
    assert (r.exit_code, r.stdout) == (1, "")
    assert r.stderr == ("Error: invalid --hostaddr 'db.internal': it must be an IP address (libpq's hostaddr); "
                        "put a host name in TARGET\n")


def test_probe_hostaddr_is_where_it_connects() -> None:
    """A closed port on the hostaddr: the error names both the name checked and the address tried."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: the connection is refused
        r = run("probe", f"db.does-not-resolve.invalid:{port}", "--hostaddr", "127.0.0.1", "--timeout", "2")
    assert r.exit_code == 1
    assert r.stderr == (f"Error: cannot connect to db.does-not-resolve.invalid:{port} (hostaddr 127.0.0.1): "
                        "Connection refused\n")
