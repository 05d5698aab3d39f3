"""pgkongtls: TLS and mutual TLS between Kong Gateway and PostgreSQL."""

__version__ = "0.1.0"

#: Key algorithms `--key-type` accepts; here so the CLI can list them without importing cryptography.
KEY_TYPES = ("ecdsa-p256", "ecdsa-p384", "rsa-2048", "rsa-3072", "rsa-4096")
