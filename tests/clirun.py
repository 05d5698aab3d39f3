"""The CLI as the tests drive it: CliRunner, named as the console script is."""

from __future__ import annotations

from click.testing import CliRunner, Result

from pgkongtls.cli import main


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), prog_name="pgkongtls")


def ok(*args: str) -> Result:
    """run(), asserting success (the output is shown when it fails)."""
    r = run(*args)
    assert r.exit_code == 0, r.output
    return r
