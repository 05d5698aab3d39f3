"""CLI tests for `renew intermediate|root` and `rotate begin|reissue|finish`: exit codes, exact lines, streams.

Every refusal is one `Error:` line and leaves everything under the working directory as it was.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .clirun import ok, run
from .test_cli_lifecycle import refused

pytestmark = pytest.mark.usefixtures("in_tmp")


@pytest.fixture
def pki(cli_pki: Path) -> Path:
    return cli_pki


def serial(d: Path, name: str) -> str:
    return str(json.loads((d / "pgkongtls.json").read_text())["certificates"][name]["serial"])


def test_renew_intermediate_says_what_was_checked_and_when_the_old_one_can_go(pki: Path) -> None:
    old = serial(pki, "intermediate")
    r = ok("renew", "--dir", "pki", "intermediate")
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert (f"the old intermediate certificate (serial {old[:16]}…) stays in chain.crt beside the new one; kept as "
            f"intermediate.crt.{old}.bak") in lines
    assert ("checked: 2 certificate(s) in service verify with the new intermediate certificate alone (strict RFC 5280): "
            "client, server; no leaf needs re-issuing") in lines
    assert lines[-1] == ("next: once every host has the new chain.crt, the old certificate can go: "
                         "pgkongtls rotate --dir pki finish")
    assert any(line.startswith("next: pgkongtls bundle postgres --dir pki") and line.endswith("(only chain.crt changes)")
               for line in lines)


def test_status_during_a_renewal_shows_the_superseded_row_and_the_next_step(pki: Path) -> None:
    old = serial(pki, "intermediate")
    ok("renew", "--dir", "pki", "intermediate")
    r = run("status", "--dir", "pki", "--json")
    assert r.exit_code == 0
    st = json.loads(r.stdout)
    assert {c["name"]: c["state"] for c in st["certificates"]}[f"intermediate@{old}"] == "superseded"
    assert [n["message"] for n in st["notices"]] == [
        f"phase renewed: the old CA certificates (intermediate@{old}) are still in the trust files; "
        "once every host has this phase's files: pgkongtls rotate --dir pki finish"]
    ok("rotate", "--dir", "pki", "finish")
    assert json.loads(run("status", "--dir", "pki", "--json").stdout)["notices"] == []


def test_renew_root_with_an_encrypted_root_key_needs_the_passphrase(tmp_path: Path) -> None:
    (tmp_path / "ca-pass").write_text("s3cret\n")
    ok("init", "--out", "locked", "--ca-passphrase-file", "ca-pass")
    refused(tmp_path, ["renew", "--dir", "locked", "intermediate"], "root.key is encrypted; pass --ca-passphrase-file")
    ok("renew", "--dir", "locked", "root", "--ca-passphrase-file", "ca-pass")


def test_renew_intermediate_of_a_root_only_pki_is_refused(tmp_path: Path) -> None:
    ok("init", "--out", "pki", "--chain", "root")
    refused(tmp_path, ["renew", "--dir", "pki", "intermediate"],
            "this PKI has no intermediate CA (it was made with --chain root); renew root")


def test_the_three_phases_print_what_to_deploy_and_what_comes_next(pki: Path) -> None:
    ok("issue", "client", "--dir", "pki", "--name", "kong-node-1", "--cn", "{name}")
    r = ok("rotate", "--dir", "pki", "begin", "--key-type", "ecdsa-p384")
    assert r.stdout == "" and r.stderr.splitlines()[-1] == (
        "next: pgkongtls rotate --dir pki reissue, once every host has the new chain.crt and crl.pem")
    r = ok("rotate", "--dir", "pki", "reissue")
    lines = r.stderr.splitlines()
    assert "next: likewise with --server/--client for kong-node-1" in lines
    assert lines[-1] == "next: pgkongtls rotate --dir pki finish, once every host has its re-issued certificate"
    st = json.loads(run("status", "--dir", "pki", "--json").stdout)
    assert st["notices"][0]["message"].endswith("once every host has this phase's files: pgkongtls rotate --dir pki finish")
    r = ok("rotate", "--dir", "pki", "finish")
    assert r.stderr.splitlines()[0] == "finished in pki: chain.crt (and crl.pem) hold the current CAs only"


@pytest.mark.parametrize(("steps", "args", "message"), [
    ([], ["rotate", "--dir", "pki", "reissue"],
     "rotate reissue refused: the PKI is in phase steady (no rotation); next is pgkongtls rotate --dir PKI begin"),
    ([["rotate", "--dir", "pki", "begin"]], ["rotate", "--dir", "pki", "finish"],
     "rotate finish refused: the PKI is in phase begun; next is pgkongtls rotate --dir PKI reissue, once every host "
     "has the new chain.crt and crl.pem"),
    ([["rotate", "--dir", "pki", "begin"]], ["renew", "--dir", "pki", "intermediate"],
     "renew intermediate refused: the PKI is in phase begun; next is pgkongtls rotate --dir PKI reissue, once every "
     "host has the new chain.crt and crl.pem"),
    ([["renew", "--dir", "pki", "root"]], ["rotate", "--dir", "pki", "begin"],
     "rotate begin refused: the PKI is in phase renewed; next is pgkongtls rotate --dir PKI finish "
     "(after renew root|intermediate)"),
])
def test_a_command_in_the_wrong_phase_is_one_line(
    pki: Path, tmp_path: Path, steps: list[list[str]], args: list[str], message: str,
) -> None:
    for step in steps:
        ok(*step)
    refused(tmp_path, args, message)


def test_begin_on_an_encrypted_pki_is_refused_without_the_passphrase(tmp_path: Path) -> None:
    (tmp_path / "ca-pass").write_text("s3cret\n")
    ok("init", "--out", "locked", "--ca-passphrase-file", "ca-pass")
    refused(tmp_path, ["rotate", "--dir", "locked", "begin"], "root.key is encrypted; pass --ca-passphrase-file")
    ok("rotate", "--dir", "locked", "begin", "--ca-passphrase-file", "ca-pass")
    refused(tmp_path, ["rotate", "--dir", "locked", "reissue"], "intermediate.key is encrypted; pass --ca-passphrase-file")
    ok("rotate", "--dir", "locked", "reissue", "--ca-passphrase-file", "ca-pass")


def test_an_unknown_key_type_is_a_usage_error(pki: Path, tmp_path: Path) -> None:
    r = run("rotate", "--dir", "pki", "begin", "--key-type", "dsa")
    assert r.exit_code == 2 and r.stderr.startswith("Error: Invalid value for '--key-type': 'dsa' is not one of")
