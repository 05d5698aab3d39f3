"""CLI tests for `init` and `self-signed`: exit codes, exact messages, streams."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from .clirun import run
from .test_fsio import snapshot


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_init_defaults_write_pki_and_summary_on_stderr(tmp_path: Path) -> None:
    r = run("init")
    assert r.exit_code == 0, r.output
    assert r.stdout == ""
    assert "PKI written to pki" in r.stderr and "next: pgkongtls render all --dir pki" in r.stderr
    assert stat.S_IMODE((tmp_path / "pki").stat().st_mode) == 0o700
    assert sorted(p.name for p in (tmp_path / "pki").iterdir()) == [
        "chain.crt", "client.crt", "client.key", "intermediate.crt", "intermediate.key", "pgkongtls.json", "pgkongtls.stat",
        "root.crt", "root.key", "server.crt", "server.key"]


def test_init_json_prints_the_manifest_only(tmp_path: Path) -> None:
    r = run("init", "--chain", "root", "--db-host", "db.internal", "--db-host", "10.0.0.5", "--db-user", "kong_rw",
            "--key-type", "rsa-2048", "--out", "direct", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert r.stderr == ""
    assert data == json.loads((tmp_path / "direct" / "pgkongtls.json").read_text())
    assert (data["chain"], data["hosts"], data["db_user"], data["key_type"]) == (
        "root", ["db.internal", "10.0.0.5"], "kong_rw", "rsa-2048")
    assert set(data["certificates"]) == {"root", "server", "client"}


def test_init_refuses_existing_pki_and_leaves_it(tmp_path: Path) -> None:
    assert run("init").exit_code == 0
    before = snapshot(tmp_path / "pki")
    r = run("init", "--chain", "root")
    assert r.exit_code == 1
    assert r.stderr == "Error: pki already holds a PKI (pgkongtls.json); pass --force to replace it\n"
    assert snapshot(tmp_path / "pki") == before


def test_init_force_replaces(tmp_path: Path) -> None:
    assert run("init").exit_code == 0
    old = (tmp_path / "pki" / "server.key").read_bytes()
    r = run("init", "--chain", "root", "--force")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "pki" / "server.key").read_bytes() != old
    assert not (tmp_path / "pki" / "intermediate.crt").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--db-host", ""], "Error: invalid host '': empty or surrounded by spaces\n"),
    (["--db-host", "bad_host"], "Error: invalid host 'bad_host': not a valid DNS name or IP address\n"),
    (["--db-host", "*.example.com"], "Error: invalid host '*.example.com': wildcards are not accepted for a database host\n"),
    (["--db-user", "kong\nhost all all all trust"],
     "Error: invalid --db-user 'kong\\nhost all all all trust': spaces, quotes, commas, # and control characters "
     "are not allowed\n"),
    (["--root-cn", "x" * 65], f"Error: common name '{'x' * 65}' is 65 bytes in UTF-8; it must be 1 to 64 bytes "
                                "(64 ASCII characters, fewer for accented ones)\n"),
])
def test_init_bad_input_one_line_nothing_written(tmp_path: Path, args: list[str], message: str) -> None:
    r = run("init", *args)
    assert r.exit_code == 1
    assert r.stderr == message
    assert list(tmp_path.iterdir()) == []


def test_init_unknown_key_type(tmp_path: Path) -> None:
    r = run("init", "--key-type", "dsa-1024")
    assert r.exit_code == 2
    assert r.stderr == (
        "Error: Invalid value for '--key-type': 'dsa-1024' is not one of "
        "'ecdsa-p256', 'ecdsa-p384', 'rsa-2048', 'rsa-3072', 'rsa-4096'. See 'pgkongtls init --help'.\n")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("args", "shown"), [
    (["--days", "0"], "'--days': 0 is not in the range 1<=x<=36500"),
    (["--days", "-5"], "'--days': -5 is not in the range 1<=x<=36500"),
    (["--days-root", "0"], "'--days-root': 0 is not in the range 1<=x<=36500"),
    (["--days-intermediate", "36501"], "'--days-intermediate': 36501 is not in the range 1<=x<=36500"),
])
def test_init_days_out_of_range_is_a_usage_error(tmp_path: Path, args: list[str], shown: str) -> None:
    """The same click range type as issue and renew: exit 2, one line, nothing written."""
    r = run("init", *args)
    assert (r.exit_code, r.stderr) == (2, f"Error: Invalid value for {shown}. See 'pgkongtls init --help'.\n")
    assert list(tmp_path.iterdir()) == []


def test_init_days_not_a_number(tmp_path: Path) -> None:
    r = run("init", "--days", "soon")
    assert r.exit_code == 2
    assert r.stderr == "Error: Invalid value for '--days': 'soon' is not a valid integer. See 'pgkongtls init --help'.\n"


def test_option_missing_its_value_is_one_line(tmp_path: Path) -> None:
    r = run("init", "--days")
    assert r.exit_code == 2
    assert r.stderr == "Error: Option '--days' requires an argument. See --help.\n"
    assert list(tmp_path.iterdir()) == []


def test_no_arguments_prints_the_help() -> None:
    r = run()
    assert r.exit_code == 2
    assert r.stderr.startswith("Usage: pgkongtls [OPTIONS] COMMAND [ARGS]...")


def test_init_out_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "pki").write_text("not a dir")
    r = run("init")
    assert r.exit_code == 1
    assert r.stderr == f"Error: {tmp_path / 'pki'} is a file; pass --out a directory\n"


def test_init_unwritable_out(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        target, expected = "/sys/pgkongtls-test", "Error: cannot write /sys/pgkongtls-test: "
    else:
        (tmp_path / "ro").mkdir(mode=0o500)
        target, expected = "ro/pki", f"Error: cannot write to {tmp_path / 'ro'}; choose another --out"
    r = run("init", "--out", target)
    assert r.exit_code == 1
    assert r.stderr.startswith(expected) and r.stderr.count("\n") == 1


def test_self_signed_requires_test_flag(tmp_path: Path) -> None:
    r = run("self-signed")
    assert r.exit_code == 1
    assert r.stderr == ("Error: self-signed certificates are for testing only; pass --test to confirm, "
                        "or use pgkongtls init\n")
    assert list(tmp_path.iterdir()) == []


def test_self_signed_writes_the_pair(tmp_path: Path) -> None:
    r = run("self-signed", "--test", "--db-host", "db.test", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert (data["mode"], data["chain"], set(data["certificates"])) == ("self-signed", None, {"server", "client"})
    d = tmp_path / "pki-test"
    assert sorted(p.name for p in d.iterdir()) == ["client.crt", "client.key", "pgkongtls.json", "pgkongtls.stat",
                                                      "server.crt", "server.key"]
    assert {stat.S_IMODE(p.stat().st_mode) for p in d.glob("*.key")} == {0o600}
    r2 = run("self-signed", "--test")
    assert r2.exit_code == 1
    assert r2.stderr == "Error: pki-test already holds a PKI (pgkongtls.json); pass --force to replace it\n"


def test_version_and_module_entry_point() -> None:
    r = run("--version")
    assert r.exit_code == 0 and r.stdout.startswith("pgkongtls, version ")


def test_a_failing_key_generation_worker_is_one_error_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """RSA keys come from a thread pool; when OpenSSL fails in one worker the user gets one line, nothing written."""
    import itertools

    from cryptography.hazmat.primitives.asymmetric import rsa

    from pgkongtls import certs

    real, calls = rsa.generate_private_key, itertools.count()

    def flaky(*args: object, **kwargs: object) -> rsa.RSAPrivateKey:
        if next(calls) == 2:  # the third key, on whichever worker takes it
            raise ValueError("RAND_bytes: entropy source failure")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(certs.os, "cpu_count", lambda: 4)  # a pool even on a one-core runner
    monkeypatch.setattr(certs.rsa, "generate_private_key", flaky)
    before = snapshot(tmp_path)
    r = run("init", "--key-type", "rsa-2048", "--out", "pki")
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit), repr(r.exception)
    assert r.stderr == ("Error: generating a rsa-2048 key failed (RAND_bytes: entropy source failure); "
                        "run the command again\n")
    assert next(calls) >= 4  # the other workers ran: the failure came from inside the pool
    assert snapshot(tmp_path) == before
