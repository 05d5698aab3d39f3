"""The least a Python program can do for `init`'s job: a floor for the benchmark, not a tool.

Run: python bench/minimal_init.py OUT

Root, intermediate, server (db.internal, 10.0.0.5) and client (kong) with P-256 keys,
PEM files and chain.crt, straight through cryptography: no CLI framework, no input
checks, no self-check, no manifest, no lock, no staging, no fsync. What pgkongtls
init takes beyond this is the price of those.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def mint(cn: str, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None, days: int, *, ca: bool,
         eku: x509.ObjectIdentifier | None = None, sans: list[x509.GeneralName] | None = None,
         ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer[0].subject if issuer else name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now).not_valid_after(now + dt.timedelta(days=days))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if eku:
        b = b.add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return b.sign(issuer[1] if issuer else key, hashes.SHA256()), key


def main(out: Path) -> None:
    out.mkdir(mode=0o700)
    root = mint("root", None, 3650, ca=True)
    inter = mint("intermediate", root, 1825, ca=True)
    server = mint("db.internal", inter, 365, ca=False, eku=ExtendedKeyUsageOID.SERVER_AUTH,
                  sans=[x509.DNSName("db.internal"), x509.IPAddress(ipaddress.ip_address("10.0.0.5"))])
    client = mint("kong", inter, 365, ca=False, eku=ExtendedKeyUsageOID.CLIENT_AUTH)
    pem = serialization.Encoding.PEM
    for name, (cert, key) in {"root": root, "intermediate": inter, "server": server, "client": client}.items():
        (out / f"{name}.crt").write_bytes(cert.public_bytes(pem))
        fd = os.open(out / f"{name}.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (out / "chain.crt").write_bytes(inter[0].public_bytes(pem) + root[0].public_bytes(pem))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
