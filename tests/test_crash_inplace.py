"""Crash safety of the in-place path: a PKI directory at the root of a mount point (#11).

A dedicated volume cannot be swapped (EBUSY), so fsio stages inside it and renames file by file, the
manifest last, behind a commit marker (fsio.inplace). Each command runs as a real process in its own mount
namespace where the PKI directory is a bind mount of itself (`unshare -m` + `mount --bind`: what a
`docker run -v` volume is, and what os.path.ismount does not see), is SIGKILLed at every step it takes, and
then run again. As in test_crash.py (whose helpers this reuses), the steps are recorded from a real run and
must be exactly the parametrized kill points.

After a kill before the commit marker the PKI is exactly as it was (apart from the stage inside it); after
one at or past it the files are half placed, and the next run completes the killed change first. Either way
the next run ends in exactly the complete new state (issue, revoke: they then refuse to repeat themselves),
sweeps the stage, and no key is ever readable by group or world.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pgkongtls.fsio.inplace import INPLACE_DIR
from pgkongtls.manifest import MANIFEST_NAME, loads

from .test_crash import (
    COMMANDS,
    RECORDER,
    _env,
    assert_complete,
    assert_no_loose_keys,
    assert_one_error_line,
    assert_state,
    setup,
    stages,
    templates,
    tree,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                                reason="needs root and unshare(1) for a mount namespace")

__all__ = ["templates"]  # the fixture, shared with test_crash.py

#: Runs argv[2:] with argv[1] (the PKI directory) bind-mounted on itself, in a private mount namespace.
MOUNTED = ["unshare", "-m", "--propagation", "private", "sh", "-c", 'mount --bind "$1" "$1" && shift && exec "$@"',
           "sh"]


def run_mounted(pki: Path, argv: list[str], cwd: Path, fail_at: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MOUNTED, str(pki), *argv], cwd=cwd, env=_env(fail_at), capture_output=True, text=True,
                          timeout=120)


def cli(pki: Path, args: list[str], cwd: Path, fail_at: str | None = None) -> subprocess.CompletedProcess[str]:
    return run_mounted(pki, [sys.executable, "-m", "pgkongtls", *args], cwd, fail_at)


def inplace_steps(written: list[str]) -> list[str]:
    """write each file (the manifest last), the marker, place each file (the manifest last), done."""
    files = sorted(n for n in written if n != MANIFEST_NAME)
    return [*(f"write:{n}" for n in files), f"write:{MANIFEST_NAME}", "staged",
            *(f"place:{n}" for n in files), f"place:{MANIFEST_NAME}", "swapped"]


IN_PLACE = ("issue", "renew", "revoke")
KILLS = [(c, i) for c in IN_PLACE for i in range(2 * (len(COMMANDS[c].steps) - 2) + 2)]


def outside_stage(t: dict[str, tuple[int, bytes | None]]) -> dict[str, tuple[int, bytes | None]]:
    return {k: v for k, v in t.items() if k != INPLACE_DIR and not k.startswith(f"{INPLACE_DIR}/")}


@pytest.mark.parametrize("command", IN_PLACE)
def test_the_in_place_kill_points_are_the_steps_each_command_takes(
        command: str, templates: dict[str, Path], tmp_path: Path) -> None:
    s = setup(command, templates, tmp_path)
    log = tmp_path / "steps.log"
    proc = run_mounted(s.pki, [sys.executable, "-c", RECORDER, str(log), *COMMANDS[command].args], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert log.read_text().splitlines() == inplace_steps(s.written)
    assert_state(tree(s.pki), s.before, s.written)
    assert COMMANDS[command].took_effect(assert_complete(s.pki), s.old)
    assert stages(tmp_path) == []


def test_without_the_mount_the_same_command_swaps(templates: dict[str, Path], tmp_path: Path) -> None:
    """The twin: outside a mount namespace the exchange path runs (its steps, not the in-place ones)."""
    s = setup("issue", templates, tmp_path)
    log = tmp_path / "steps.log"
    proc = subprocess.run([sys.executable, "-c", RECORDER, str(log), *COMMANDS["issue"].args], cwd=tmp_path,
                          env=_env(None), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert log.read_text().splitlines() == s.steps


@pytest.mark.parametrize(("command", "index"), KILLS, ids=[f"{c}-{i}" for c, i in KILLS])
def test_killed_in_place_the_next_run_ends_in_the_complete_new_state(
        command: str, index: int, templates: dict[str, Path], tmp_path: Path) -> None:
    cmd = COMMANDS[command]
    s = setup(command, templates, tmp_path)
    steps = inplace_steps(s.written)
    step = steps[index]
    proc = cli(s.pki, cmd.args, tmp_path, fail_at=f"{step}:kill")
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    marked = index >= steps.index("staged")
    if not marked:
        assert outside_stage(tree(s.pki)) == s.before  # not one file of the PKI touched yet
    if step == "swapped":
        assert_state(outside_stage(tree(s.pki)), s.before, s.written)
    assert_no_loose_keys(tmp_path)

    again = cli(s.pki, cmd.args, tmp_path)
    if marked and cmd.repeat is not None:  # the killed run was completed first: this one has nothing to do
        n1 = loads((s.pki / MANIFEST_NAME).read_text()).certificates.get("n1")
        assert_one_error_line(again, cmd.repeat.format(day=((n1.revoked if n1 else None) or "")[:10]))
    else:
        assert again.returncode == 0, again.stderr
    if marked and cmd.repeat is None:
        assert cmd.took_effect(assert_complete(s.pki), s.old)  # renewed twice: complete, with new serials
    else:
        assert_state(tree(s.pki), s.before, s.written)
        assert cmd.took_effect(assert_complete(s.pki), s.old)
    assert not (s.pki / INPLACE_DIR).exists() and stages(tmp_path) == []
    assert_no_loose_keys(tmp_path)


def test_a_tmpfs_volume_takes_every_day2_command(tmp_path: Path) -> None:
    """A real separate filesystem mounted at the PKI (another st_dev): init, issue, renew, revoke, crl work,
    where each used to fail with 'Device or resource busy'. Checked inside the namespace by status."""
    pki = tmp_path / "pki"
    pki.mkdir(mode=0o700)
    py = f"{sys.executable} -m pgkongtls"
    script = (f'mount -t tmpfs -o mode=0700 tmpfs "$1" && cd "$1/.." && {py} init --out pki && '
              f"{py} issue client --dir pki --name n1 && {py} renew --dir pki n1 --reuse-key && "
              f"{py} revoke --dir pki n1 --reason keyCompromise && {py} crl --dir pki && "
              f"{py} status --dir pki --json && ls -a pki")
    proc = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", str(pki)],
                          env=_env(None), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Device or resource busy" not in proc.stderr
    assert '"n1@' in proc.stdout  # keyCompromise reached the archived certificate too
    assert INPLACE_DIR not in proc.stdout.split()
    assert os.listdir(pki) == []  # everything went to the volume, nothing to the directory beneath it
