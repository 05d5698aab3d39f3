"""Start-up cost: `pgkongtls --version` (console script and `python -m`), `--help`, `render kong` against a bare interpreter.

Run: .venv/bin/python bench/startup.py [--rounds 21]

Wall time per command (median over alternating rounds), the ratio to
`python -c pass` on the same interpreter, and the slowest top-level imports
(`python -X importtime`, cumulative) of each command. No assertions.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent / "pgkongtls"


def wall(argv: list[str], cwd: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def top_imports(args: list[str], cwd: Path, n: int) -> list[tuple[int, str]]:
    """The `n` top-level imports with the largest cumulative time, in microseconds."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "pgkongtls", *args], cwd=cwd,
                          capture_output=True, text=True, check=True)
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line[len("import time:"):].split("|")
        if not name.startswith("  "):  # depth 0: what the command itself pulled in
            rows.append((int(cumulative), name.strip()))
    return sorted(rows, reverse=True)[:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=21)
    args = ap.parse_args()
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed package has its bytecode cached
    with tempfile.TemporaryDirectory(prefix="pgk-startup-") as tmp:
        cwd = Path(tmp)
        subprocess.run([str(BIN), "init", "--out", "pki"], cwd=cwd, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "pgkongtls --version": [str(BIN), "--version"],
            "python -m pgkongtls --version": [sys.executable, "-m", "pgkongtls", "--version"],
            "pgkongtls --help": [str(BIN), "--help"],
            "pgkongtls render kong": [str(BIN), "render", "kong", "--dir", "pki"],
        }
        system_py = shutil.which("python3")
        if system_py:
            commands["python3 -c pass (PATH: " + system_py + ")"] = [system_py, "-c", "pass"]
        times: dict[str, list[float]] = {k: [] for k in commands}
        for argv in commands.values():
            wall(argv, cwd)  # warm-up: caches, bytecode
        for r in range(args.rounds):
            names = list(commands)
            for name in names[r % len(names):] + names[:r % len(names)]:
                times[name].append(wall(commands[name], cwd))
        med = {k: statistics.median(v) for k, v in times.items()}
        base = med["python -c pass"]
        print(f"{args.rounds} rounds; {sys.executable} (Python {sys.version.split()[0]}), nproc {os.cpu_count()}")
        print(f"{'command':60} {'median ms':>9} {'x python -c pass':>17}")
        for k, v in med.items():
            print(f"{k:60} {v * 1e3:9.1f} {v / base:17.2f}")
        for label, argv in (("--version", ["--version"]), ("render kong", ["render", "kong", "--dir", "pki"]),
                            ("init", ["init", "--out", "pki2"])):
            print(f"\n-X importtime, top-level imports of `pgkongtls {label}` (cumulative ms):")
            for us, name in top_imports(argv, cwd, 8):
                print(f"  {us / 1e3:7.1f}  {name}")


if __name__ == "__main__":
    main()
