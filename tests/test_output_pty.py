"""People's output on a real terminal: the command runs with stderr on a pseudo-terminal of a chosen width.

Tables are drawn (box characters) and fit the terminal's width; hints are never broken by a newline
(the terminal may fold them on screen, but a copy-paste gets the whole command); --json leaves the
terminal empty. The log side is tests/test_output.py.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from .clirun import ok

BOX = set("─━│┃┌┏┐┓└┗┘┛├┣┤┫┬┳┴┻┼╋═║╔╗╚╝╭╮╰╯")
_CSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def on_pty(cwd: Path, *args: str, cols: int) -> tuple[int, str, str]:
    """(exit code, stdout, what the terminal showed without its escape sequences and \\r)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, cols, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "FORCE_COLOR", "TTY_COMPATIBLE")}
    env.update(TERM="xterm-256color", NO_COLOR="1")
    proc = subprocess.Popen([sys.executable, "-m", "pgkongtls", *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    shown = b""
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the command closed the terminal
            break
        if not data:
            break
        shown += data
    os.close(master)
    assert proc.stdout is not None
    stdout = proc.stdout.read().decode()
    proc.stdout.close()
    return proc.wait(timeout=60), stdout, _CSI.sub("", shown.decode()).replace("\r", "")


@pytest.fixture
def pki(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    ok("init", "--out", "pki")
    return tmp_path


@pytest.mark.parametrize("cols", [80, 120])
def test_status_draws_a_table_as_wide_as_the_terminal(pki: Path, cols: int) -> None:
    code, stdout, shown = on_pty(pki, "status", "--dir", "pki", cols=cols)
    assert (code, stdout) == (0, "")
    lines = shown.splitlines()
    assert BOX & set(shown)
    assert max(len(line) for line in lines) <= cols
    assert shown.endswith("nothing expires within 30 days\n")
    for name in ("root", "intermediate", "server", "client"):
        assert any(line.startswith(f"│ {name} ") for line in lines), name


def test_a_terminal_too_narrow_for_whole_words_gets_the_plain_lines(pki: Path) -> None:
    """Folding 'intermediate' into 'intermedia' + 'te' helps nobody: below the table's width, print lines."""
    code, _, shown = on_pty(pki, "status", "--dir", "pki", cols=60)
    assert code == 0 and not BOX & set(shown)
    assert [line.split()[:2] for line in shown.splitlines()[1:5]] == [
        ["root", "root"], ["intermediate", "intermediate"], ["server", "server"], ["client", "client"]]


def test_a_hint_wider_than_the_terminal_is_one_line(pki: Path) -> None:
    code, _, shown = on_pty(pki, "issue", "client", "--dir", "pki", "--name", "kong-node-with-a-long-name-1", cols=100)
    assert code == 0 and BOX & set(shown)
    hint = ("next: pgkongtls bundle kong --dir pki --client kong-node-with-a-long-name-1 --out "
            "pki-kong-node-with-a-long-name-1-bundle --force; then, on that Kong node, the pgkongtls install command "
            "it prints (it ends with kong restart)")
    assert shown.splitlines()[-1] == hint


def test_init_draws_its_summary_table_on_a_terminal(tmp_path: Path) -> None:
    code, stdout, shown = on_pty(tmp_path, "init", "--out", "pki", cols=100)
    assert (code, stdout) == (0, "")
    assert BOX & set(shown) and "PKI written to pki" in shown
    assert shown.endswith("next: pgkongtls render all --dir pki --write pki-config\n")


@pytest.mark.parametrize("args", [["status", "--dir", "pki", "--json"], ["verify", "pki", "--json"],
                                  ["status", "--dir", "pki", "--format", "prometheus"]])
def test_machine_output_leaves_the_terminal_empty(pki: Path, args: list[str]) -> None:
    code, stdout, shown = on_pty(pki, *args, cols=80)
    assert (code, shown) == (0, "")
    assert stdout.startswith(("{", "[", "# HELP"))


def test_verify_findings_on_a_terminal(pki: Path) -> None:
    (pki / "pki" / "client.key").chmod(0o644)
    code, _, shown = on_pty(pki, "verify", "pki", cols=100)
    assert code == 1 and BOX & set(shown)
    assert max(len(line) for line in shown.splitlines()) <= 100
    assert shown.endswith("1 error(s), 0 warning(s)\n")
