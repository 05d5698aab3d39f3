"""Help that cannot go stale: every --help example and every README command runs as printed.

Each command runs in bash in a copy of one fixture workspace (tests/cmdrun.py): `pki` made by the
README's first command, an `expired` PKI, the source document's `openssl` directory, passphrase
files. The exit code must be the one the documentation shows (0 unless it shows an `Error:` line,
`echo $?` or `(exit N)`). What cannot run here is in cmdrun.SKIP, with its reason.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from pgkongtls import ops
from pgkongtls.pki import InitOptions

from . import cmdrun
from .openssl_procedure import run_source_procedure

#: What a command's examples assume exists beyond the fixture PKI (made with the CLI first).
SETUP: dict[tuple[str, ...], list[list[str]]] = {
    ("bundle",): [["issue", "client", "--dir", "pki", "kong-node-1"]],
    ("bundle", "kong"): [["issue", "client", "--dir", "pki", "kong-node-1"]],
    ("bundle", "postgres"): [["issue", "server", "--dir", "pki", "replica-1", "--db-host", "replica1.internal"]],
    ("revoke",): [["issue", "client", "--dir", "pki", "kong-node-2", "--cn", "{name}"]],
    ("render",): [["issue", "server", "--dir", "pki", "replica-1", "--db-host", "replica1.internal"],
                  ["issue", "client", "--dir", "pki", "replicator", "--cn", "replicator"],
                  ["issue", "server", "--dir", "pki", "db-1", "--db-host", "db-1.internal"],
                  ["issue", "server", "--dir", "pki", "db-2", "--db-host", "db-2.internal"],
                  ["issue", "server", "--dir", "pki", "pgbouncer", "--db-host", "pgbouncer.internal"],
                  ["issue", "client", "--dir", "pki", "pgbouncer-up", "--cn", "pgbouncer"],
                  ["issue", "client", "--dir", "pki", "patroni", "--cn", "patroni"]],
}
SETUP[("rotate", "reissue")] = [["rotate", "--dir", "pki", "begin"]]  # phases run in order
SETUP[("rotate", "finish")] = [*SETUP[("rotate", "reissue")], ["rotate", "--dir", "pki", "reissue"]]
#: Help examples whose documented outcome is a failure exit.
HELP_EXIT = {"pgkongtls verify ./openssl-made-dir --json": 1}  # the source document's PKI has errors
FIXTURE_DIRS = {"pki", "expired", "openssl", "openssl-made-dir"}

HELP = cmdrun.help_examples()
SECTIONS = cmdrun.readme_sections()


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = tmp_path_factory.mktemp("docs") / "ws"
    ws.mkdir()
    cmdrun.cli(ws, "init", "--chain", "intermediate", "--db-host", "db.internal", "--db-host", "10.0.0.5",
               "--out", "pki")  # the README's first command
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    ops.init(ws / "expired", InitOptions(), now=now - dt.timedelta(days=400))
    run_source_procedure(ws / "openssl", "intermediate")
    shutil.copytree(ws / "openssl", ws / "openssl-made-dir")
    for name, text in (("ca-pass", "a CA passphrase\n"), ("wrong-pass", "not it\n"), ("pw.txt", "p12 password\n")):
        (ws / name).write_text(text)
        (ws / name).chmod(0o600)
    (ws / "conf.d").mkdir()
    return ws


def _run_all(ws: Path, cmds: list[cmdrun.Cmd]) -> list[str]:
    """Run in order; the failures (wrong exit code) as text, and pytest.skip when nothing could run."""
    ours = set(FIXTURE_DIRS)
    wrong, skipped, ran = [], [], 0
    for cmd in cmds:
        reason = cmdrun.skip_reason(cmd.line)
        if reason:
            skipped.append(f"{cmd.line}: {reason}")
            continue
        made = cmdrun.made_dir(cmd.line)
        if made in ours:  # a documented init starts from no PKI, not from the fixture's
            shutil.rmtree(ws / made)
            ours.discard(made)
        r = cmdrun.run_line(ws, cmdrun.cut_pipes(cmd.line))
        ran += 1
        if not cmdrun.exit_matches(cmd.expect, r.returncode):
            shown = "non-zero" if cmd.expect == cmdrun.FAILS else cmd.expect
            wrong.append(f"{cmd.where} {cmd.line}\n  exit {r.returncode}, documented {shown}\n"
                         f"  stderr: {r.stderr.strip()[-600:]}")
    if not ran:
        pytest.skip("; ".join(skipped))
    return wrong


@pytest.mark.parametrize(("path", "lines"), HELP, ids=[" ".join(p) or "pgkongtls" for p, _ in HELP])
def test_help_examples_run_as_printed(base: Path, tmp_path: Path, path: tuple[str, ...], lines: list[str]) -> None:
    assert lines, f"{' '.join(path) or 'pgkongtls'} --help shows no example command"
    ws = cmdrun.fresh(base, tmp_path / "ws")
    for args in SETUP.get(path, []):
        cmdrun.cli(ws, *args)
    cmds = [cmdrun.Cmd(line, HELP_EXIT.get(line, 0), f"{' '.join(path)} --help") for line in lines]
    assert _run_all(ws, cmds) == []


@pytest.mark.parametrize("section", SECTIONS, ids=[s.title for s in SECTIONS])
def test_readme_commands_run_as_printed(base: Path, tmp_path: Path, section: cmdrun.Section) -> None:
    ws = cmdrun.fresh(base, tmp_path / "ws")
    assert _run_all(ws, section.commands) == []


def test_the_readme_has_commands_to_run() -> None:
    """The parser finds the README's blocks: a broken fence match would make the test above vacuous."""
    cmds = [c for s in SECTIONS for c in s.commands]
    assert len(cmds) > 25 and {c.expect for c in cmds} >= {0, 1, 2, 3, cmdrun.FAILS}
    assert any(c.line.startswith("pgkongtls init --chain intermediate") for c in SECTIONS[0].commands)


def test_every_skip_entry_still_matches_a_documented_command() -> None:
    """A SKIP reason for a command no longer documented is itself stale."""
    lines = [c.line for s in SECTIONS for c in s.commands] + [ln for _, ls in HELP for ln in ls]
    assert [start for start in cmdrun.SKIP if not any(ln.startswith(start) for ln in lines)] == []


README_SAMPLE = """## A
```console
$ pgkongtls status --dir pki
nothing expires
$ pgkongtls status --dir old
EXPIRED: server
(exit 3)
$ pgkongtls revoke --dir pki nope
Error: no certificate named 'nope'
$ pgkongtls verify openssl --json | jq .
$ echo $?
1
```
## B
```sh
pip install . && pgkongtls init --out pki
pgkongtls render all --dir pki \\
    --write out/   # every snippet
./scripts/test
```
```
$ pgkongtls not-run-plain-block
```
<!-- docs-test: fresh workspace -->
```sh
pgkongtls crl --dir pki
```
"""


def test_readme_parser_reads_exit_codes_continuations_and_block_kinds() -> None:
    got = [[(c.line, c.expect) for c in s.commands] for s in cmdrun.readme_sections(README_SAMPLE)]
    assert got == [
        [("pgkongtls status --dir pki", 0), ("pgkongtls status --dir old", 3),
         ("pgkongtls revoke --dir pki nope", cmdrun.FAILS), ("pgkongtls verify openssl --json | jq .", 1)],
        [("pgkongtls init --out pki", 0), ("pgkongtls render all --dir pki --write out/   # every snippet", 0)],
        [("pgkongtls crl --dir pki", 0)],
    ]
    assert [s.title for s in cmdrun.readme_sections(README_SAMPLE)] == ["A", "B", "B (from README.md:24)"]


def test_pipes_into_a_cluster_tool_are_cut_and_others_kept() -> None:
    assert cmdrun.cut_pipes("pgkongtls render kubernetes --dir pki | kubectl apply -f -") == \
        "pgkongtls render kubernetes --dir pki"
    assert cmdrun.cut_pipes("pgkongtls status --json | jq .") == "pgkongtls status --json | jq ."


def test_exit_codes_match_exactly_or_any_failure() -> None:
    assert cmdrun.exit_matches(0, 0) and not cmdrun.exit_matches(0, 1) and not cmdrun.exit_matches(3, 1)
    assert cmdrun.exit_matches(cmdrun.FAILS, 2) and not cmdrun.exit_matches(cmdrun.FAILS, 0)


def test_a_failing_documented_command_is_reported(base: Path, tmp_path: Path) -> None:
    """Twin of the runners: a command that fails, documented as succeeding, is caught with its exit code."""
    ws = cmdrun.fresh(base, tmp_path / "ws")
    wrong = _run_all(ws, [cmdrun.Cmd("pgkongtls status --dir pki --json | jq '.warnings[]'", 0, "sample")])
    assert len(wrong) == 1 and "exit 5, documented 0" in wrong[0]  # jq: Cannot iterate over null


def test_host_redirects_stay_in_the_workspace(tmp_path: Path) -> None:
    line = cmdrun.host_redirects(tmp_path, "pgkongtls status --format prometheus > /var/lib/x/p.prom 2>/dev/null")
    assert line == f"pgkongtls status --format prometheus > {tmp_path}/root/var/lib/x/p.prom 2>/dev/null"
    assert (tmp_path / "root/var/lib/x").is_dir()
    assert cmdrun.host_redirects(tmp_path, "pgkongtls render hba >> pg_hba.conf") == "pgkongtls render hba >> pg_hba.conf"
