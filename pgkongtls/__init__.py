"""pgkongtls: TLS and mutual TLS between Kong Gateway and PostgreSQL."""

__version__ = "0.1.0"

#: Key algorithms `--key-type` accepts; here so the CLI can list them without importing cryptography.
KEY_TYPES = ("ecdsa-p256", "ecdsa-p384", "rsa-2048", "rsa-3072", "rsa-4096")

#: PostgreSQL (OpenSSL) refuses EVERY client certificate once a loaded CRL is past its
#: nextUpdate, while a revocation takes effect at the next reload whatever nextUpdate
#: says. So a short CRL lifetime only adds a way to cause an outage: 90 days gives
#: `status` (warning 30 days ahead by default) two quiet months before it nags.
#: Here, like KEY_TYPES, so `--help` shows the defaults without importing cryptography.
DEFAULT_CRL_DAYS = 90
DEFAULT_WARN_DAYS = 30
