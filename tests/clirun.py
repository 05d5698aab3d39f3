"""The CLI as the tests drive it: CliRunner, named as the console script is."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from pgkongtls.cli import main


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), prog_name="pgkongtls")


def ok(*args: str) -> Result:
    """run(), asserting success (the output is shown when it fails)."""
    r = run(*args)
    assert r.exit_code == 0, r.output
    return r


def commands(group: click.Group = main, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command path, groups and their subcommands, including ones added later."""
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        assert cmd is not None
        yield (*path, name)
        if isinstance(cmd, click.Group):
            yield from commands(cmd, (*path, name))


def command_at(path: tuple[str, ...]) -> click.Command:
    """The click command at `path` (() is the top-level group)."""
    cmd: click.Command = main
    for name in path:
        assert isinstance(cmd, click.Group)
        found = cmd.get_command(click.Context(cmd), name)
        assert found is not None
        cmd = found
    return cmd


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A CLI test's working directory, with a terminal width wide enough for rich's tables."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path


@pytest.fixture
def cli_pki(in_tmp: Path) -> Path:
    """A PKI made by `pgkongtls init --out pki` in the test's working directory."""
    ok("init", "--out", "pki")
    return in_tmp / "pki"
