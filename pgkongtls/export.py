"""`pgkongtls export`: one identity's key in the formats other drivers read.

pgjdbc cannot read a PEM key (FACTS.md, "Other clients"): it takes PKCS#8 DER
(`sslkey=client.pk8`) or PKCS#12 whose entry is named `user`, or it sends no
certificate. PKCS#12 is written with PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC)
and an HMAC-SHA256 MAC, the profile OpenSSL 3 and Java 17 read without legacy
options (the RC2/3DES default of older tools is refused by both).

Pure: PEM bytes in, bytes out. The CLI reads the PKI and writes the file.
"""

from __future__ import annotations

from dataclasses import dataclass

from pgkongtls.errors import InputError, StateError

#: `--format` choices: PKCS#8 DER for pgjdbc's `sslkey=….pk8`, PKCS#12 for `sslkey=….p12`.
FORMATS = ("pk8", "p12")
#: pgjdbc looks the key entry up by this alias.
P12_FRIENDLY_NAME = b"user"
#: PBKDF2 rounds for the PKCS#12 key and certificate bags (OWASP 2023 figure for PBKDF2-HMAC-SHA256).
P12_KDF_ROUNDS = 600_000


@dataclass(frozen=True)
class Exported:
    """The bytes to write, and what a driver needs to know to use them."""

    data: bytes
    format: str
    encrypted: bool


def export_key(
    *, name: str, role: str, key_pem: bytes, cert_pem: bytes, fmt: str, password: bytes | None,
) -> Exported:
    """Convert one leaf's key (and, for PKCS#12, its certificate and bundle) for a non-libpq driver."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    if fmt not in FORMATS:
        raise InputError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    if role not in ("client", "server"):
        raise InputError(f"{name} is a CA: export takes a client or server name; CA keys never leave the PKI")
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
        chain = x509.load_pem_x509_certificates(cert_pem)
    except (ValueError, TypeError):
        raise StateError(f"the key or certificate file of {name} cannot be read; restore the files pgkongtls wrote") from None
    if fmt == "pk8":
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption())
        data = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, encryption)
        return Exported(data=data, format=fmt, encrypted=bool(password))
    builder = (serialization.PrivateFormat.PKCS12.encryption_builder()
               .kdf_rounds(P12_KDF_ROUNDS)
               .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
               .hmac_hash(hashes.SHA256()))
    if not password:
        raise InputError("--format p12 needs --password-file: PKCS#12 is always encrypted, and pgjdbc "
                         "takes the password as sslpassword=")
    data = pkcs12.serialize_key_and_certificates(
        P12_FRIENDLY_NAME, key, chain[0], chain[1:] or None,  # type: ignore[arg-type]
        builder.build(password))
    return Exported(data=data, format=fmt, encrypted=True)
