"""Run documented commands as printed: the examples of every --help text and the README's shell blocks.

Each command line goes to bash (`set -o pipefail`, so `pgkongtls … | jq` fails when pgkongtls does)
in a scratch directory that holds a fixture PKI, with the installed `pgkongtls` first on PATH. A
redirect to a host path (`> /var/lib/node_exporter/…`) writes under the scratch directory's root/
instead. A documented command that cannot run here (a live server, a host's /etc) is listed in
SKIP with its reason; keep that list short and honest.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import click
from click.testing import CliRunner

from pgkongtls.cli import main

README = Path(__file__).resolve().parent.parent / "README.md"
BIN = Path(sys.executable).parent

#: Documented commands that need what a test here does not have, by the start of the command line.
SKIP: dict[str, str] = {
    "pgkongtls probe ": "needs a live PostgreSQL server (tests/realstack/test_probe_real.py runs these forms)",
    "pgkongtls install ": "changes a host's PostgreSQL or Kong config and reloads it "
                          "(tests/realstack/test_deploy_real.py runs install as printed)",
    "pgkongtls verify --dir pki --postgresql-conf /etc/": "reads a deployed host's /etc/postgresql and /etc/kong",
}
#: A pipe into one of these is cut off: the pgkongtls half runs, the consumer needs a cluster.
CUT_PIPES = {"kubectl": "needs a Kubernetes cluster"}


#: `Cmd.expect` for a command the documentation shows failing (an `Error:` line) without its code.
FAILS = -1


def exit_matches(expect: int, code: int) -> bool:
    return code != 0 if expect == FAILS else code == expect


@dataclass
class Cmd:
    line: str
    expect: int = 0  # the exit code shown by `echo $?` or "(exit N)"; FAILS for an Error: line alone
    where: str = ""


@dataclass
class Section:
    title: str
    commands: list[Cmd] = field(default_factory=list)


def skip_reason(line: str) -> str | None:
    return next((why for start, why in SKIP.items() if line.startswith(start)), None)


def _joined(lines: list[str]) -> list[str]:
    """Backslash-continued lines as one command."""
    out: list[str] = []
    for line in lines:
        if out and out[-1].endswith("\\"):
            out[-1] = out[-1][:-1].rstrip() + " " + line.strip()
        else:
            out.append(line.strip())
    return out


def _pgkongtls_part(line: str) -> str | None:
    """The pgkongtls command of a line (`pip install . && pgkongtls init …` runs the init half)."""
    for part in line.split("&&"):
        if part.strip().startswith("pgkongtls "):
            return part.strip()
    return None


def help_examples() -> list[tuple[tuple[str, ...], list[str]]]:
    """(command path, its example lines) for the group and every command, lazy ones included."""
    from .test_help import ALL

    out = []
    for path in [(), *ALL]:
        text = CliRunner().invoke(main, [*path, "--help"], prog_name="pgkongtls", terminal_width=400).stdout
        body = text.split("Example:", 1)[1] if "Example:" in text else ""
        body = body.split("\nOptions:", 1)[0]
        lines = [ln for ln in _joined(body.splitlines()) if ln.startswith("pgkongtls ")]
        out.append((path, lines))
    return out


_FENCE = re.compile(r"^```(\w*)\s*$")
#: A README line that starts a new story: the blocks after it run in a fresh copy of the workspace.
FRESH_MARK = "<!-- docs-test: fresh workspace -->"


def readme_sections(text: str | None = None) -> list[Section]:
    """Every `pgkongtls` command in the README's ```console and ```sh blocks, by `##` section (or FRESH_MARK)."""
    sections = [Section("(top)")]
    lang: str | None = None
    block: list[str] = []
    for n, raw in enumerate((README.read_text() if text is None else text).splitlines(), 1):
        fence = _FENCE.match(raw)
        if lang is None and raw.startswith("## "):
            sections.append(Section(raw[3:].strip()))
        elif lang is None and raw.strip() == FRESH_MARK:
            sections.append(Section(f"{sections[-1].title.split(' (from README.md:')[0]} (from README.md:{n})"))
        elif fence and lang is None:
            lang, block = fence.group(1), []
        elif fence:
            if lang in ("console", "sh"):
                sections[-1].commands += _block_commands(lang, block, n - len(block))
            lang = None
        elif lang is not None:
            block.append(raw)
    return [s for s in sections if s.commands]


def _block_commands(lang: str, block: list[str], first: int) -> list[Cmd]:
    cmds: list[Cmd] = []
    if lang == "sh":
        for line in _joined(block):
            part = _pgkongtls_part(line)
            if part:
                cmds.append(Cmd(part, 0, f"README.md:{first}"))
        return cmds
    current: Cmd | None = None
    for i, line in enumerate(block):
        if line.startswith("$ "):
            command = line[2:].strip()
            if command == "echo $?" and current is not None and i + 1 < len(block):
                current.expect = int(block[i + 1].strip())
                continue
            part = _pgkongtls_part(command)
            current = Cmd(part, 0, f"README.md:{first + i}") if part else None
            if current:
                cmds.append(current)
        elif current is not None:
            shown = re.fullmatch(r"\(exit (\d+)\)", line.strip())
            if shown:
                current.expect = int(shown.group(1))
            elif line.startswith("Error: ") and current.expect == 0:
                current.expect = FAILS
    return cmds


def cut_pipes(line: str) -> str:
    parts = line.split(" | ")
    for i, part in enumerate(parts):
        if part.split() and part.split()[0] in CUT_PIPES:
            return " | ".join(parts[:i])
    return line


def made_dir(line: str) -> str | None:
    """The directory an `init` or `self-signed` line creates."""
    words = shlex.split(line, comments=True)
    if len(words) < 2 or words[1] not in ("init", "self-signed"):
        return None
    for i, w in enumerate(words):
        if w in ("--out", "--dir") and i + 1 < len(words):
            return words[i + 1]
    return "pki" if words[1] == "init" else "pki-test"


_HOST_REDIRECT = re.compile(r"(>>?)\s*(/(?!dev/)[^\s;|&]+)")


def host_redirects(ws: Path, line: str) -> str:
    """`> /var/lib/…/x.prom` writes the same path under ws/root instead (its directories made), not the host's."""
    def inside(m: re.Match[str]) -> str:
        target = ws / "root" / m.group(2).lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        return f"{m.group(1)} {shlex.quote(str(target))}"

    return _HOST_REDIRECT.sub(inside, line)


def run_line(ws: Path, line: str) -> subprocess.CompletedProcess[str]:
    line = host_redirects(ws, line)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "COLUMNS": "200"}
    return subprocess.run(["bash", "-c", f"set -o pipefail\n{line}"], cwd=ws, env=env, capture_output=True,
                          text=True, timeout=120)


def fresh(base: Path, ws: Path) -> Path:
    """A copy of the fixture workspace (modes kept: a PKI is 0700 with 0600 keys)."""
    shutil.copytree(base, ws, symlinks=True)
    return ws


def cli(ws: Path, *args: str) -> None:
    """Set-up through the real CLI (not the library), in the workspace."""
    old = Path.cwd()
    os.chdir(ws)
    try:
        r = CliRunner().invoke(main, list(args), prog_name="pgkongtls")
    finally:
        os.chdir(old)
    assert r.exit_code == 0, (args, r.output)


def command_names(group: click.Group = main) -> set[str]:
    return set(group.list_commands(click.Context(group)))
