"""The one reader of certificate, key and CRL files: bytes in, parsed objects out.

`verify` (through inputs.py) and the day-2 commands (through lifecycle) read a
PKI directory with these functions, so they agree on what a damaged file is and
say it with the same words: each kind of damage is one `FileDamage` subclass
with one message. Pure: no file I/O (callers pass the bytes and the name to
show), no click.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from pgkongtls.errors import StateError
from pgkongtls.manifest import CHAIN_FILE, MANIFEST_NAME, CertEntry, Manifest, entry_for, fingerprint

#: What each kind of file is called in messages, and the openssl command that converts its DER form.
_LABEL = {"cert": "certificate", "key": "private key", "crl": "CRL"}
_OPENSSL = {"cert": "x509", "key": "pkey", "crl": "crl"}
_PEM_LABEL = {"cert": rb"CERTIFICATE", "key": rb"[A-Z ]*PRIVATE KEY", "crl": rb"X509 CRL"}
RESTORE = "restore the file pgkongtls wrote"
#: A CRL is never copied from elsewhere into a PKI: pgkongtls re-signs it.
RESIGN = "re-sign it with pgkongtls crl"


def _fix(kind: str, usual: str) -> str:
    return f"restore it, or {RESIGN}" if kind == "crl" else usual


class FileDamage(StateError):
    """A file that cannot be used as it is; `what` and `fix` let verify show it as a finding."""

    def __init__(self, where: str, what: str, fix: str) -> None:
        super().__init__(f"{what}; {fix}")
        self.where, self.what, self.fix = where, what, fix


class FileMissing(FileDamage):
    def __init__(self, where: str, kind: str = "cert") -> None:
        super().__init__(where, f"{where} is missing",
                         RESIGN if kind == "crl" else "restore it or re-create the PKI with pgkongtls init --force")


class EmptyFile(FileDamage):
    def __init__(self, where: str, kind: str) -> None:
        super().__init__(where, f"{where} is empty", _fix(kind, "restore it or re-create it"))


class DerNotPem(FileDamage):
    def __init__(self, where: str, kind: str) -> None:
        super().__init__(where, f"{where} is DER, not PEM",
                         f"convert it: openssl {_OPENSSL[kind]} -inform der -in {where} -out {where}.pem")


class WrongKind(FileDamage):
    """A key where a certificate belongs, or the reverse: the two file names were swapped."""

    def __init__(self, where: str, kind: str) -> None:
        found, ext = ("a private key", ".crt") if kind == "cert" else ("a certificate", ".key")
        super().__init__(where, f"{where} holds {found} where a {_LABEL[kind]} should be",
                         f"point it at the {ext} file")


class NoPem(FileDamage):
    def __init__(self, where: str, kind: str) -> None:
        super().__init__(where, f"{where} holds no PEM {_LABEL[kind]}", _fix(kind, "restore it or re-create it"))


class TruncatedPem(FileDamage):
    def __init__(self, where: str, kind: str) -> None:
        super().__init__(where, f"{where} has a truncated PEM {_LABEL[kind]} (BEGIN and END do not pair up)",
                         _fix(kind, "copy it again"))


class DamagedPem(FileDamage):
    def __init__(self, where: str, kind: str) -> None:
        what = "damaged or unsupported PEM private key" if kind == "key" else f"damaged PEM {_LABEL[kind]}"
        super().__init__(where, f"{where} has a {what}", _fix(kind, "copy it again"))


class NotAsRecorded(FileDamage):
    """A file that parses but is not what the manifest recorded (replaced, reordered, cut between blocks)."""

    def __init__(self, where: str, fix: str = RESTORE) -> None:
        super().__init__(where, f"{where} differs from what {MANIFEST_NAME} recorded (edited by hand?)", fix)


class ManifestLies(FileDamage):
    """A manifest field that the fingerprint-verified certificate contradicts (not_after 9999, a junk issuer)."""

    def __init__(self, entry: CertEntry, field: str) -> None:
        super().__init__(MANIFEST_NAME, f"{MANIFEST_NAME}: certificates.{entry.name}.{field} is not what {entry.file} "
                         "says (edited by hand?)", "restore the manifest pgkongtls wrote")


def _pem_blocks(data: bytes, kind: str) -> int:
    """How many BEGIN/END pairs of `kind`; -1 when they do not pair up (a cut-off file)."""
    label = _PEM_LABEL[kind]
    begins = len(re.findall(rb"-----BEGIN " + label + rb"-----", data))
    ends = len(re.findall(rb"-----END " + label + rb"-----", data))
    return begins if begins == ends else -1


def _structure(data: bytes | None, where: str, kind: str) -> bytes:
    """The damage every kind of PEM file can have, checked in one order for every reader."""
    if data is None:
        raise FileMissing(where, kind)
    if not data.strip():
        raise EmptyFile(where, kind)
    if data[:1] == b"\x30":
        raise DerNotPem(where, kind)
    count = _pem_blocks(data, kind)
    if count == 0:
        other = b"PRIVATE KEY-----" in data if kind == "cert" else b"-----BEGIN CERTIFICATE-----" in data
        if other and kind != "crl":
            raise WrongKind(where, kind)
        raise NoPem(where, kind)
    if count < 0:
        raise TruncatedPem(where, kind)
    return data


def parse_certs(data: bytes | None, where: str) -> tuple[x509.Certificate, ...]:
    """Every PEM certificate in the file, in file order."""
    data = _structure(data, where, "cert")
    try:
        return tuple(x509.load_pem_x509_certificates(data))
    except ValueError:
        raise DamagedPem(where, "cert") from None


@dataclass(frozen=True)
class LoadedKey:
    """A private key; `key` is None when it is encrypted and no passphrase was given."""

    key: PrivateKeyTypes | None
    encrypted: bool


def parse_key(data: bytes | None, where: str) -> LoadedKey:
    """A PEM private key, without a passphrase: an encrypted key is reported, not an error."""
    data = _structure(data, where, "key")
    try:
        return LoadedKey(load_pem_private_key(data, password=None), encrypted=False)
    except TypeError:  # cryptography: "Password was not given but private key is encrypted"
        return LoadedKey(None, encrypted=True)
    except (ValueError, UnsupportedAlgorithm):
        raise DamagedPem(where, "key") from None


def decrypt_key(data: bytes, passphrase: bytes) -> PrivateKeyTypes | None:
    """The key of an encrypted PEM (parse_key said so); None when the passphrase is wrong."""
    try:
        return load_pem_private_key(data, password=passphrase)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return None


def parse_crls(data: bytes | None, where: str) -> tuple[x509.CertificateRevocationList, ...]:
    """Every PEM CRL in the file. PostgreSQL reads ssl_crl_file and ssl_crl_dir as PEM only."""
    data = _structure(data, where, "crl")
    blocks = re.findall(rb"-----BEGIN X509 CRL-----.*?-----END X509 CRL-----", data, re.S)
    try:
        return tuple(x509.load_pem_x509_crl(b) for b in blocks)
    except ValueError:
        raise DamagedPem(where, "crl") from None


# ---------------------------------------------------------------- what the manifest recorded

def bundled(m: Manifest, entry: CertEntry) -> list[str]:
    """Fingerprints a file holds after its own certificate: the intermediate a leaf bundles (init --bundle)."""
    inter = m.certificates.get("intermediate")
    if entry.role in ("server", "client") and m.bundle and m.mode == "ca" and inter is not None:
        return [inter.sha256]
    return []


def _superseded(m: Manifest, role: str) -> list[str]:
    """Fingerprints of the old CA certificates of `role` still trusted after `renew root|intermediate`."""
    return [e.sha256 for n, e in sorted(m.certificates.items()) if e.role == role and "@" in n]


def _as_recorded(m: Manifest, entry: CertEntry, found: Sequence[x509.Certificate]) -> bool:
    """Its certificate, then its bundle (a leaf issued before `renew intermediate` bundles the old intermediate)."""
    got, want = [fingerprint(c) for c in found], [entry.sha256, *bundled(m, entry)]
    return got == want or (len(got) == 2 == len(want) and got[0] == entry.sha256
                           and got[1] in _superseded(m, "intermediate"))


#: The entry fields a certificate carries, in the order they are compared.
DERIVED = ("sha256", "serial", "cn", "sans", "not_before", "not_after")


def check_recorded(m: Manifest, entry: CertEntry, found: Sequence[x509.Certificate], where: str) -> None:
    """A certificate file must hold exactly what init or issue wrote, and every field the manifest
    derived from that certificate must still say what the certificate says."""
    if not _as_recorded(m, entry, found):
        raise NotAsRecorded(where)
    want = entry_for(found[0], name=entry.name, role=entry.role, issuer=entry.issuer, file=entry.file,
                     key_file=entry.key_file)
    for name in DERIVED:
        if getattr(want, name) != getattr(entry, name):
            raise ManifestLies(entry, name)


def check_issuer(entry: CertEntry, cert: x509.Certificate, issuer: x509.Certificate) -> None:
    """The entry's `issuer` names the CA that signed it (a self-signed certificate names none)."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        raise ManifestLies(entry, "issuer") from None


class Certs(Mapping[str, x509.Certificate]):
    """The PKI's certificates by name, each parsed when first asked for.

    A command on a 10,000-entry PKI parses the few it uses. Each parse checks the fingerprint
    again, so a file swapped after the load is still caught; its other fields were checked by
    `verify_pki` (or vouched for by the stat cache, see fsio.read).
    """

    def __init__(self, m: Manifest, read: Callable[[str], bytes | None]) -> None:
        self._m, self._read = m, read
        self._parsed: dict[str, x509.Certificate] = {}

    def __getitem__(self, name: str) -> x509.Certificate:
        if name not in self._parsed:
            e = self._m.certificates[name]
            found = parse_certs(self._read(e.file), e.file)
            if not _as_recorded(self._m, e, found):
                raise NotAsRecorded(e.file)
            self._parsed[name] = found[0]
        return self._parsed[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._m.certificates)

    def __len__(self) -> int:
        return len(self._m.certificates)

    def known(self, name: str, cert: x509.Certificate) -> None:
        self._parsed[name] = cert


def verify_pki(m: Manifest, read: Callable[[str], bytes | None], trusted: Collection[str] = ()) -> Certs:
    """Refuse a directory whose files differ from the manifest, checking only the files not in `trusted`.

    Each checked certificate: parsed, fingerprints as recorded, every derived field as recorded,
    signed by the CA its `issuer` names. An archived revoked certificate may be missing (the CRL
    needs only its serial, which is in its name).
    """
    certs = Certs(m, read)
    for e in m.certificates.values():
        if e.file in trusted:
            continue
        data = read(e.file)
        if data is None and "@" in e.name:
            continue
        found = parse_certs(data, e.file)
        check_recorded(m, e, found, e.file)
        certs.known(e.name, found[0])
        check_issuer(e, found[0], found[0] if e.issuer is None else certs[e.issuer])
    if m.mode == "ca" and CHAIN_FILE not in trusted:
        check_chain_recorded(m, parse_certs(read(CHAIN_FILE), CHAIN_FILE))
    return certs


def check_chain_recorded(m: Manifest, found: Sequence[x509.Certificate], where: str = CHAIN_FILE) -> None:
    """chain.crt holds the CAs, intermediate first, each followed by its superseded certificates still trusted."""
    want = [f for n in ("intermediate", "root") if n in m.certificates
            for f in (m.certificates[n].sha256, *_superseded(m, n))]
    if [fingerprint(c) for c in found] != want:
        raise NotAsRecorded(where)
