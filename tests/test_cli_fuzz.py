"""CLI property test: every command and option (read from the click tree, so a new one is covered
without touching this file) gets hostile values, and no run may print a traceback.

A run that fails prints exactly one `Error:` line, as its last line; `verify` and `probe` may
instead exit 1 with their findings. A catch-all "this is a pgkongtls bug" line counts as a failure
too: it exists so users never see a traceback, not so this test cannot find one.

Each example runs in a fresh copy of a PKI, four directories below a private temp dir, so that
`..` and `../..` stay inside it; path values are kept relative for the same reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pgkongtls.cli import main

HOSTILE = [
    "", " ", "x" * 5000, "é" * 40, "..", "../..", "/", "./", "a/b", "-", "--", "0", "-1", "99999999999", "1e309",
    "a\nb", "kong\nhost all all all trust", "\x1b[31mred", "\x00", "\x7f", "\u2028", "\r", "\t",
    os.fsdecode(b"\xff"), os.fsdecode(b"db\xc3"), "db..internal", "[::1", "[::1]:x", "{name}", "'", '"', "#", ",",
    "pki", "client", "server", "root", "pgkongtls.json", "127.0.0.1:1",
]
#: 60 per command keeps the file near 10 s; PGKONGTLS_FUZZ_EXAMPLES=1000 for a longer hunt.
SETTINGS = settings(max_examples=int(os.environ.get("PGKONGTLS_FUZZ_EXAMPLES", "60")), deadline=None,
                    derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
#: Commands whose exit 1 can be a report (findings, FAIL verdicts) rather than an Error line.
REPORTERS = {"verify", "probe"}


def commands() -> list[tuple[str, ...]]:
    """Every leaf command path, e.g. ('issue', 'client'), walked from the click tree."""
    found: list[tuple[str, ...]] = []

    def walk(group: click.Group, path: tuple[str, ...], ctx: click.Context) -> None:
        for name in group.list_commands(ctx):
            cmd = group.get_command(ctx, name)
            assert cmd is not None
            if isinstance(cmd, click.Group):
                walk(cmd, (*path, name), click.Context(cmd, parent=ctx, info_name=name))
            else:
                found.append((*path, name))

    walk(main, (), click.Context(main, info_name="pgkongtls"))
    return found


def command_at(path: tuple[str, ...]) -> click.Command:
    cmd: click.Command = main
    ctx = click.Context(main, info_name="pgkongtls")
    for name in path:
        assert isinstance(cmd, click.Group)
        nxt = cmd.get_command(ctx, name)
        assert nxt is not None
        cmd, ctx = nxt, click.Context(nxt, parent=ctx, info_name=name)
    return cmd


NUMBERS = ["0", "1", "-1", "2", "365", "36500", "36501", "2147483648", "99999999999999999999", "0.1", "1e9",
           "nan", "inf", "-inf"]


def _value(param: click.Parameter) -> st.SearchStrategy[str]:
    """Mostly values the option's type accepts (so the run gets past click), sometimes anything."""
    hostile = st.sampled_from(HOSTILE) | st.text(max_size=12)
    if isinstance(param.type, click.Choice):
        return st.one_of(*[st.sampled_from([str(c) for c in param.type.choices])] * 4, hostile)
    if isinstance(param.type, (click.types.IntParamType, click.types.FloatParamType)):
        return st.one_of(*[st.sampled_from(NUMBERS)] * 4, hostile)
    if isinstance(param.type, click.Path):
        return hostile.map(lambda v: "./" + v if v.startswith("/") else v)  # never outside the sandbox
    return hostile


@st.composite
def argv(draw: st.DrawFn, path: tuple[str, ...]) -> list[str]:
    cmd = command_at(path)
    out = list(path)
    for param in cmd.params:
        if isinstance(param, click.Argument):
            count = param.nargs if param.nargs > 0 else draw(st.integers(0, 2))
            if not param.required and draw(st.booleans()):
                count = 0
            out += [draw(_value(param)) for _ in range(count)]
        elif isinstance(param, click.Option) and not param.is_eager and (param.required or draw(st.booleans())):
            flag = draw(st.sampled_from(param.opts + param.secondary_opts))
            out += [flag] if param.is_flag or param.count else [flag, draw(_value(param))]
    return out


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("fuzz-template")
    r = CliRunner().invoke(main, ["init", "--out", str(base / "pki"), "--db-host", "db.internal"])
    assert r.exit_code == 0, r.output
    (base / "kong.conf").write_text("pg_ssl = on\n")
    return base


@contextlib.contextmanager
def sandbox(template: Path) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="pgk-fuzz-") as tmp:
        work = Path(tmp, "a", "b", "c", "work")
        shutil.copytree(template, work)
        before = os.getcwd()
        os.chdir(work)  # contextlib.chdir is 3.11+, and the project supports older Pythons
        try:
            yield work
        finally:
            os.chdir(before)


@pytest.mark.parametrize("path", commands(), ids=" ".join)
def test_no_hostile_value_prints_a_traceback(template: Path, path: tuple[str, ...]) -> None:
    @SETTINGS
    @given(args=argv(path))
    def check(args: list[str]) -> None:
        with sandbox(template):
            r = CliRunner(env={"COLUMNS": "200", "PGKONGTLS_TRACEBACK": None}).invoke(
                main, args, prog_name="pgkongtls")
        shown = f"pgkongtls {args!r}\nexit {r.exit_code}\nstderr: {r.stderr!r}"
        assert r.exception is None or isinstance(r.exception, SystemExit), f"{shown}\n{r.exception!r}"
        assert "Traceback" not in r.output, shown
        assert "this is a pgkongtls bug" not in r.stderr, shown
        lines = r.stderr.splitlines()
        errors = [line for line in lines if line.startswith("Error:")]
        assert len(errors) <= 1, shown
        if errors:
            assert r.exit_code != 0 and lines[-1] == errors[0], shown
        elif r.exit_code != 0:
            assert path[0] in REPORTERS and r.exit_code == 1, shown

    check()


def test_every_command_is_fuzzed() -> None:
    """The walk finds the lazily registered commands and the subcommands of groups too."""
    found = {" ".join(p) for p in commands()}
    assert {"init", "self-signed", "render", "issue client", "issue server", "renew", "revoke", "crl", "status",
            "verify", "probe"} <= found
