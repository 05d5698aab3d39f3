"""Start-up hygiene: what each command imports (python -X importtime), not how long it takes.

`--help` and `--version` must not load rich or cryptography; `render` must not load
rich or anything that generates keys; `init` loads rich only to draw its table on a
terminal. Speed itself is measured in bench/, never here.
"""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pgkongtls import fsio, ops
from pgkongtls.certs import utcnow
from pgkongtls.pki import InitOptions

#: Modules that generate keys or mint certificates.
KEYGEN = (
    "pgkongtls.certs", "pgkongtls.pki",
    "cryptography.hazmat.primitives.asymmetric.rsa", "cryptography.hazmat.primitives.asymmetric.ec",
)
#: What a plain `init` (P-256, ASCII hosts, no passphrase, into a log) needs none of: the other commands'
#: planner, renderers, doctor and probe, the config parsers, and what only some runs need.
NOT_FOR_INIT = (
    "pgkongtls.ops", "pgkongtls.lifecycle", "pgkongtls.pkiload", "pgkongtls.verify", "pgkongtls.probe",
    "pgkongtls.render", "pgkongtls.render_hba", "pgkongtls.render_k8s", "pgkongtls.render_clients",
    "pgkongtls.render_topology", "pgkongtls.tlspolicy", "pgkongtls.confparse", "pgkongtls.bundle",
    "pgkongtls.cli_lifecycle", "pgkongtls.cli_doctor", "pgkongtls.cli_deploy", "pgkongtls.cli_export",
    "pgkongtls.cli_rotate", "pgkongtls.cli_status", "pgkongtls.cli_render", "rich",
    "pgkongtls.keywrap",  # PBKDF2 and AES: only --ca-passphrase-file encrypts
    "concurrent.futures",  # the key-generation pool: RSA only
    "idna",  # IDNA 2008: only a Unicode --db-host
)


def imported(*args: str, cwd: Path, tty: bool = False) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    """Run `python -X importtime -m pgkongtls ARGS`; return every module it imported.

    With `tty`, stderr (where importtime writes too) is a pseudo-terminal, as for a person.
    """
    env = {k: v for k, v in os.environ.items() if k != "PGKONGTLS_TEST_FAIL_AT"}
    argv = [sys.executable, "-X", "importtime", "-m", "pgkongtls", *args]
    if tty:
        master, slave = pty.openpty()
        child = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=slave, text=True)
        os.close(slave)
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        os.close(master)
        out = child.communicate(timeout=60)[0]
        err = b"".join(chunks).decode(errors="replace").replace("\r\n", "\n")
        proc = subprocess.CompletedProcess(argv, child.returncode, out, err)
    else:
        proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    mods = {
        line.rsplit("|", 1)[1].strip()
        for line in proc.stderr.splitlines() if line.startswith("import time:") and "|" in line
    }
    return mods, proc


def loaded(mods: set[str], *prefixes: str) -> list[str]:
    return sorted(m for m in mods if any(m == p or m.startswith(p + ".") for p in prefixes))


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    now = utcnow()  # the clock of this fixture's PKI, read when it is minted
    out = tmp_path_factory.mktemp("startup") / "pki"
    ops.init(out, InitOptions(), now=now)
    return out


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_import_neither_rich_nor_cryptography(flag: str, tmp_path: Path) -> None:
    mods, proc = imported(flag, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "pgkongtls.cli" in mods
    assert loaded(mods, "rich", "cryptography") == []


@pytest.mark.parametrize("args", [["--version"], ["render", "kong"], ["init", "--out", "fresh"]])
def test_commands_load_no_other_commands_modules(args: list[str], pki_dir: Path) -> None:
    if args[0] == "render":
        args = [*args, "--dir", str(pki_dir)]
    mods, proc = imported(*args, cwd=pki_dir.parent)
    assert proc.returncode == 0, proc.stderr
    assert loaded(mods, "pgkongtls.cli_lifecycle", "pgkongtls.cli_status", "pgkongtls.cli_doctor") == []


def test_lazy_command_table_names_exactly_what_those_modules_register() -> None:
    import importlib

    from pgkongtls import cli

    core = set(cli.main.commands) - set(cli.LAZY_COMMANDS)
    for module in set(cli.LAZY_COMMANDS.values()):
        importlib.import_module(f"pgkongtls.{module}")
    assert set(cli.main.commands) == core | set(cli.LAZY_COMMANDS)
    assert core == {"init", "self-signed"}


@pytest.mark.parametrize("target", ["kong", "postgres", "hba"])
def test_render_imports_no_rich_and_no_key_generation(target: str, pki_dir: Path) -> None:
    mods, proc = imported("render", target, "--dir", str(pki_dir), cwd=pki_dir.parent)
    assert proc.returncode == 0, proc.stderr
    assert "pgkongtls.render" in mods
    assert loaded(mods, "rich", *KEYGEN) == []


def test_init_on_a_terminal_does_import_rich_and_key_generation(tmp_path: Path) -> None:
    """The twin: proves the import scan sees what a command really loads."""
    mods, proc = imported("init", "--out", str(tmp_path / "pki"), cwd=tmp_path, tty=True)
    assert proc.returncode == 0, proc.stderr
    assert "rich.console" in mods
    shown = re.sub(r"\x1b\[[0-9;]*m", "", proc.stderr)  # rich styles the title on a terminal
    assert "PKI written to" in shown and "┃ file" in shown
    assert set(loaded(mods, *KEYGEN)) >= {"pgkongtls.certs", "cryptography.hazmat.primitives.asymmetric.ec"}


def test_init_into_a_log_prints_plain_lines_without_rich(tmp_path: Path) -> None:
    mods, proc = imported("init", "--out", "pki", "--db-host", "db.internal", "--db-host", "10.0.0.5",
                          "--root-cn", "R", "--intermediate-cn", "I", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert loaded(mods, "rich") == []
    expires = {e.name: e.not_after[:10] for e in fsio.load_manifest(tmp_path / "pki").certificates.values()}
    summary = [line for line in proc.stderr.splitlines() if not line.startswith("import time:")]
    assert summary == [
        "PKI written to pki",
        f"  root.crt          root          R                                        {expires['root']}",
        "  root.key          key (0600)",
        f"  intermediate.crt  intermediate  I                                        {expires['intermediate']}",
        "  intermediate.key  key (0600)",
        f"  server.crt        server        db.internal; SAN: db.internal, 10.0.0.5  {expires['server']}",
        "  server.key        key (0600)",
        f"  client.crt        client        kong                                     {expires['client']}",
        "  client.key        key (0600)",
        "  chain.crt         CA chain      intermediate + root",
        "next: pgkongtls render all --dir pki --write pki-config",
    ]


def test_plain_init_imports_nothing_it_does_not_use(tmp_path: Path) -> None:
    mods, proc = imported("init", "--out", "pki", "--db-host", "db.internal", "--db-host", "10.0.0.5", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "pgkongtls.ops_init" in mods and "pgkongtls.certs" in mods
    assert loaded(mods, *NOT_FOR_INIT) == []
    assert (tmp_path / "pki" / "server.crt").is_file()


@pytest.mark.parametrize(("extra", "needs"), [
    (["--db-host", "bücher.example"], "idna"),
    (["--ca-passphrase-file", "pass.txt"], "pgkongtls.keywrap"),
])
def test_init_imports_what_an_option_needs_when_it_is_given(extra: list[str], needs: str, tmp_path: Path) -> None:
    """The twins: each lazy import is still reached when its option asks for it."""
    (tmp_path / "pass.txt").write_text("correct horse\n", encoding="utf-8")
    (tmp_path / "pass.txt").chmod(0o600)
    mods, proc = imported("init", "--out", "pki", *extra, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert needs in mods
    assert loaded(mods, *(m for m in NOT_FOR_INIT if m != needs)) == []


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="RSA keys are made on a pool only with two cores or more")
def test_rsa_init_imports_the_key_generation_pool(tmp_path: Path) -> None:
    mods, proc = imported("init", "--out", "pki", "--key-type", "rsa-2048", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "concurrent.futures" in mods


def test_a_day_2_command_does_import_the_day_2_planner(pki_dir: Path) -> None:
    """The twin of the first: the scan sees lifecycle where a command needs it."""
    mods, proc = imported("status", "--dir", str(pki_dir), cwd=pki_dir.parent)
    assert proc.returncode == 0, proc.stderr
    assert {"pgkongtls.lifecycle", "pgkongtls.ops"} <= mods

