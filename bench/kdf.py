"""Cost of encrypting a CA key at PBKDF2-HMAC-SHA256 600,000 iterations, as ratios to baselines.

Run: .venv/bin/python bench/kdf.py [--rounds 5]

  A        pgkongtls.keywrap.encrypted_pkcs8_pem (what init writes for root.key and intermediate.key)
  B-ossl   `openssl pkcs8 -topk8 -v2 aes-256-cbc -v2prf hmacWithSHA256 -iter 600000` on the same key
           (the same work done by openssl's own tool, one process)
  B-old    cryptography's BestAvailableEncryption (PBKDF2 at 2,048 iterations: the old, weak cost)
  load     pgkongtls reading the key back (every issue/renew/revoke/crl pays this once per CA key)
Prints medians and A/B-ossl, A/B-old. No assertions: speed is measured here, never in a test.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pgkongtls.keywrap import PBKDF2_ITERATIONS, encrypted_pkcs8_pem

PHRASE = b"correct horse battery staple"


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    key = ec.generate_private_key(ec.SECP256R1())
    plain = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    with tempfile.TemporaryDirectory() as tmp:
        src, phrase = Path(tmp, "plain.key"), Path(tmp, "phrase")
        src.write_bytes(plain)
        phrase.write_bytes(PHRASE)
        ossl = ["openssl", "pkcs8", "-topk8", "-v2", "aes-256-cbc", "-v2prf", "hmacWithSHA256", "-iter",
                str(PBKDF2_ITERATIONS), "-in", str(src), "-passout", f"file:{phrase}", "-out", str(Path(tmp, "o.key"))]
        wrapped = encrypted_pkcs8_pem(key, PHRASE)
        runs: dict[str, list[float]] = {"A": [], "B-ossl": [], "B-old": [], "load": []}
        for _ in range(rounds):
            runs["A"].append(timed(lambda: encrypted_pkcs8_pem(key, PHRASE)))
            runs["B-ossl"].append(timed(lambda: subprocess.run(ossl, check=True)))
            runs["B-old"].append(timed(lambda: key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(PHRASE))))
            runs["load"].append(timed(lambda: serialization.load_pem_private_key(wrapped, PHRASE)))
    med = {k: statistics.median(v) for k, v in runs.items()}
    print(f"PBKDF2-HMAC-SHA256 iterations: {PBKDF2_ITERATIONS:,}; {rounds} rounds; Python {sys.version.split()[0]}")
    for name, value in med.items():
        print(f"  {name:7} median {value * 1000:8.1f} ms")
    print(f"  A / B-ossl = {med['A'] / med['B-ossl']:.2f}   (same work; below 1 = no process start)")
    print(f"  A / B-old  = {med['A'] / med['B-old']:.0f}   (the price of ~{PBKDF2_ITERATIONS // 2048}x the iterations)")


if __name__ == "__main__":
    main()
