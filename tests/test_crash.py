"""Crash safety: SIGKILL a writing command at every step it takes; the PKI directory is then exactly as before
or exactly the complete new state.

Each command runs as a real process (`python -m pgkongtls ...`) and is killed at a named step through fsio's
test hook PGKONGTLS_TEST_FAIL_AT=<step>:kill. The steps a command takes are recorded from a real run (a
wrapper logs fsio's checkpoints), and `test_the_kill_points_are_the_steps_each_command_takes` checks that
the parametrized kill points are exactly those, in order, so no step goes unkilled when fsio changes.

Why steps and not random moments: the PKI directory itself changes only at the one renameat2 exchange;
between two steps only the stage beside it grows (hard links, then new files, then fsync). A kill at each
step therefore meets every state the directory and its leftover stage can be in, deterministically, where
the random-delay kills this file used to make (about 60 s, outcome depending on timing) met a few.

After each kill:
- before the swap: the directory is byte-for-byte what it was (modes included), and the one leftover stage
  holds exactly the files that stay (identical) plus the new files written before the killed step; at
  `staged` that is the whole new PKI;
- at `swapped`: the directory is exactly the complete new state: every file that stays is byte-identical,
  exactly the written files are added (keys 0600, the rest 0644, backups holding the old bytes), the
  manifest agrees with every file, the change took effect; the leftover stage is the old directory,
  byte-for-byte;
- no private key anywhere under the parent directory has a group or world permission bit;
- the next run sweeps the stage and completes, or refuses with one `Error:` line and changes nothing. It is
  run after the kills that leave the three shapes of leftover stage: links only (the first write), the whole
  new PKI (`staged`), the old directory (`swapped`); the other writes leave a stage between the first two.
A fleet of 60 names (more files than SYNCFS_ABOVE, so the syncfs path) is killed at a fixed-seed sample of
its 123 steps; the recorded-steps test still checks all of them.
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from pgkongtls import ops
from pgkongtls.certs import utcnow
from pgkongtls.fsio import STAGE_TAG
from pgkongtls.manifest import MANIFEST_NAME, STAT_CACHE, Manifest, fingerprint, loads
from pgkongtls.pki import InitOptions

Tree = dict[str, tuple[int, bytes | None]]
BACKUP = re.compile(r"(.+)\.[0-9a-f]+\.bak")

#: Runs the CLI with fsio's checkpoints logged, one step a line, to the file named by argv[1].
RECORDER = """
import sys
import pgkongtls.fsio as fsio
log, real = open(sys.argv.pop(1), "a"), fsio._checkpoint
def record(step):
    log.write(step + "\\n")
    log.flush()
    real(step)
fsio._checkpoint = record
from pgkongtls.cli import run
run()
"""


def _env(fail_at: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PGKONGTLS_TEST_FAIL_AT"}
    if fail_at:
        env["PGKONGTLS_TEST_FAIL_AT"] = fail_at
    return env


def run(args: list[str], cwd: Path, fail_at: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pgkongtls", *args], cwd=cwd, env=_env(fail_at),
                          capture_output=True, text=True, timeout=120)


def record_steps(args: list[str], cwd: Path) -> list[str]:
    log = cwd / "steps.log"
    proc = subprocess.run([sys.executable, "-c", RECORDER, str(log), *args], cwd=cwd, env=_env(None),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return log.read_text().splitlines()


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
    backups = {n for n in present - expected if (b := BACKUP.fullmatch(n)) and b.group(1) in expected}
    assert present - backups - {STAT_CACHE} == expected  # the stat cache is advisory: there or not
    for e in m.certificates.values():
        cert = x509.load_pem_x509_certificates((pki / e.file).read_bytes())[0]
        assert fingerprint(cert) == e.sha256, e.file
        key = load_pem_private_key((pki / e.key_file).read_bytes(), password=None)
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


def assert_one_error_line(proc: subprocess.CompletedProcess[str], text: str) -> None:
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.splitlines() == [f"Error: {text}"]


def stages(parent: Path) -> list[str]:
    return [n for n in os.listdir(parent) if STAGE_TAG in n]


def umask() -> int:
    old = os.umask(0o022)
    os.umask(old)
    return old


def is_key(name: str) -> bool:
    b = BACKUP.fullmatch(name)
    return (b.group(1) if b else name).endswith(".key")


def assert_state(got: Tree, before: Tree, written: list[str], *, upto: int | None = None) -> None:
    """`got` is exactly `before` with the first `upto` of `written` (all by default) added or replaced, the
    rest of `written` not yet there: what stays is byte-identical (the directory's mode too; 0700 for a new
    one), each new file has its mode (keys 0600, the rest 0644 under the umask), a backup holds the old
    file's bytes."""
    got, before = ({k: v for k, v in t.items() if k != STAT_CACHE} for t in (got, before))  # advisory, see fsio.read
    new = written[:upto]
    stay = {n: e for n, e in before.items() if n != "." and n not in written}
    assert set(got) == {".", *stay, *new}
    assert got["."] == (before["."][0] if before else 0o700, None)
    for name, entry in stay.items():
        assert got[name] == entry, f"{name} changed"
    for name in new:
        mode, data = got[name]
        assert mode == (0o600 if is_key(name) else 0o644 & ~umask()), f"{name} has mode {mode:o}"
        assert data is not None
        assert (b"PRIVATE KEY" in data) == is_key(name), name
        if (b := BACKUP.fullmatch(name)) and b.group(1) in before:
            assert data == before[b.group(1)][1], f"{name} does not hold the old {b.group(1)}"


# ------------------------------------------------------------------ the commands and their steps

INIT_FILES = ("root.crt", "root.key", "intermediate.crt", "intermediate.key", "server.crt", "server.key",
              "client.crt", "client.key", "chain.crt", MANIFEST_NAME)
FLEET = [f"f{i:03d}" for i in range(60)]


def steps_writing(*files: str) -> list[str]:
    return [*(f"write:{f}" for f in files), "staged", "swapped"]


def init_done(m: Manifest) -> bool:
    return m.chain == "intermediate"  # the --force templates are chain=root, so a half swap would show


@dataclass(frozen=True)
class Command:
    args: list[str]
    template: str | None  # which PKI the command starts from; None: a directory that does not exist yet
    steps: list[str]  # `{serial}` stands for n1's serial in the template
    took_effect: Callable[[Manifest, Manifest | None], bool]
    repeat: str | None  # the one Error line a second run gives once the change took effect; None: it succeeds


COMMANDS = {
    "init": Command(["init", "--out", "pki", "--json"], None, steps_writing(*INIT_FILES), lambda m, _: init_done(m),
                    f"pki already holds a PKI ({MANIFEST_NAME}); pass --force to replace it"),
    "init-force": Command(["init", "--force", "--out", "pki"], "root", steps_writing(*INIT_FILES),
                          lambda m, _: init_done(m), None),
    "issue": Command(["issue", "client", "--dir", "pki", "--name", "c1"], "grown",
                     steps_writing("c1.crt", "c1.key", MANIFEST_NAME), lambda m, _: "c1" in m.certificates,
                     "c1 already exists in this PKI; pass --force to replace it, or renew it"),
    "renew": Command(["renew", "--dir", "pki", "n1"], "grown",
                     steps_writing("n1.crt.{serial}.bak", "n1.key.{serial}.bak", "n1.crt", "n1.key", MANIFEST_NAME),
                     lambda m, old: old is not None and m.certificates["n1"].serial != old.certificates["n1"].serial,
                     None),
    "revoke": Command(["revoke", "--dir", "pki", "n1"], "grown", steps_writing("crl.pem", MANIFEST_NAME),
                      lambda m, _: m.certificates["n1"].revoked is not None and m.crl_file is not None,
                      "n1 is already revoked (since {day}); pgkongtls crl re-signs the CRL"),
    "renew-intermediate": Command(["renew", "--dir", "pki", "intermediate"], "grown",
                                  steps_writing("intermediate.crt.{intermediate}.bak", "intermediate.crt", "chain.crt",
                                                MANIFEST_NAME),
                                  lambda m, old: old is not None and m.phase == "renewed"
                                  and m.certificates["intermediate"].serial != old.certificates["intermediate"].serial,
                                  None),
    "renew-root": Command(["renew", "--dir", "pki", "root"], "grown",
                          steps_writing("root.crt.{root}.bak", "root.crt", "chain.crt", MANIFEST_NAME),
                          lambda m, old: old is not None and m.phase == "renewed"
                          and m.certificates["root"].serial != old.certificates["root"].serial, None),
    "rotate-finish": Command(["rotate", "--dir", "pki", "finish"], "renewed",
                             steps_writing("chain.crt", "client.crt", "n1.crt", "server.crt", MANIFEST_NAME),
                             lambda m, _: m.phase is None and all("@" not in n for n in m.certificates),
                             "rotate finish refused: the PKI is in phase steady (no rotation); "
                             "next is pgkongtls rotate --dir PKI begin"),
    "rotate-begin": Command(["rotate", "--dir", "pki", "begin"], "crl",
                            steps_writing("root.crt.{root}.bak", "root.key.{root}.bak", "root.crt", "root.key",
                                          "intermediate.crt.{intermediate}.bak", "intermediate.key.{intermediate}.bak",
                                          "intermediate.crt", "intermediate.key", "crl.pem", "chain.crt", MANIFEST_NAME),
                            lambda m, _: m.phase == "begun",
                            "rotate begin refused: the PKI is in phase begun; next is pgkongtls rotate --dir PKI "
                            "reissue, once every host has the new chain.crt and crl.pem"),
    "rotate-reissue": Command(["rotate", "--dir", "pki", "reissue"], "begun",
                              steps_writing(*(f"{n}.{ext}{bak}" for n in ("client", "n1", "server")
                                              for bak, ext in ((f".{{{n}}}.bak", "crt"), (f".{{{n}}}.bak", "key"),
                                                               ("", "crt"), ("", "key"))), MANIFEST_NAME),
                              lambda m, _: m.phase == "reissued",
                              "rotate reissue refused: the PKI is in phase reissued; next is pgkongtls rotate --dir "
                              "PKI finish, once every host has its re-issued certificate"),
    "rotate-finish-new-cas": Command(["rotate", "--dir", "pki", "finish"], "reissued",
                                     steps_writing("chain.crt", "crl.pem", MANIFEST_NAME),
                                     lambda m, _: m.phase is None and all("@" not in n for n in m.certificates),
                                     "rotate finish refused: the PKI is in phase steady (no rotation); "
                                     "next is pgkongtls rotate --dir PKI begin"),
    "fleet": Command(["issue", "client", "--dir", "pki", *(f"--name={n}" for n in FLEET)], "grown",
                     steps_writing(*(f"{n}.{ext}" for n in FLEET for ext in ("crt", "key")), MANIFEST_NAME),
                     lambda m, _: set(FLEET) <= set(m.certificates),
                     "f000 already exists in this PKI; pass --force to replace it, or renew it"),
}

#: Every step of every command, except the fleet's: its first write, a fixed-seed sample of the others,
#: and the last three (the manifest, staged, swapped).
_fleet = COMMANDS["fleet"].steps
FLEET_KILLS = [_fleet[0], *sorted(random.Random(10).sample(_fleet[1:-3], 3), key=_fleet.index), *_fleet[-3:]]
KILLS = [(c, s) for c, cmd in COMMANDS.items() for s in (FLEET_KILLS if c == "fleet" else cmd.steps)]


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The PKIs the commands start from, made once and copied per test (modes kept)."""
    base = tmp_path_factory.mktemp("templates")
    now = utcnow()
    ops.init(base / "root", InitOptions(chain="root"), now=now)
    ops.init(base / "grown", InitOptions(), now=now)
    assert run(["issue", "client", "--dir", "grown", "--name", "n1"], base).returncode == 0
    shutil.copytree(base / "grown", base / "renewed", symlinks=True)
    assert run(["renew", "--dir", "renewed", "intermediate"], base).returncode == 0
    made = {"root": base / "root", "grown": base / "grown", "renewed": base / "renewed"}
    for name, source, args in (("crl", "grown", ["crl"]), ("begun", "crl", ["rotate", "--dir", "{}", "begin"]),
                               ("reissued", "begun", ["rotate", "--dir", "{}", "reissue"])):
        shutil.copytree(made[source], base / name, symlinks=True)
        args = [a.format(name) for a in args] if "{}" in args else [*args, "--dir", name]
        assert run(args, base).returncode == 0
        made[name] = base / name
    return made


def serials(m: Manifest | None) -> dict[str, str]:
    """What `{serial}` (n1's, also `{n1}`), `{intermediate}`, `{root}`, `{client}`, `{server}` stand for."""
    names = {"serial": "n1", "n1": "n1", "intermediate": "intermediate", "root": "root", "client": "client",
             "server": "server"}
    got = {k: m.certificates[n].serial for k, n in names.items() if m is not None and n in m.certificates}
    return {**dict.fromkeys(names, ""), **got}


@dataclass
class Setup:
    pki: Path
    before: Tree
    old: Manifest | None
    steps: list[str]
    written: list[str]


def setup(command: str, templates: dict[str, Path], work: Path) -> Setup:
    cmd = COMMANDS[command]
    pki = work / "pki"
    old = None
    if cmd.template:
        shutil.copytree(templates[cmd.template], pki, symlinks=True)
        old = loads((pki / MANIFEST_NAME).read_text())
    steps = [s.format(**serials(old)) for s in cmd.steps]
    return Setup(pki, tree(pki), old, steps, [s.removeprefix("write:") for s in steps if s.startswith("write:")])


@pytest.mark.parametrize("command", list(COMMANDS))
def test_the_kill_points_are_the_steps_each_command_takes(
    command: str, templates: dict[str, Path], tmp_path: Path,
) -> None:
    s = setup(command, templates, tmp_path)
    assert record_steps(COMMANDS[command].args, tmp_path) == s.steps
    assert COMMANDS[command].took_effect(assert_complete(s.pki), s.old)


@pytest.mark.parametrize(("command", "step"), KILLS, ids=[f"{c}-{s}" for c, s in KILLS])
def test_killed_at_a_step_leaves_exactly_the_old_or_the_complete_new_state(
    command: str, step: str, templates: dict[str, Path], tmp_path: Path,
) -> None:
    cmd = COMMANDS[command]
    s = setup(command, templates, tmp_path)
    step = step.format(**serials(s.old))
    proc = run(cmd.args, tmp_path, fail_at=f"{step}:kill")
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    left = stages(tmp_path)

    if step == "swapped":
        after = tree(s.pki)
        assert_state(after, s.before, s.written)
        assert cmd.took_effect(assert_complete(s.pki), s.old)
        if s.before:  # the exchange put the old directory where the stage was
            assert len(left) == 1 and tree(tmp_path / left[0]) == s.before
        else:
            assert left == []
    else:
        assert tree(s.pki) == s.before
        assert len(left) == 1, left
        stage = tmp_path / left[0]
        upto = None if step == "staged" else s.written.index(step.removeprefix("write:"))
        assert_state(tree(stage), s.before, s.written, upto=upto)
        if step == "staged":
            assert cmd.took_effect(assert_complete(stage), s.old)
    assert_no_loose_keys(tmp_path)
    if step not in (s.steps[0], "staged", "swapped"):
        return  # the next run, below, meets the three shapes a leftover stage can have; this one lies between

    state = tree(s.pki)
    again = run(cmd.args, tmp_path)
    if step == "swapped" and cmd.repeat is not None:
        n1 = loads((s.pki / MANIFEST_NAME).read_text()).certificates.get("n1")
        assert_one_error_line(again, cmd.repeat.format(day=((n1.revoked if n1 else None) or "")[:10]))
        assert tree(s.pki) == state  # a refusing run touches nothing
    else:
        assert again.returncode == 0, again.stderr
    assert cmd.took_effect(assert_complete(s.pki), s.old)
    assert stages(tmp_path) == []  # the next locked run sweeps what the killed one left
    assert_no_loose_keys(tmp_path)


# ------------------------------------------------------------------ injected failures (no kill): one line, nothing changed

FAILS = [("init-force", "write:root.key"), ("init-force", f"write:{MANIFEST_NAME}"), ("init-force", "staged"),
         ("issue", "staged"), ("renew", "staged"), ("revoke", "staged"), ("renew-intermediate", "staged"),
         ("rotate-finish", "staged"), ("rotate-begin", "staged"), ("rotate-reissue", "staged"),
         ("rotate-finish-new-cas", "staged")]


@pytest.mark.parametrize(("command", "step"), FAILS, ids=[f"{c}-{s}" for c, s in FAILS])
def test_failing_before_the_swap_says_one_line_and_changes_nothing(
    command: str, step: str, templates: dict[str, Path], tmp_path: Path,
) -> None:
    s = setup(command, templates, tmp_path)
    proc = run(COMMANDS[command].args, tmp_path, fail_at=step)
    assert_one_error_line(proc, f"injected failure at {step}")
    assert tree(s.pki) == s.before
    assert stages(tmp_path) == []
