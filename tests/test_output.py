"""People's output off a terminal (CliRunner: stderr is not a tty) and the progress reporter.

Off a terminal every command prints plain lines: no box characters, one row per line, hints
whole. The terminal side is tests/test_output_pty.py.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from pgkongtls import ops, output
from pgkongtls.manifest import MANIFEST_NAME
from pgkongtls.pki import InitOptions

from .clirun import ok, run

BOX = set("─━│┃┌┏┐┓└┗┘┛├┣┤┫┬┳┴┻┼╋═║╔╗╚╝╭╮╰╯")


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("COLUMNS", raising=False)
    return tmp_path


def certificates(d: Path) -> dict[str, dict[str, str]]:
    return json.loads((d / MANIFEST_NAME).read_text())["certificates"]  # type: ignore[no-any-return]


class Clock:
    """A clock that moves `step` seconds each time it is read."""

    def __init__(self, step: float) -> None:
        self.t, self.step = 0.0, step

    def __call__(self) -> float:
        now = self.t
        self.t += self.step
        return now


# ---------------------------------------------------------------- plain lines

def test_status_off_a_terminal_is_one_padded_line_per_row() -> None:
    ok("init", "--out", "pki", "--root-cn", "R", "--intermediate-cn", "I")
    c = certificates(Path("pki"))
    r = ok("status")
    head, *rows, tail = r.stderr.splitlines()
    assert head.startswith("pki at ") and head.endswith(" (serials, issuers: --json)")
    days = {n: str(json.loads(ok("status", "--json").stdout)["certificates"][i]["days_left"])
            for i, n in enumerate(("root", "intermediate", "server", "client"))}
    assert rows == [
        f"  root          root          R                          {c['root']['not_after'][:10]}  {days['root']}  valid",
        f"  intermediate  intermediate  I                          {c['intermediate']['not_after'][:10]}  "
        f"{days['intermediate']}  valid",
        f"  server        server        localhost; SAN: localhost  {c['server']['not_after'][:10]}   {days['server']}  valid",
        f"  client        client        kong                       {c['client']['not_after'][:10]}   {days['client']}  valid",
    ]
    assert tail == "nothing expires within 30 days"


@pytest.mark.parametrize("args", [
    ["issue", "client", "--name", "kong-node-1"],
    ["renew", "server"],
    ["revoke", "client"],
    ["crl"],
    ["status"],
    ["verify", "pki"],
    ["render", "all", "--write", "out"],
])
def test_no_command_draws_a_box_into_a_log(args: list[str]) -> None:
    ok("init", "--out", "pki")
    r = run(*args)
    assert r.exit_code == 0, r.output
    assert r.stderr and not BOX & set(r.stderr)


def test_a_long_hint_stays_one_line_in_a_log() -> None:
    """The issue's `pgkongtls renew --dir soon ⏎client`: a command must survive copy and paste."""
    d = "a-rather-long-directory-name-for-the-pki-of-the-payments-cluster"
    ok("init", "--out", d)
    r = ok("issue", "client", "--dir", d, "--name", "kong-node-with-a-long-name-1")
    hint = (f"next: pgkongtls bundle kong --dir {d} --client kong-node-with-a-long-name-1 --out "
            f"{d}-kong-node-with-a-long-name-1-bundle --force; then, on that Kong node, the pgkongtls install command "
            "it prints (it ends with kong restart)")
    assert r.stderr.splitlines()[-1] == hint


def test_verify_off_a_terminal_lists_one_finding_per_line(tmp_path: Path) -> None:
    ok("init", "--out", "pki")
    (tmp_path / "pki" / "client.key").chmod(0o644)
    r = run("verify", "pki")
    assert r.exit_code == 1
    lines = r.stderr.splitlines()
    assert lines[0] == "pgkongtls verify: pki"
    assert [line.split()[:2] for line in lines[1:-1]] == [["error", "key-mode"]]
    assert lines[-1] == "1 error(s), 0 warning(s)"


def test_json_leaves_stderr_empty() -> None:
    ok("init", "--out", "pki")
    (Path("pki") / "client.key").chmod(0o644)
    for args, code in ((["status", "--json"], 0), (["verify", "pki", "--json"], 1)):
        r = run(*args)
        assert (r.exit_code, r.stderr) == (code, ""), args
        assert json.loads(r.stdout)


def test_control_characters_in_a_cell_are_made_visible(capsys: pytest.CaptureFixture[str]) -> None:
    output.table("t\x1b[2J", ("a", "b"), [("x\x1b[31m", "two\nlines")])
    output.line("m\x07", label=("note:", "yellow"))
    assert capsys.readouterr().err == "t\\x1b[2J\n  x\\x1b[31m  two; lines\nnote: m\\x07\n"


# ---------------------------------------------------------------- progress

def test_a_log_gets_a_progress_line_at_most_every_few_seconds(capsys: pytest.CaptureFixture[str]) -> None:
    p = output.Progress("issue", clock=Clock(0.0), terminal=False)
    for now, done in ((0.5, 1), (1.2, 2), (3.0, 3), (6.3, 4), (6.4, 5), (11.4, 6)):
        p.clock = lambda now=now: now  # type: ignore[misc]
        p(done, 6)
    assert capsys.readouterr().err == "issue: 2/6 certificates\nissue: 4/6 certificates\nissue: 6/6 certificates\n"


def test_a_run_under_a_second_shows_no_progress(capsys: pytest.CaptureFixture[str]) -> None:
    buf = io.StringIO()
    for terminal in (False, True):
        p = output.Progress("renew", clock=Clock(0.09), terminal=terminal,
                            to=Console(file=buf, force_terminal=True, width=60))
        for done in range(1, 11):
            p(done, 10)
        p.close()
    assert (capsys.readouterr().err, buf.getvalue()) == ("", "")


def test_a_terminal_gets_a_bar_that_is_gone_afterwards() -> None:
    buf = io.StringIO()
    p = output.Progress("renew", clock=Clock(0.6), terminal=True, to=Console(file=buf, force_terminal=True, width=60))
    p(1, 4)
    assert p.bar is None  # 0.6 s: still quiet
    for done in range(2, 5):
        p(done, 4)
    assert p.bar is not None and p.bar.tasks[0].completed == 4 and p.bar.tasks[0].total == 4
    p.close()
    assert "renew" in buf.getvalue() and p.bar.live.transient


def test_issue_many_names_reports_progress_in_a_log(monkeypatch: pytest.MonkeyPatch) -> None:
    ok("init", "--out", "pki")
    monkeypatch.setattr(output, "CLOCK", Clock(3.0))  # read at the start, then once per certificate
    r = ok("issue", "client", *(a for i in range(1, 6) for a in ("--name", f"n{i}")))
    assert r.stderr.startswith("issue: 1/5 certificates\nissue: 3/5 certificates\nissue: 5/5 certificates\n"
                               "issued in pki\n")


def test_renew_expiring_within_reports_progress_and_a_quick_one_none(monkeypatch: pytest.MonkeyPatch) -> None:
    ops.init(Path("old"), InitOptions(), now=dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
             - dt.timedelta(days=350))
    monkeypatch.setattr(output, "CLOCK", Clock(0.2))
    quick = ok("renew", "--dir", "old", "server")
    assert quick.stderr.startswith("renewed in old\n")
    monkeypatch.setattr(output, "CLOCK", Clock(6.0))
    slow = ok("renew", "--dir", "old", "--expiring-within", "30d")
    assert slow.stderr.startswith("renew: 1/1 certificates\nrenewed in old\n")


def test_the_bar_is_stopped_when_the_library_fails() -> None:
    """A refused run ends with its Error line on a clean terminal, not under a half-drawn bar."""
    with pytest.raises(ValueError), output.progress("issue") as p:
        p.terminal, p.clock, p.to = True, Clock(2.0), Console(file=io.StringIO(), force_terminal=True, width=60)
        p.start = p.clock()
        p(1, 2)
        raise ValueError
    assert p.bar is not None and not p.bar.live.is_started
