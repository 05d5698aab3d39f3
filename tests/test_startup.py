"""Start-up hygiene: what each command imports (python -X importtime), not how long it takes.

`--help` and `--version` must not load rich or cryptography; `render` must not load
rich or anything that generates keys. Speed itself is measured in bench/, never here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pgkongtls import ops
from pgkongtls.pki import InitOptions

#: Modules that generate keys or mint certificates.
KEYGEN = (
    "pgkongtls.certs", "pgkongtls.pki",
    "cryptography.hazmat.primitives.asymmetric.rsa", "cryptography.hazmat.primitives.asymmetric.ec",
)


def imported(*args: str, cwd: Path) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    """Run `python -X importtime -m pgkongtls ARGS`; return every module it imported."""
    env = {k: v for k, v in os.environ.items() if k != "PGKONGTLS_TEST_FAIL_AT"}
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "pgkongtls", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=60,
    )
    mods = {
        line.rsplit("|", 1)[1].strip()
        for line in proc.stderr.splitlines() if line.startswith("import time:") and "|" in line
    }
    return mods, proc


def loaded(mods: set[str], *prefixes: str) -> list[str]:
    return sorted(m for m in mods if any(m == p or m.startswith(p + ".") for p in prefixes))


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("startup") / "pki"
    ops.init(out, InitOptions())
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
    assert loaded(mods, "pgkongtls.cli_lifecycle", "pgkongtls.cli_doctor") == []


def test_lazy_command_table_names_exactly_what_those_modules_register() -> None:
    import importlib

    from pgkongtls import cli

    core = set(cli.main.commands) - set(cli.LAZY_COMMANDS)
    for module in set(cli.LAZY_COMMANDS.values()):
        importlib.import_module(f"pgkongtls.{module}")
    assert set(cli.main.commands) == core | set(cli.LAZY_COMMANDS)
    assert core == {"init", "self-signed", "render"}


@pytest.mark.parametrize("target", ["kong", "postgres", "hba"])
def test_render_imports_no_rich_and_no_key_generation(target: str, pki_dir: Path) -> None:
    mods, proc = imported("render", target, "--dir", str(pki_dir), cwd=pki_dir.parent)
    assert proc.returncode == 0, proc.stderr
    assert "pgkongtls.render" in mods
    assert loaded(mods, "rich", *KEYGEN) == []


def test_init_does_import_rich_and_key_generation(tmp_path: Path) -> None:
    """The twin: proves the import scan sees what a command really loads."""
    mods, proc = imported("init", "--out", str(tmp_path / "pki"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "rich.console" in mods
    assert set(loaded(mods, *KEYGEN)) >= {"pgkongtls.certs", "cryptography.hazmat.primitives.asymmetric.ec"}
