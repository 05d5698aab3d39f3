"""Crash safety: SIGKILL a writing command anywhere, the PKI directory is as before or complete.

Each command runs as a real process (`python -m pgkongtls ...`). It is killed
either at a named step through fsio's test hook PGKONGTLS_TEST_FAIL_AT=<step>:kill
(every `write:<file>`, `staged`, `swapped`), or from outside after a seeded
random delay. Afterwards:
- the directory is byte-for-byte what it was (same files, same modes), or complete:
  a valid manifest naming exactly the files present, each certificate matching its
  manifest fingerprint and its key;
- no private key anywhere under the parent directory (leftover stages included)
  has a group or world permission bit;
- the next run either completes or refuses with one `Error:` line.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from pgkongtls import ops
from pgkongtls.fsio import STAGE_TAG
from pgkongtls.manifest import MANIFEST_NAME, Manifest, fingerprint, loads
from pgkongtls.pki import InitOptions

INIT_FILES = ("root.crt", "root.key", "intermediate.crt", "intermediate.key", "server.crt", "server.key",
              "client.crt", "client.key", "chain.crt", MANIFEST_NAME)
STEPS = [f"write:{n}" for n in INIT_FILES] + ["staged", "swapped"]

Tree = dict[str, tuple[int, bytes | None]]
BACKUP = re.compile(r"(.+)\.[0-9a-f]+\.bak")


def run(args: list[str], cwd: Path, fail_at: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PGKONGTLS_TEST_FAIL_AT"}
    if fail_at:
        env["PGKONGTLS_TEST_FAIL_AT"] = fail_at
    return subprocess.run([sys.executable, "-m", "pgkongtls", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def tree(root: Path) -> Tree:
    """Every entry under `root` (and root itself): relative path → (mode, bytes; None for a directory)."""
    if not root.exists():
        return {}
    out: Tree = {".": (stat.S_IMODE(root.stat().st_mode), None)}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            out[str(p.relative_to(root))] = (stat.S_IMODE(st.st_mode), None if stat.S_ISDIR(st.st_mode)
                                             else p.read_bytes())
    return out


def assert_complete(pki: Path) -> Manifest:
    """A whole PKI: the manifest names exactly the files present, and each file matches it."""
    m = loads((pki / MANIFEST_NAME).read_text(encoding="utf-8"))
    expected = {MANIFEST_NAME} | {n for e in m.certificates.values() for n in (e.file, e.key_file)}
    if m.mode == "ca":
        expected.add("chain.crt")
    if m.crl_file:
        expected.add(m.crl_file)
    present = set(os.listdir(pki))
    # renew keeps the old files as NAME.crt.<serial>.bak beside the manifest's; nothing else may be extra
    backups = {n for n in present - expected if BACKUP.fullmatch(n) and BACKUP.fullmatch(n).group(1) in expected}
    assert present - backups == expected
    for e in m.certificates.values():
        cert = x509.load_pem_x509_certificates((pki / e.file).read_bytes())[0]
        assert fingerprint(cert) == e.sha256, e.file
        try:
            key = load_pem_private_key((pki / e.key_file).read_bytes(), password=None)
        except TypeError:  # a CA key stored encrypted (--ca-passphrase-file): it must still parse as one
            assert b"ENCRYPTED PRIVATE KEY" in (pki / e.key_file).read_bytes()
        else:
            assert key.public_key() == cert.public_key(), e.key_file
        assert stat.S_IMODE((pki / e.key_file).stat().st_mode) & 0o077 == 0, e.key_file
    return m


def assert_no_loose_keys(parent: Path) -> None:
    """No file holding a private key under `parent` is readable by group or world."""
    for dirpath, _, filenames in os.walk(parent):
        for name in filenames:
            p = Path(dirpath) / name
            if name.endswith(".key") or b"PRIVATE KEY" in p.read_bytes():
                mode = stat.S_IMODE(p.stat().st_mode)
                assert mode & 0o077 == 0, f"{p} has mode {mode:o}"


def assert_before_or_complete(pki: Path, before: Tree) -> str:
    """'before' when nothing changed, 'complete' when the whole new PKI is there."""
    after = tree(pki)
    if after == before:
        return "before"
    assert after, "the PKI directory vanished"
    assert_complete(pki)
    return "complete"


def assert_one_error_line(proc: subprocess.CompletedProcess[str], text: str) -> None:
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.splitlines() == [f"Error: {text}"]


def stages(parent: Path) -> list[str]:
    return [n for n in os.listdir(parent) if STAGE_TAG in n]


# ------------------------------------------------------------------ init into a new directory

@pytest.mark.parametrize("step", STEPS)
def test_init_killed_at_each_step_leaves_nothing_or_a_complete_pki(step: str, tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    proc = run(["init", "--out", "pki", "--json"], tmp_path, fail_at=f"{step}:kill")
    assert proc.returncode == -signal.SIGKILL
    outcome = assert_before_or_complete(pki, {})
    assert outcome == ("complete" if step == "swapped" else "before")
    assert_no_loose_keys(tmp_path)

    again = run(["init", "--out", "pki", "--json"], tmp_path)
    if outcome == "complete":
        assert_one_error_line(again, f"pki already holds a PKI ({MANIFEST_NAME}); pass --force to replace it")
    else:
        assert again.returncode == 0, again.stderr
        assert loads(again.stdout) == assert_complete(pki)
    assert stages(tmp_path) == []  # the next locked run sweeps what the killed one left
    assert_no_loose_keys(tmp_path)


# ------------------------------------------------------------------ init --force over an existing PKI

@pytest.fixture
def existing(tmp_path: Path) -> tuple[Path, Tree]:
    pki = tmp_path / "pki"
    ops.init(pki, InitOptions(chain="root"))  # a different shape, so a half swap would show
    return pki, tree(pki)


@pytest.mark.parametrize("step", STEPS)
def test_init_force_killed_at_each_step_keeps_the_old_pki_or_the_whole_new_one(
    step: str, existing: tuple[Path, Tree],
) -> None:
    pki, before = existing
    proc = run(["init", "--force", "--out", "pki"], pki.parent, fail_at=f"{step}:kill")
    assert proc.returncode == -signal.SIGKILL
    outcome = assert_before_or_complete(pki, before)
    assert outcome == ("complete" if step == "swapped" else "before")
    if outcome == "complete":
        assert loads((pki / MANIFEST_NAME).read_text()).chain == "intermediate"
    assert_no_loose_keys(pki.parent)

    again = run(["init", "--force", "--out", "pki"], pki.parent)
    assert again.returncode == 0, again.stderr
    assert assert_complete(pki).chain == "intermediate"
    assert stages(pki.parent) == []
    assert_no_loose_keys(pki.parent)


@pytest.mark.parametrize("step", ["write:root.key", "write:pgkongtls.json", "staged"])
def test_init_force_failing_at_a_step_says_one_line_and_changes_nothing(
    step: str, existing: tuple[Path, Tree],
) -> None:
    pki, before = existing
    proc = run(["init", "--force", "--out", "pki"], pki.parent, fail_at=step)
    assert_one_error_line(proc, f"injected failure at {step}")
    assert tree(pki) == before
    assert stages(pki.parent) == []


# ------------------------------------------------------------------ SIGKILL from outside, random moments

def kill_after(args: list[str], cwd: Path, delay: float) -> int:
    env = {k: v for k, v in os.environ.items() if k != "PGKONGTLS_TEST_FAIL_AT"}
    proc = subprocess.Popen([sys.executable, "-m", "pgkongtls", *args], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    return proc.wait(timeout=60)


def kill_trial(work: Path, delay: float) -> str:
    """Kill `init --force` over an existing PKI after `delay`; check the invariants; return the outcome."""
    work.mkdir()
    pki = work / "pki"
    ops.init(pki, InitOptions(chain="root"))
    before = tree(pki)
    kill_after(["init", "--force", "--out", "pki"], work, delay)
    outcome = assert_before_or_complete(pki, before)
    assert_no_loose_keys(work)
    again = run(["init", "--force", "--out", "pki"], work)
    assert again.returncode == 0, again.stderr
    assert assert_complete(pki).chain == "intermediate"
    assert stages(work) == []
    assert_no_loose_keys(work)
    return outcome


@pytest.fixture(scope="module")
def commit_moment(tmp_path_factory: pytest.TempPathFactory) -> float:
    """When, after start, a kill stops landing 'before': the files are written just before it.

    Found by bisection (every probe is itself a checked kill), so the seeded kills
    below can cluster around the few milliseconds in which fsio stages and swaps.
    """
    base = tmp_path_factory.mktemp("bisect")
    lo, hi = 0.0, 1.0
    for i in range(7):
        mid = (lo + hi) / 2
        if kill_trial(base / str(i), mid) == "before":
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


@pytest.mark.parametrize("seed", range(12))
def test_init_force_killed_at_a_random_moment_is_before_or_complete(
    seed: int, commit_moment: float, tmp_path: Path,
) -> None:
    rng = random.Random(seed)
    delay = rng.uniform(0, 2 * commit_moment) if seed < 3 else commit_moment + rng.uniform(-0.012, 0.006)
    kill_trial(tmp_path / "w", max(delay, 0.0))


# ------------------------------------------------------------------ issue, renew, revoke

@pytest.fixture
def grown(tmp_path: Path) -> tuple[Path, Tree]:
    """A PKI with one extra client, n1, for the lifecycle commands to work on."""
    pki = tmp_path / "pki"
    ops.init(pki, InitOptions())
    assert run(["issue", "client", "--dir", "pki", "--name", "n1"], tmp_path).returncode == 0
    return pki, tree(pki)


def issued(m: Manifest) -> bool:
    return "c1" in m.certificates


def renewed(before: Manifest) -> Callable[[Manifest], bool]:
    return lambda m: m.certificates["n1"].serial != before.certificates["n1"].serial


def revoked(m: Manifest) -> bool:
    return m.certificates["n1"].revoked is not None and m.crl_file is not None


#: command, its own file steps, how to tell it took effect, what a repeat says once it has
LIFECYCLE = {
    "issue": (["issue", "client", "--dir", "pki", "--name", "c1"], ["c1.crt", "c1.key"],
              "c1 already exists in this PKI; pass --force to replace it, or renew it"),
    "renew": (["renew", "--dir", "pki", "n1"], ["n1.crt", "n1.key"], None),
    "revoke": (["revoke", "--dir", "pki", "n1"], ["crl.pem"], "n1 is already revoked (since {day}); "
                                                             "pgkongtls crl re-signs the CRL"),
}
LIFECYCLE_STEPS = [(cmd, step) for cmd, (_, files, _) in LIFECYCLE.items()
                   for step in [*(f"write:{f}" for f in files), f"write:{MANIFEST_NAME}", "staged", "swapped"]]


@pytest.mark.parametrize(("command", "step"), LIFECYCLE_STEPS, ids=[f"{c}-{s}" for c, s in LIFECYCLE_STEPS])
def test_lifecycle_killed_at_each_step_keeps_manifest_and_files_in_agreement(
    command: str, step: str, grown: tuple[Path, Tree],
) -> None:
    pki, before = grown
    args, _, repeat = LIFECYCLE[command]
    old = loads((pki / MANIFEST_NAME).read_text())
    took_effect = {"issue": issued, "renew": renewed(old), "revoke": revoked}[command]
    proc = run(args, pki.parent, fail_at=f"{step}:kill")
    assert proc.returncode == -signal.SIGKILL
    outcome = assert_before_or_complete(pki, before)
    assert outcome == ("complete" if step == "swapped" else "before")
    if outcome == "complete":
        assert took_effect(assert_complete(pki))
    assert_no_loose_keys(pki.parent)

    again = run(args, pki.parent)
    if outcome == "complete" and repeat is not None:
        since = loads((pki / MANIFEST_NAME).read_text()).certificates["n1"].revoked or ""
        assert_one_error_line(again, repeat.format(day=since[:10]))
    else:
        assert again.returncode == 0, again.stderr
    assert took_effect(assert_complete(pki))
    assert stages(pki.parent) == []
    assert_no_loose_keys(pki.parent)


@pytest.mark.parametrize("command", list(LIFECYCLE))
def test_lifecycle_failing_before_the_swap_says_one_line_and_changes_nothing(
    command: str, grown: tuple[Path, Tree],
) -> None:
    pki, before = grown
    proc = run(LIFECYCLE[command][0], pki.parent, fail_at="staged")
    assert_one_error_line(proc, "injected failure at staged")
    assert tree(pki) == before
    assert stages(pki.parent) == []


FLEET = [f"--name=f{i:03d}" for i in range(60)]


@pytest.mark.parametrize("seed", range(6))
def test_issue_of_a_fleet_killed_at_a_random_moment_is_before_or_complete(
    seed: int, grown: tuple[Path, Tree],
) -> None:
    """60 names widen the write window; the delays spread from start-up to past the commit."""
    pki, before = grown
    t0 = time.perf_counter()
    probe = pki.parent / "probe"
    shutil.copytree(pki, probe)
    assert run(["issue", "client", "--dir", "probe", *FLEET], pki.parent).returncode == 0
    duration = time.perf_counter() - t0
    shutil.rmtree(probe)
    kill_after(["issue", "client", "--dir", "pki", *FLEET], pki.parent, random.Random(seed).uniform(0.5, 1.1) * duration)
    if assert_before_or_complete(pki, before) == "complete":
        assert all(f"f{i:03d}" in assert_complete(pki).certificates for i in range(60))
    assert_no_loose_keys(pki.parent)
    again = run(["issue", "client", "--dir", "pki", "--force", *FLEET], pki.parent)
    assert again.returncode == 0, again.stderr
    assert_complete(pki)
    assert stages(pki.parent) == []
