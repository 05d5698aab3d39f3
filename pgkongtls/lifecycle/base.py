"""What every day-2 command shares: input checks, and reading the CA material a Reader returns."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pgkongtls import KEY_TYPES, MAX_DAYS, certs, pkiload
from pgkongtls.certs import Issued, PrivateKey, validate_db_user
from pgkongtls.errors import InputError, StateError
from pgkongtls.manifest import NAME, CertEntry, Manifest

#: Reads one file of the PKI directory by name; None when it does not exist.
Reader = Callable[[str], "bytes | None"]
#: Told (done, total) after each certificate a long loop mints; the CLI draws it, the library never prints.
Progress = Callable[[int, int], None]

CA_LEVELS = ("root", "intermediate")
LEAF_ROLES = ("server", "client")
#: Names pgkongtls' own files use (root.crt, chain.crt, crl.pem, pgkongtls.json).
RESERVED_NAMES = frozenset({"root", "intermediate", "chain", "crl", "pgkongtls"})


@dataclass(frozen=True)
class Ca:
    """The CA levels of a PKI: certificates always, keys only for the levels that sign."""

    certs: dict[str, x509.Certificate]
    keys: dict[str, PrivateKey]
    issuing: str

    def crl_levels(self) -> list[str]:
        """The CAs that sign a CRL, in crl.pem's order: intermediates first, each old CA after the current one."""
        return sorted(self.keys, key=lambda n: (n.partition("@")[0] != "intermediate", "@" in n, n))

    def signer(self, level: str) -> Issued:
        return Issued(cert=self.certs[level], key=self.keys[level])

    def anchors_and_intermediates(self) -> tuple[list[x509.Certificate], list[x509.Certificate]]:
        """The current CAs only: an old CA kept during `rotate` (LEVEL@serial) signs CRLs, never a leaf."""
        return [self.certs["root"]], [c for n, c in self.certs.items() if n == "intermediate"]


@dataclass(frozen=True)
class LeafRequest:
    """One certificate `issue` should mint."""

    name: str
    role: str
    cn: str | None
    hosts: tuple[str, ...] = ()
    also_client: bool = False  # `issue server --eku server,client`


# ---------------------------------------------------------------- input checks

def validate_name(name: str) -> str:
    """A `--name` that stays a plain file name inside --dir and clashes with nothing of ours."""
    if not NAME.fullmatch(name):
        raise InputError(
            f"invalid --name {name!r}: use 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    if name in RESERVED_NAMES:
        raise InputError(f"--name {name!r} is reserved for pgkongtls' own files; choose another --name")
    return name


def client_cn(template: str | None, name: str, db_user: str) -> str:
    """The CN for client `name`: the db user by default, `{name}` in the template is replaced."""
    cn = db_user if template is None else template.replace("{name}", name)
    if cn.startswith("/"):
        raise InputError(f"invalid --cn {cn!r}: pg_ident.conf would read a leading '/' as a regular expression")
    try:
        return validate_db_user(cn)
    except InputError as exc:
        raise InputError(str(exc).replace("--db-user", "--cn", 1)) from None


def check_days(days: int, what: str, lo: int = 1, hi: int = MAX_DAYS) -> int:
    if not lo <= days <= hi:
        raise InputError(f"{what} must be between {lo} and {hi} days, got {days}")
    return days


def lookup(m: Manifest, name: str) -> CertEntry:
    """An existing certificate by name, with the fix when there is none."""
    entry = m.certificates.get(name)
    if entry is None:
        raise StateError(f"no certificate named {name!r} in this PKI; pgkongtls status lists them")
    return entry


# ---------------------------------------------------------------- reading what is on disk

def verify_files(m: Manifest, read: Reader) -> Mapping[str, x509.Certificate]:
    """Every certificate file must still be what the manifest recorded: refuse hand edits.

    Returns the certificates by name. The checks are pkiload's (verify uses the same), so both
    name the same damage with the same words; fsio.snapshot runs them only where its stat cache
    cannot vouch for a file.
    """
    return pkiload.verify_pki(m, read)


def load_key(data: bytes | None, file: str, passphrase: bytes | None) -> PrivateKey:
    """Parse a PEM key; each way it can fail is one line naming the fix."""
    loaded = pkiload.parse_key(data, file)
    if loaded.encrypted and passphrase is None:
        raise InputError(f"{file} is encrypted; pass --ca-passphrase-file")
    if not loaded.encrypted and passphrase is not None:
        raise InputError(f"{file} is not encrypted; drop --ca-passphrase-file")
    key = loaded.key
    if loaded.encrypted:
        assert data is not None and passphrase is not None  # parse_key read it; checked just above
        key = pkiload.decrypt_key(data, passphrase)
        if key is None:
            raise InputError(f"wrong CA passphrase for {file}; check --ca-passphrase-file")
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise InputError(f"unsupported key {type(key).__name__}; use one of {', '.join(KEY_TYPES)}")
    certs.key_type_of(key)
    return key


def key_type_of_cert(cert: x509.Certificate) -> str:
    """The `KEY_TYPES` name of a certificate's key, so a renewal keeps the algorithm and size."""
    pub = cert.public_key()
    if isinstance(pub, rsa.RSAPublicKey):
        return f"rsa-{pub.key_size}"
    if isinstance(pub, ec.EllipticCurvePublicKey):
        return {"secp256r1": "ecdsa-p256", "secp384r1": "ecdsa-p384"}.get(pub.curve.name, pub.curve.name)
    raise StateError(f"unsupported key {type(pub).__name__} in {cert.subject.rfc4514_string()}")


def spki(cert: x509.Certificate) -> bytes:
    """The certificate's public key as DER SubjectPublicKeyInfo: what "the same key" compares."""
    return cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def same_key(key: PrivateKey, cert: x509.Certificate) -> bool:
    der = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return key.public_key().public_bytes(*der) == spki(cert)


def must(data: bytes | None, file: str) -> bytes:
    if data is None:
        raise pkiload.FileMissing(file)
    return data


def load_ca(
    m: Manifest, found: Mapping[str, x509.Certificate], read: Reader, *, passphrase: bytes | None,
    sign_with: Iterable[str],
) -> Ca:
    """The CA certificates, plus the keys of the `sign_with` levels ("issuing" = the leaf signer)."""
    if m.mode != "ca" or m.issuing_ca is None:
        raise StateError("this is a self-signed test PKI: it has no CA to sign with; create one with pgkongtls init")
    levels = [n for n in CA_LEVELS if n in m.certificates]
    wanted = {m.issuing_ca if s == "issuing" else s for s in sign_with}
    if set(CA_LEVELS) <= wanted:  # every level signs a CRL, so do the old CAs of a rotation (their own keys)
        current = {m.certificates[n].key_file for n in levels}
        for e in sorted(m.certificates.values(), key=lambda e: e.name):
            if e.role in CA_LEVELS and "@" in e.name and e.key_file not in current:
                levels.append(e.name)
                wanted.add(e.name)
    keys: dict[str, PrivateKey] = {}
    for level in levels:
        if level not in wanted:
            continue
        entry = m.certificates[level]
        key = load_key(read(entry.key_file), entry.key_file, passphrase)
        if not same_key(key, found[level]):
            raise StateError(f"{entry.key_file} does not belong to {entry.file}; restore the matching key")
        keys[level] = key
    return Ca(certs={n: found[n] for n in levels}, keys=keys, issuing=m.issuing_ca)
