"""Every command, including ones added later, has help text with an example."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from pgkongtls.cli import main

from .clirun import commands

ALL = list(commands())


def test_the_cli_has_its_core_commands() -> None:
    assert {("init",), ("self-signed",), ("render",)} <= set(ALL)


@pytest.mark.parametrize("path", ALL, ids=" ".join)
def test_command_help_has_text_and_an_example(path: tuple[str, ...]) -> None:
    r = CliRunner().invoke(main, [*path, "--help"])
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    assert lines[0].startswith(f"Usage: main {' '.join(path)}")
    description = lines[lines.index("") + 1].strip()  # the usage line may wrap: the text follows the first blank
    assert len(description) > 15, f"{' '.join(path)} has no description"
    assert "Example:" in r.stdout and f"pgkongtls {path[0]}" in r.stdout.split("Example:", 1)[1]


def test_python_dash_m_entry_point() -> None:
    out = subprocess.run([sys.executable, "-m", "pgkongtls", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("Usage: pgkongtls [OPTIONS] COMMAND")
