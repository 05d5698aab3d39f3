"""`pgkongtls init` against the source document's openssl procedure, wall time.

Run: .venv/bin/python bench/init_vs_openssl.py [--rounds 7]

One process tree, alternating runs in every round (the order rotates so drift
on a shared machine hits every contender alike):
  A-rsa  `pgkongtls init --chain intermediate --key-type rsa-2048` (console script, subprocess)
  A-ec   the same with `--key-type ecdsa-p256` (the default)
  B      the document's intermediate-chain procedure, command for command, each command
         its own process as an operator's shell would run it (chmod and cat included).
  A-ec on a terminal: A-ec with stderr on a pseudo-terminal, so pgkongtls draws its rich table.
Prints each median and the ratios A/B. Targets: rsa <= 0.35, ecdsa <= 0.2. No assertions.
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procedure import run_procedure

BIN = Path(sys.executable).parent / "pgkongtls"


def run_init(out: Path, key_type: str) -> None:
    subprocess.run(
        [str(BIN), "init", "--chain", "intermediate", "--key-type", key_type, "--out", str(out)],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def run_init_on_terminal(out: Path, key_type: str) -> None:
    """The same, with stderr on a pseudo-terminal: what a person at a shell sees (the rich table)."""
    master, slave = pty.openpty()
    drain = threading.Thread(target=_drain, args=(master,))
    drain.start()
    try:
        subprocess.run([str(BIN), "init", "--chain", "intermediate", "--key-type", key_type, "--out", str(out)],
                       check=True, stdout=subprocess.DEVNULL, stderr=slave)
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


def timed(fn, work: Path, *args: str) -> float:
    """Wall time of one run into a fresh directory under `work`."""
    out = Path(tempfile.mkdtemp(dir=work)) / "pki"
    t0 = time.perf_counter()
    fn(out, *args)
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

    openssl = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
    return (f"nproc {os.cpu_count()}, CPU {cpu}\nPython {platform.python_version()} (ssl: {ssl.OPENSSL_VERSION}), "
            f"cryptography {cryptography.__version__} ({backend.openssl_version_text()})\nopenssl CLI: {openssl}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    contenders = {
        "A-rsa  pgkongtls init --key-type rsa-2048": lambda o: run_init(o, "rsa-2048"),
        "A-ec   pgkongtls init --key-type ecdsa-p256": lambda o: run_init(o, "ecdsa-p256"),
        "B      openssl procedure (14 commands)": lambda o: run_procedure(o, "intermediate"),
        "A-ec   the same, stderr on a terminal": lambda o: run_init_on_terminal(o, "ecdsa-p256"),
    }
    # An installed package has its bytecode cached; a dev shell may forbid writing it.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    names = list(contenders)
    times: dict[str, list[float]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory(prefix="pgk-bench-") as tmp:
        work = Path(tmp)
        for n in names:  # warm the page cache once, not measured
            timed(contenders[n], work)
        for r in range(args.rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for n in order:
                times[n].append(timed(contenders[n], work))
    med = {n: statistics.median(t) for n, t in times.items()}
    b = names[2]
    print(machine())
    print(f"{args.rounds} rounds, alternating; wall time per run in ms")
    print(f"{'contender':46} {'median':>8} {'min':>8} {'max':>8} {'A/B':>6} {'target':>7}")
    targets = {names[0]: 0.35, names[1]: 0.2, names[3]: 0.2}
    for n in names:
        ratio = f"{med[n] / med[b]:.2f}" if n != b else "1"
        target = f"<={targets[n]}" if n in targets else ""
        print(f"{n:46} {med[n] * 1e3:8.1f} {min(times[n]) * 1e3:8.1f} {max(times[n]) * 1e3:8.1f} {ratio:>6} {target:>7}")
    paired = {n: statistics.median(a / bb for a, bb in zip(times[n], times[b], strict=True)) for n in names if n != b}
    print("median of per-round ratios: " + ", ".join(f"{n.split()[0]}{' (terminal)' if 'terminal' in n else ''} "
                                                     f"{v:.2f}" for n, v in paired.items()))
    print("Both A and B write their progress to a redirected stderr (B's openssl prints dots); on a terminal\n"
          "pgkongtls draws its summary with rich, which costs ~20 ms more: the last A row.")


if __name__ == "__main__":
    main()
