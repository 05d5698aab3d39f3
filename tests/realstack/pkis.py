"""PKIs made by the real `pgkongtls` CLI, cached per session, plus off-profile client certs.

Every PKI is minted by a `pgkongtls init` / `self-signed --test` subprocess and
every config snippet comes from a `pgkongtls render` subprocess, so the real
stack only ever sees what a user would get. Certificates the CLI cannot make on
purpose (expired, not yet valid, wrong CN) come from `pgkongtls.certs` with its
injectable clock, signed by the PKI's own issuing CA.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pgkongtls import certs, fsio, render
from pgkongtls.manifest import MANIFEST_NAME, Manifest
from pgkongtls.pki import cert_pem, key_pem

#: A made-up DNS name (reached through libpq's hostaddr) and the loopback IP: both in every default PKI.
DB_NAME = "db.pgkongtls.test"
DB_IP = "127.0.0.1"
DEFAULT_HOSTS = (DB_NAME, DB_IP)
SHAPES = ("intermediate", "root", "self-signed")
KEY_FAMILIES = ("ecdsa-p256", "rsa-2048")


_RENDERED: dict[tuple[str, str, str, tuple[str, ...]], str] = {}


class CliError(RuntimeError):
    """The pgkongtls CLI exited non-zero; the message is its stderr."""


def cli(*args: str, cwd: Path | None = None) -> str:
    """Run `python -m pgkongtls ARGS` from the test virtualenv; its stdout, or CliError."""
    res = subprocess.run([sys.executable, "-m", "pgkongtls", *args], capture_output=True, text=True, cwd=cwd,
                         timeout=120)
    if res.returncode != 0:
        raise CliError(f"pgkongtls {' '.join(args)} exited {res.returncode}: {res.stderr.strip()}")
    return res.stdout


@dataclass(frozen=True)
class Pki:
    """One PKI directory as `pgkongtls init` / `self-signed --test` wrote it."""

    label: str
    dir: Path
    shape: str
    key_type: str

    @property
    def manifest(self) -> Manifest:
        """Read fresh each time: lifecycle tests change the directory under a cached Pki."""
        return fsio.load_manifest(self.dir)

    @property
    def fingerprint(self) -> str:
        return self.manifest.root_fingerprint()

    @property
    def state(self) -> str:
        """A digest of the manifest: changes whenever a command changes this PKI."""
        return hashlib.sha256(self.path(MANIFEST_NAME).read_bytes()).hexdigest()

    def path(self, name: str) -> Path:
        return self.dir / name

    @property
    def hosts(self) -> tuple[str, ...]:
        return self.manifest.hosts

    @property
    def trust_file(self) -> Path:
        """What Kong and libpq trust for the server (pgkongtls's choice, not the test's)."""
        return self.path(render.trust_file_for_clients(self.manifest))

    @property
    def verify_depth(self) -> int:
        return render.verify_depth(self.manifest)[0]

    def cert_file(self, name: str = "client") -> Path:
        return self.path(self.manifest.certificates[name].file)

    def key_file(self, name: str = "client") -> Path:
        return self.path(self.manifest.certificates[name].key_file)

    @property
    def client_cert(self) -> Path:
        return self.cert_file("client")

    @property
    def client_key(self) -> Path:
        return self.key_file("client")

    def render(self, target: str, *args: str) -> str:
        """`pgkongtls render TARGET --dir <this PKI> ARGS` through the real CLI (memoised per PKI state)."""
        key = (str(self.dir), self.state, target, args)
        if key not in _RENDERED:
            _RENDERED[key] = cli("render", target, "--dir", str(self.dir), *args)
        return _RENDERED[key]

    def server_side_files(self) -> dict[str, Path]:
        """What the database host holds: every certificate, the CA file, CRLs, and server keys only."""
        m = self.manifest
        names = {e.file for e in m.certificates.values()}
        names |= {e.key_file for e in m.certificates.values() if e.role == "server"}
        names.add(render.ca_file_for_postgres(m))
        if m.mode == "ca":
            names.add("chain.crt")
        if m.crl_file:
            names.add(m.crl_file)
        return {n: self.path(n) for n in sorted(names) if self.path(n).exists()}

    def issuing_ca(self) -> certs.Issued:
        """The CA that signs this PKI's leaves (intermediate or root), loaded from its PEM files."""
        name = "intermediate" if self.shape == "intermediate" else "root"
        if self.shape == "self-signed":
            raise ValueError("a self-signed test pair has no CA to sign more certificates")
        cert = x509.load_pem_x509_certificate(self.path(f"{name}.crt").read_bytes())
        key = serialization.load_pem_private_key(self.path(f"{name}.key").read_bytes(), password=None)
        return certs.Issued(cert=cert, key=key)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ClientCert:
    """A client certificate file (leaf, plus the intermediate when the PKI bundles) and its key."""

    cert: Path
    key: Path
    cn: str


def mint_client(pki: Pki, out_dir: Path, *, cn: str, now: dt.datetime, days: int = 1,
                name: str | None = None) -> ClientCert:
    """A client certificate from `pki`'s issuing CA as of the clock `now` (library call, not the CLI).

    `now` in the past with a short `days` gives an expired certificate; `now` in the
    future gives one that is not yet valid; any `cn` gives a certificate for another role.
    """
    ca = pki.issuing_ca()
    issued = certs.make_client(cn=cn, key=certs.generate_key(pki.key_type), issuer=ca, days=days, now=now)
    extra = (ca.cert,) if pki.shape == "intermediate" and pki.manifest.bundle else ()
    stem = name or f"client-{cn}-{now:%Y%m%d%H%M%S}"
    out_dir.mkdir(parents=True, exist_ok=True)
    fsio.write_outputs(out_dir, {f"{stem}.crt": cert_pem(issued.cert, *extra).decode()}, overwrite=True)
    fsio.write_private(out_dir / f"{stem}.key", key_pem(issued.key))
    return ClientCert(cert=out_dir / f"{stem}.crt", key=out_dir / f"{stem}.key", cn=cn)


class PkiFactory:
    """Session cache: one PKI per (shape, key type, hosts, db user, tag); `tag` makes an unrelated twin."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self._cache: dict[tuple[str, str, tuple[str, ...], str, str], Pki] = {}
        self._serial = itertools.count()

    def get(self, shape: str = "intermediate", key_type: str = "ecdsa-p256", *,
            hosts: tuple[str, ...] = DEFAULT_HOSTS, db_user: str = "kong", tag: str = "") -> Pki:
        """The cached PKI for these parameters, minted by the CLI on first use. Do not modify it."""
        k = (shape, key_type, hosts, db_user, tag)
        if k not in self._cache:
            self._cache[k] = self.fresh(shape, key_type, hosts=hosts, db_user=db_user, tag=tag)
        return self._cache[k]

    def fresh(self, shape: str = "intermediate", key_type: str = "ecdsa-p256", *,
              hosts: tuple[str, ...] = DEFAULT_HOSTS, db_user: str = "kong", tag: str = "") -> Pki:
        """A new PKI that belongs to the caller alone (e.g. for lifecycle tests that change it)."""
        if shape not in SHAPES:
            raise ValueError(f"unknown PKI shape {shape!r}")
        label = "/".join(x for x in (shape, key_type, tag) if x)
        out = self.base / f"pki-{next(self._serial)}-{label.replace('/', '_')}"
        host_args = [a for h in hosts for a in ("--db-host", h)]
        common = ["--out", str(out), *host_args, "--db-user", db_user, "--key-type", key_type]
        if shape == "self-signed":
            cli("self-signed", "--test", *common)
        else:
            cli("init", "--chain", shape, *common)
        return Pki(label=label, dir=out, shape=shape, key_type=key_type)
