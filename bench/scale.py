"""What one more command costs on a big PKI: 10 entries against 10,000 (#18).

Run: .venv/bin/python bench/scale.py [--big 10000] [--rounds 5]

Builds two PKIs in this process through the library (init, then one `ops.issue` with all the
names: the fleet path, a few seconds for 10,000), then times each command as an operator runs
it (the console script, a subprocess) on both, alternating small and big in every round:
`issue client --name one-more-N`, `renew` of one name, `revoke` of one name, `status`,
`render kong`, plus `python -c pass` for the interpreter's own start-up. The
writing commands run on the same two PKIs round after round (a new name each round), so each
one finds the stat cache its predecessor left, as on a real host.

Prints the median of each, the ratio big/small (target <= 2 for issue, renew, revoke, render)
and, for status and verify on the big PKI, the median in ms and as a multiple of `python -c pass`
(target: within 1 s). No assertions.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pgkongtls import certs, lifecycle, ops
from pgkongtls.pki import InitOptions

BIN = str(Path(sys.executable).parent / "pgkongtls")
SMALL = 10


def build(d: Path, count: int) -> Path:
    now = certs.utcnow()
    ops.init(d, InitOptions(), now=now)
    reqs = [lifecycle.LeafRequest(f"node-{i:05d}", "client", "{name}") for i in range(count)]
    for start in range(0, count, 2500):  # a few commits, as a PKI grows over the years
        ops.issue(d, reqs[start:start + 2500], now=now)
    return d


def timed(argv: list[str], ok: tuple[int, ...] = (0,)) -> float:
    """Wall time of one run; a writer must succeed (a refusal is fast and would flatter the ratio)."""
    t0 = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    took = time.perf_counter() - t0
    if proc.returncode not in ok:
        raise SystemExit(f"{' '.join(argv[:4])}: exit {proc.returncode}: {proc.stderr.strip()}")
    return took


def in_service(d: Path) -> list[str]:
    """Leaves a round may revoke: not revoked by an earlier round or run."""
    m = ops.fsio.load_manifest(d)
    return [n for n, e in sorted(m.certificates.items()) if n.startswith("node-") and not e.revoked and n != "node-00001"]


def commands(d: Path, n: int, tag: str) -> dict[str, list[str]]:
    p = ["--dir", str(d)]
    return {
        "issue one": [BIN, "issue", "client", *p, "--name", f"one-more-{tag}-{n}"],
        "renew one": [BIN, "renew", *p, "node-00001"],
        "revoke one": [BIN, "revoke", *p, in_service(d)[0]],
        "status": [BIN, "status", *p],
        "render kong": [BIN, "render", "kong", *p],
    }


TARGET = {"issue one": 2.0, "renew one": 2.0, "revoke one": 2.0, "render kong": 2.0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--big", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--work", type=Path, default=None,
                    help="keep the two PKIs here and reuse them on the next run (building 10,000 takes a minute)")
    args = ap.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    os.environ.clear()
    os.environ.update(env)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        t0 = time.perf_counter()
        small = build(Path(tmp) / f"pki-{SMALL}", SMALL)  # fresh: its few leaves run out of ones to revoke
        big = work / f"pki-{args.big}"
        if not (big / "pgkongtls.json").exists():
            build(big, args.big)
        tag = str(os.getpid())
        print(f"PKIs of {SMALL} and {args.big} entries ready in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        times: dict[str, dict[str, list[float]]] = {}
        baseline: list[float] = []
        for r in range(args.rounds + 1):  # round 0 warms up (bytecode, page cache) and is dropped
            order: list[tuple[str, Path]] = [("small", small), ("big", big)]
            if r % 2:
                order.reverse()
            b = timed([sys.executable, "-c", "pass"])
            for size, d in order:
                for name, argv in commands(d, r, tag).items():
                    took = timed(argv)
                    if r:
                        times.setdefault(name, {}).setdefault(size, []).append(took)
            if r:
                baseline.append(b)
        for size, d in (("small", small), ("big", big)):  # once: verify checks every file in full, by design
            times.setdefault("verify", {})[size] = [timed([BIN, "verify", str(d)], ok=(0, 1))]  # 1: findings
        med: Callable[[list[float]], float] = statistics.median
        base = med(baseline)
        print(f"{'command':<12} {'small ms':>9} {'big ms':>9} {'big/small':>9}  target")
        for name, by in times.items():
            s, bg = med(by["small"]), med(by["big"])
            target = f"<= {TARGET[name]:.0f}x" if name in TARGET else f"<= 1000 ms ({bg / base:.1f}x python -c pass)"
            print(f"{name:<12} {s * 1e3:9.0f} {bg * 1e3:9.0f} {bg / s:8.2f}x  {target}")
        print(f"python -c pass: {base * 1e3:.0f} ms; {args.rounds} rounds, medians; machine: {os.cpu_count()} CPUs, "
              f"{os.uname().machine}, Python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
