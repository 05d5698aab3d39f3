"""pgkongtls: TLS and mutual TLS between Kong Gateway and PostgreSQL."""

__version__ = "0.1.0"

#: Key algorithms `--key-type` accepts; here so the CLI can list them without importing cryptography.
KEY_TYPES = ("ecdsa-p256", "ecdsa-p384", "rsa-2048", "rsa-3072", "rsa-4096")
#: `render kubernetes --for` choices; here so the CLI can list them without importing the renderers.
K8S_TARGETS = ("kong-helm", "cloudnativepg", "zalando", "bitnami", "cert-manager")

#: PostgreSQL (OpenSSL) refuses EVERY client certificate once a loaded CRL is past its
#: nextUpdate, while a revocation takes effect at the next reload whatever nextUpdate
#: says. So a short CRL lifetime only adds a way to cause an outage: 90 days gives
#: `status` (warning 30 days ahead by default) two quiet months before it nags.
#: Here, like KEY_TYPES, so `--help` shows the defaults without importing cryptography.
DEFAULT_CRL_DAYS = 90
DEFAULT_WARN_DAYS = 30

#: Lifetimes in days (the source document's): root 10 years, intermediate 5, leaves 1. A leaf
#: never outlives its issuer by default. Here so `--help` shows them without importing cryptography.
DEFAULT_DAYS_ROOT = 3650
DEFAULT_DAYS_INTERMEDIATE = 1825
DEFAULT_DAYS_LEAF = 365
#: The longest lifetime any --days option accepts (100 years), and a CRL's (10 years).
MAX_DAYS = 36500
MAX_CRL_DAYS = 3650
#: A server certificate's purposes (`--eku`). serverAuth alone is the strict default; "server,client"
#: adds clientAuth for charts whose health probes connect with the server's own certificate as a
#: client certificate (Bitnami's PostgreSQL chart with TLS and `cert` auth), which a serverAuth-only
#: certificate fails. Opt-in, because one leaf for both purposes is what a stolen key buys twice.
SERVER_EKUS = ("server", "server,client")
DEFAULT_SERVER_EKU = "server"
#: How long a writing command waits for another pgkongtls run on the same PKI (`--wait`).
DEFAULT_LOCK_WAIT = 10.0
#: Archived NAME.crt.<serial>.bak files `renew` and `prune` keep per certificate whatever their state;
#: older ones go once expired (lifecycle.prune says why never sooner).
DEFAULT_KEEP_BACKUPS = 3
