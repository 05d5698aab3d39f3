"""Encrypted CA keys: PKCS#8 PBES2 at a cost we choose.

cryptography's BestAvailableEncryption writes PBKDF2-HMAC-SHA256 at 2,048 iterations, and its
encryption builder cannot set the rounds for PKCS#8 (only PKCS#12 and OpenSSH). So the
EncryptedPrivateKeyInfo (RFC 5958, PBES2 from RFC 8018) is assembled here, in the shape
`openssl pkcs8 -topk8 -v2 aes-256-cbc -v2prf hmacWithSHA256 -iter N` writes, which openssl and
cryptography's `load_pem_private_key` both read.
"""

from __future__ import annotations

import base64
import os
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

if TYPE_CHECKING:
    from pgkongtls.certs import PrivateKey

#: OWASP's 2023 figure for PBKDF2-HMAC-SHA256 (FACTS.md); the one place the cost is written.
PBKDF2_ITERATIONS = 600_000

_PBES2 = "1.2.840.113549.1.5.13"
_PBKDF2 = "1.2.840.113549.1.5.12"
_HMAC_SHA256 = "1.2.840.113549.2.9"
_AES256_CBC = "2.16.840.1.101.3.4.1.42"


def _tlv(tag: int, body: bytes) -> bytes:
    n = len(body)
    width = (n.bit_length() + 7) // 8
    length = bytes([n]) if n < 0x80 else bytes([0x80 | width]) + n.to_bytes(width, "big")
    return bytes([tag]) + length + body


def _seq(*parts: bytes) -> bytes:
    return _tlv(0x30, b"".join(parts))


def _oid(dotted: str) -> bytes:
    first, second, *rest = (int(p) for p in dotted.split("."))
    out = bytearray([40 * first + second])
    for arc in rest:
        chunk = [arc & 0x7F]
        while arc > 0x7F:
            arc >>= 7
            chunk.append(0x80 | (arc & 0x7F))
        out += bytes(reversed(chunk))
    return _tlv(0x06, bytes(out))


def _int(value: int) -> bytes:
    return _tlv(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def encrypted_pkcs8_pem(key: PrivateKey, passphrase: bytes, *, iterations: int = PBKDF2_ITERATIONS) -> bytes:
    """`key` as an ENCRYPTED PRIVATE KEY: PBKDF2-HMAC-SHA256 (`iterations`), AES-256-CBC."""
    plain = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    salt, iv = os.urandom(16), os.urandom(16)
    secret = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt, iterations=iterations).derive(passphrase)
    padder = padding.PKCS7(128).padder()
    encryptor = Cipher(algorithms.AES(secret), modes.CBC(iv)).encryptor()
    sealed = encryptor.update(padder.update(plain) + padder.finalize()) + encryptor.finalize()
    kdf = _seq(_oid(_PBKDF2), _seq(_tlv(0x04, salt), _int(iterations), _seq(_oid(_HMAC_SHA256), b"\x05\x00")))
    scheme = _seq(_oid(_AES256_CBC), _tlv(0x04, iv))
    der = _seq(_seq(_oid(_PBES2), _seq(kdf, scheme)), _tlv(0x04, sealed))
    b64 = base64.b64encode(der).decode()
    lines = "\n".join(b64[i:i + 64] for i in range(0, len(b64), 64))
    return f"-----BEGIN ENCRYPTED PRIVATE KEY-----\n{lines}\n-----END ENCRYPTED PRIVATE KEY-----\n".encode()
