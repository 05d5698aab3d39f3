"""`pgkongtls issue client` with 1,000 names: time per certificate against the raw crypto.

Run: .venv/bin/python bench/fleet.py [--count 1000] [--rounds 3] [--key-type ecdsa-p256]

Each round, alternating, the three costs of one more certificate, all in the same run:
  (a) raw      in this process: generate the key and build + sign the same client
               certificate with the same intermediate, COUNT times (no self-check, no PEM,
               no manifest, no files);
  (b) files    create the same 2 files per certificate (certificate 0644, key 0600,
               O_CREAT|O_EXCL) in a temporary directory, made durable with fsio's own
               sync policy (fsio._sync_stage);
  (c) command  `pgkongtls issue client --dir D --cn '{name}' --name kong-0000 ... ` (console
               script, a subprocess, into a fresh copy of one PKI made by `pgkongtls init`),
               and the same with 10 names.
Prints the medians per certificate and the ratio c/(a+b) (target <= 2), both for the
whole run and per extra certificate (the 10-name run subtracted, which takes out
interpreter start-up), then where the command's own time goes (cProfile of the same
`ops.issue` in process).
No assertions.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from pgkongtls import certs, fsio, lifecycle, ops

BIN = Path(sys.executable).parent / "pgkongtls"
#: The small run whose time is subtracted to get the cost of each further certificate.
SMALL = 10


def names(count: int) -> list[str]:
    return [f"kong-{i:04d}" for i in range(count)]


def run_command(pki: Path, count: int, key_type: str | None) -> float:
    argv = [str(BIN), "issue", "client", "--dir", str(pki), "--cn", "{name}"]
    if key_type:
        argv += ["--key-type", key_type]
    for n in names(count):
        argv += ["--name", n]
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def run_raw(pki: Path, count: int, key_type: str) -> float:
    issuer = certs.Issued(
        cert=x509.load_pem_x509_certificate((pki / "intermediate.crt").read_bytes()),
        key=load_pem_private_key((pki / "intermediate.key").read_bytes(), password=None),  # type: ignore[arg-type]
    )
    now = certs.utcnow()
    t0 = time.perf_counter()
    for n in names(count):
        certs.make_client(cn=n, key=certs.generate_key(key_type), issuer=issuer, now=now)
    return time.perf_counter() - t0


def create_files(work: Path, count: int) -> float:
    """This filesystem's own cost: create the same 2 files per certificate (a certificate and a 0600
    key, O_CREAT|O_EXCL) in a temporary directory, then make them durable with fsio's own sync policy
    (fsio._sync_stage: one syncfs above fsio.SYNCFS_ABOVE files, else an fsync per file and the directory)."""
    d = Path(tempfile.mkdtemp(prefix="files-", dir=work))
    t0 = time.perf_counter()
    for i in range(count):
        for name, mode, size in ((f"kong-{i:04d}.crt", 0o644, 700), (f"kong-{i:04d}.key", 0o600, 240)):
            fd = os.open(d / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
            os.write(fd, b"x" * size)
            os.close(fd)
    fsio._sync_stage(d, os.listdir(d))
    return time.perf_counter() - t0


def fresh_copy(pki: Path, work: Path, i: int) -> Path:
    dst = work / f"round{i}" / "pki"
    shutil.copytree(pki, dst)
    return dst


def profile_issue(pki: Path, count: int, key_type: str | None) -> None:
    """Where `ops.issue` spends its time, by the functions that matter."""
    reqs = [lifecycle.LeafRequest(name=n, role="client", cn="{name}") for n in names(count)]
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.runcall(ops.issue, pki, reqs, key_type=key_type)
    total = time.perf_counter() - t0
    stats = pstats.Stats(prof)
    wanted = {
        "generate_key": "key generation", "_build": "build + sign certificate", "check": "self-check (each leaf vs issuer)",
        "self_check": "  of which the full chain (once)",
        "entry_for": "manifest entry", "cert_pem": "PEM certificate", "key_pem": "PEM key",
        "dumps": "manifest JSON", "_fill_stage": "stage files (write + sync)", "_sync_stage": "  of which sync (syncfs)",
        "commit": "commit (stage + swap)", "verify_files": "read + check existing PKI",
    }
    rows: dict[str, float] = {}
    for (_, _, func), (_, _, _, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        for key, label in wanted.items():
            if func == key or func.endswith(f".{key}}}") or func == f"<built-in method posix.{key}>":
                rows[label] = rows.get(label, 0.0) + cumulative
    print(f"\nin-process ops.issue, {count} certificates: {total * 1e3:.0f} ms (cProfile adds overhead)")
    for label in wanted.values():
        if label in rows:
            print(f"  {label:32} {rows[label] * 1e3:8.0f} ms  {rows[label] / count * 1e3:7.3f} ms/cert")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--key-type", default=None, help="default: the PKI's (init's default, ecdsa-p256)")
    args = ap.parse_args()
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed package has its bytecode cached
    with tempfile.TemporaryDirectory(prefix="pgk-fleet-") as tmp:
        work = Path(tmp)
        pki = work / "pki"
        subprocess.run([str(BIN), "init", "--out", str(pki)], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        key_type = args.key_type or "ecdsa-p256"
        cmd: list[float] = []
        small: list[float] = []
        raw: list[float] = []
        files: list[float] = []
        run_command(fresh_copy(pki, work, -1), SMALL, args.key_type)  # warm-up
        for r in range(args.rounds):
            steps: list[Callable[[], object]] = [
                lambda r=r: cmd.append(run_command(fresh_copy(pki, work, r), args.count, args.key_type)),
                lambda r=r: small.append(run_command(fresh_copy(pki, work, 1000 + r), SMALL, args.key_type)),
                lambda: raw.append(run_raw(pki, args.count, key_type)),
                lambda: files.append(create_files(work, args.count)),
            ]
            for step in steps[r % len(steps):] + steps[:r % len(steps)]:
                step()
        c, s10, w, f = (statistics.median(x) for x in (cmd, small, raw, files))
        per, marginal = c / args.count, (c - s10) / (args.count - SMALL)
        raw_per, files_per = w / args.count, f / args.count
        floor = raw_per + files_per
        print(f"issue client with {args.count} names, {key_type}, {args.rounds} rounds (nproc {os.cpu_count()})")
        print(f"{'':46} {'total ms':>9} {'ms/cert':>8} {'x floor':>7}")
        print(f"{'(a) key generation + signing, in process':46} {w * 1e3:9.0f} {raw_per * 1e3:8.3f} "
              f"{raw_per / floor:7.2f}")
        print(f"{'(b) create the 2 files per cert, fsio sync':46} {f * 1e3:9.0f} {files_per * 1e3:8.3f} "
              f"{files_per / floor:7.2f}")
        print(f"{'(a+b) the floor':46} {(w + f) * 1e3:9.0f} {floor * 1e3:8.3f} {1:7.2f}")
        print(f"{'(c) command, whole run (start-up included)':46} {c * 1e3:9.0f} {per * 1e3:8.3f} {per / floor:7.2f}")
        print(f"{f'(c) command, per extra cert (vs {SMALL} names)':46} {'':9} {marginal * 1e3:8.3f} "
              f"{marginal / floor:7.2f}")
        verdict = "met" if marginal / floor <= 2 else "missed"
        print(f"c/(a+b) per extra certificate: {marginal / floor:.2f}, target <= 2: {verdict}; "
              f"start-up and fixed cost ({SMALL} names): {s10 * 1e3:.0f} ms")
        profile_issue(fresh_copy(pki, work, 99), args.count, args.key_type)


if __name__ == "__main__":
    main()
