"""Crash safety of a big PKI's commit: above fsio.inplace.INPLACE_ABOVE files a day-2 command commits in place.

The directory exchange hard-links every file of the PKI into a stage, so its cost grows with the PKI;
above the threshold fsio stages inside the target and renames file by file, the manifest last, behind a
commit marker (fsio.inplace), no mount needed. As in test_crash_inplace.py (whose helpers this reuses),
each command runs as a real process, is SIGKILLed at every step it takes, then run again: the next run
ends in exactly the complete new state, and a failure before the marker changes nothing at all.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pgkongtls import ops
from pgkongtls.certs import utcnow
from pgkongtls.fsio.inplace import INPLACE_ABOVE, INPLACE_DIR
from pgkongtls.lifecycle import LeafRequest
from pgkongtls.manifest import MANIFEST_NAME, loads
from pgkongtls.pki import InitOptions

from .test_crash import (
    COMMANDS,
    RECORDER,
    Setup,
    _env,
    assert_complete,
    assert_no_loose_keys,
    assert_one_error_line,
    assert_state,
    run,
    serials,
    stages,
    tree,
)
from .test_crash_inplace import inplace_steps, outside_stage

COMMANDS_HERE = ("issue", "renew", "revoke")
#: Enough leaves (2 files each) to put the PKI just past the threshold.
FILLERS = INPLACE_ABOVE // 2 + 1


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The crash tests' `grown` PKI (n1 issued) with enough further leaves to pass the threshold."""
    d = tmp_path_factory.mktemp("big") / "pki"
    now = utcnow()
    ops.init(d, InitOptions(), now=now)
    ops.issue(d, [LeafRequest(name="n1", role="client", cn=None)], now=now)
    ops.issue(d, [LeafRequest(name=f"fill{i:03d}", role="client", cn="{name}") for i in range(FILLERS)], now=now)
    assert len(list(d.iterdir())) > INPLACE_ABOVE
    return d


def big_setup(command: str, template: Path, work: Path) -> Setup:
    pki = work / "pki"
    shutil.copytree(template, pki, symlinks=True)
    old = loads((pki / MANIFEST_NAME).read_text())
    steps = [s.format(**serials(old)) for s in COMMANDS[command].steps]
    return Setup(pki, tree(pki), old, steps, [s.removeprefix("write:") for s in steps if s.startswith("write:")])


def record(s: Setup, command: str, cwd: Path) -> list[str]:
    log = cwd / "steps.log"
    proc = subprocess.run([sys.executable, "-c", RECORDER, str(log), *COMMANDS[command].args], cwd=cwd,
                          env=_env(None), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return log.read_text().splitlines()


@pytest.mark.parametrize("command", COMMANDS_HERE)
def test_a_big_pki_commits_in_place(command: str, big: Path, tmp_path: Path) -> None:
    s = big_setup(command, big, tmp_path)
    assert record(s, command, tmp_path) == inplace_steps(s.written)
    assert_state(tree(s.pki), s.before, s.written)
    assert COMMANDS[command].took_effect(assert_complete(s.pki), s.old)
    assert stages(tmp_path) == []


# The twin, a small PKI that still swaps, is test_crash.py's test_the_kill_points_are_the_steps_each_command_takes.

KILLS = [(c, i) for c in COMMANDS_HERE for i in range(2 * (len(COMMANDS[c].steps) - 2) + 2)]


@pytest.mark.parametrize(("command", "index"), KILLS, ids=[f"{c}-{i}" for c, i in KILLS])
def test_a_big_pki_killed_in_place_ends_in_the_complete_new_state(
        command: str, index: int, big: Path, tmp_path: Path) -> None:
    cmd = COMMANDS[command]
    s = big_setup(command, big, tmp_path)
    steps = inplace_steps(s.written)
    step = steps[index]
    proc = run(cmd.args, tmp_path, fail_at=f"{step}:kill")
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    marked = index >= steps.index("staged")
    if not marked:
        assert outside_stage(tree(s.pki)) == s.before  # not one file of the PKI touched yet
    assert_no_loose_keys(tmp_path)

    again = run(cmd.args, tmp_path)
    if marked and cmd.repeat is not None:  # the killed run was completed first: this one has nothing to do
        n1 = loads((s.pki / MANIFEST_NAME).read_text()).certificates.get("n1")
        assert_one_error_line(again, cmd.repeat.format(day=((n1.revoked if n1 else None) or "")[:10]))
    else:
        assert again.returncode == 0, again.stderr
    if not (marked and cmd.repeat is None):  # renewed twice: complete, with new serials, checked below
        assert_state(tree(s.pki), s.before, s.written)
    assert cmd.took_effect(assert_complete(s.pki), s.old)
    assert not (s.pki / INPLACE_DIR).exists() and stages(tmp_path) == []
    assert_no_loose_keys(tmp_path)


@pytest.mark.parametrize("command", COMMANDS_HERE)
def test_a_big_pki_failing_before_the_marker_says_one_line_and_changes_nothing(
        command: str, big: Path, tmp_path: Path) -> None:
    s = big_setup(command, big, tmp_path)
    proc = run(COMMANDS[command].args, tmp_path, fail_at=f"write:{MANIFEST_NAME}")
    assert_one_error_line(proc, f"injected failure at write:{MANIFEST_NAME}")
    assert tree(s.pki) == s.before
