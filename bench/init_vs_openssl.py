"""`pgkongtls init` against the source document's openssl procedure and against cfssl, wall time.

Run: .venv/bin/python bench/init_vs_openssl.py [--rounds 11]

One process tree, alternating runs in every round (the order rotates so drift
on a shared machine hits every contender alike), each run into a fresh directory:
  A-rsa  `pgkongtls init --chain intermediate --key-type rsa-2048` (console script, subprocess)
  A-ec   the same with `--key-type ecdsa-p256` (the default)
  B      the document's intermediate-chain procedure, command for command, each command
         its own process as an operator's shell would run it (chmod and cat included)
  C      Debian's cfssl doing the same job, P-256 (bench/cfssl.py: 4 pipelines and a cat)
  A-ec on a terminal: A-ec with stderr on a pseudo-terminal, so pgkongtls draws its rich table
  F1, F2 floors: `python -c pass` and `python -c "import cryptography.x509"` on pgkongtls's interpreter
  F3     the least a Python program does for the same job (bench/minimal_init.py: no checks, no fsync)
Every pgkongtls and cfssl run makes a server certificate for db.internal and 10.0.0.5.
Prints each median and the ratios to B and C. Targets: A-rsa/B <= 0.35, A-ec/B <= 0.2,
A-ec/C <= 2. No assertions. Without cfssl (and no root to apt-get it) C is skipped, said why.
"""

from __future__ import annotations

import argparse
import os
import platform
import pty
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cfssl
from procedure import run_procedure

BIN = Path(sys.executable).parent / "pgkongtls"
HOSTS = ["--db-host", "db.internal", "--db-host", "10.0.0.5"]


def init_argv(out: Path, key_type: str) -> list[str]:
    return [str(BIN), "init", "--chain", "intermediate", "--key-type", key_type, *HOSTS, "--out", str(out)]


def run_init(out: Path, key_type: str) -> None:
    subprocess.run(init_argv(out, key_type), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_init_on_terminal(out: Path, key_type: str) -> None:
    """The same, with stderr on a pseudo-terminal: what a person at a shell sees (the rich table)."""
    master, slave = pty.openpty()
    drain = threading.Thread(target=_drain, args=(master,))
    drain.start()
    try:
        subprocess.run(init_argv(out, key_type), check=True, stdout=subprocess.DEVNULL, stderr=slave)
    finally:
        os.close(slave)
        drain.join()
        os.close(master)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 65536):
            pass
    except OSError:  # EIO once the last writer has closed the terminal
        pass


def run_python(_out: Path, code: str) -> None:
    subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_minimal(out: Path) -> None:
    subprocess.run([sys.executable, str(Path(__file__).resolve().parent / "minimal_init.py"), str(out)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Contender:
    """A labelled run; `prepare` (not timed) writes what the user already has, such as cfssl's JSON files."""

    def __init__(self, label: str, run: Callable[[Path], None], prepare: Callable[[Path], None] | None = None):
        self.label, self.run, self.prepare = label, run, prepare

    def timed(self, work: Path) -> float:
        """Wall time of one run into a fresh directory under `work`."""
        out = Path(tempfile.mkdtemp(dir=work)) / "pki"
        if self.prepare:
            self.prepare(out)
        t0 = time.perf_counter()
        self.run(out)
        elapsed = time.perf_counter() - t0
        shutil.rmtree(out.parent)
        return elapsed


def machine() -> str:
    cpu = "?"
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import cryptography
    from cryptography.hazmat.backends.openssl import backend

    def version(*argv: str) -> str:
        if not shutil.which(argv[0]):
            return "missing"
        return subprocess.run(argv, capture_output=True, text=True).stdout.strip().replace("\n", ", ")

    return (f"nproc {os.cpu_count()}, CPU {cpu}, load average {os.getloadavg()[0]:.1f} at the start\n"
            f"Python {platform.python_version()} (ssl: {ssl.OPENSSL_VERSION}), "
            f"cryptography {cryptography.__version__} ({backend.openssl_version_text()})\n"
            f"openssl CLI: {version('openssl', 'version')}; cfssl: {version('cfssl', 'version')}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=11)
    args = ap.parse_args()
    no_cfssl = cfssl.available()
    contenders = [
        Contender("A-rsa  pgkongtls init --key-type rsa-2048", lambda o: run_init(o, "rsa-2048")),
        Contender("A-ec   pgkongtls init --key-type ecdsa-p256", lambda o: run_init(o, "ecdsa-p256")),
        Contender("B      openssl procedure (14 commands)", lambda o: run_procedure(o, "intermediate")),
        *([] if no_cfssl else [Contender(f"C      cfssl, P-256 ({len(cfssl.COMMANDS)} commands)", cfssl.run_cfssl,
                                         cfssl.prepare)]),
        Contender("A-ec   the same, stderr on a terminal", lambda o: run_init_on_terminal(o, "ecdsa-p256")),
        Contender("F1     python -c pass", lambda o: run_python(o, "pass")),
        Contender("F2     python -c 'import cryptography.x509'", lambda o: run_python(o, "import cryptography.x509")),
        Contender("F3     minimal Python init, P-256", run_minimal),
    ]
    # An installed package has its bytecode cached; a dev shell may forbid writing it.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    times: dict[str, list[float]] = {c.label: [] for c in contenders}
    start = machine()
    with tempfile.TemporaryDirectory(prefix="pgk-bench-") as tmp:
        work = Path(tmp)
        for c in contenders:  # warm the page cache and the bytecode once, not measured
            c.timed(work)
        for r in range(args.rounds):
            for c in contenders[r % len(contenders):] + contenders[:r % len(contenders)]:
                times[c.label].append(c.timed(work))
    report(start, args.rounds, times, no_cfssl)


def report(start: str, rounds: int, times: dict[str, list[float]], no_cfssl: str | None) -> None:
    med = {n: statistics.median(t) for n, t in times.items()}
    names = list(times)
    a_rsa, a_ec, b, term = names[0], names[1], names[2], names[-4]
    c = None if no_cfssl else names[3]
    targets = {(a_rsa, b): 0.35, (a_ec, b): 0.2, (term, b): 0.2, (a_ec, c): 2.0}
    print(start)
    print(f"{rounds} rounds, alternating; wall time per run in ms")
    print(f"{'contender':46} {'median':>8} {'min':>8} {'max':>8} {'/B':>6} {'/C':>6}  target")
    for n in names:
        ratios = [f"{med[n] / med[base]:.2f}" if base and n != base else ("1" if n == base else "-") for base in (b, c)]
        target = ", ".join(f"/{'B' if base == b else 'C'} <= {v}" for (a, base), v in targets.items()
                           if a == n and base)
        print(f"{n:46} {med[n] * 1e3:8.1f} {min(times[n]) * 1e3:8.1f} {max(times[n]) * 1e3:8.1f} "
              f"{ratios[0]:>6} {ratios[1]:>6}  {target}".rstrip())
    paired = []
    for a, base in targets:
        if base:
            r = statistics.median(x / y for x, y in zip(times[a], times[base], strict=True))
            paired.append(f"{a.split()[0]}{' (terminal)' if a == term else ''}/{base.split()[0]} {r:.2f}")
    print("median of per-round ratios: " + ", ".join(paired))
    if no_cfssl:
        print(f"C (cfssl) skipped: {no_cfssl}")
    print("A and B write their progress to a redirected stderr (B's openssl prints dots, C logs every step);\n"
          "on a terminal pgkongtls draws its summary with rich: the 'stderr on a terminal' row.\n"
          "F1 and F2 are floors no Python program can go under: interpreter start, and that plus cryptography's x509;\n"
          "F3 does the same job with nothing else (no checks, manifest, lock, staging or fsync).")


if __name__ == "__main__":
    main()
