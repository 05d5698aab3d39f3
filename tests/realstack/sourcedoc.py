"""The source document's own PKI and PostgreSQL settings, for the baseline real-stack tests.

The certificates come from tests/openssl_procedure.py, which runs the document's
openssl commands (intermediate chain, `-config /etc/ssl/openssl.cnf`, optional
"append intermediate.crt" steps included). The result is what pgkongtls must
beat: v1 leaves with no extensions and CAs without keyUsage.
"""

from __future__ import annotations

from pathlib import Path

from ..openssl_procedure import run_source_procedure

SERVER_CN = "dbhost.yourdomain.com"
CLIENT_CN = "kong"
#: The document's pg_hba.conf line for the `cert` method.
HBA = "hostssl all all all cert\n"


def build(directory: Path) -> Path:
    """Run the document's intermediate-chain procedure in `directory`; returns it."""
    run_source_procedure(directory, "intermediate")
    return directory


def postgres_conf(pg_dir: Path) -> str:
    """The document's postgresql.conf lines: ssl, ssl_cert_file, ssl_key_file, and ssl_ca_file for mTLS."""
    return "\n".join([
        "ssl = on",
        f"ssl_cert_file = '{pg_dir / 'server.crt'}'",
        f"ssl_key_file = '{pg_dir / 'server.key'}'",
        f"ssl_ca_file = '{pg_dir / 'chain.crt'}'",
        "",
    ])
