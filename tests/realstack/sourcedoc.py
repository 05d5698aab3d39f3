"""The source document's own PKI, built with its own openssl commands (intermediate chain).

The commands are copied from /work/shared/reference/configure-postgresql-tls.ja.txt,
section "中間CAチェーン", in order, with `-config /etc/ssl/openssl.cnf` as the
document uses it; only the optional "append intermediate.crt" steps are left out.
The result is the baseline pgkongtls must beat: v1 leaves with no extensions and
CAs without keyUsage, which Python 3.13's strict default context refuses.
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

SERVER_CN = "dbhost.yourdomain.com"
CLIENT_CN = "kong"

COMMANDS = """\
openssl req -new -x509 -utf8 -nodes -subj "/CN=root.yourdomain.com" -config /etc/ssl/openssl.cnf -extensions v3_ca -days 3650 -keyout root.key -out root.crt
openssl req -new -utf8 -nodes -subj "/CN=intermediate.yourdomain.com" -config /etc/ssl/openssl.cnf -keyout intermediate.key -out intermediate.csr
chmod og-rwx intermediate.key
openssl x509 -req -extfile /etc/ssl/openssl.cnf -extensions v3_ca -in intermediate.csr -days 1825 -CA root.crt -CAkey root.key -CAcreateserial -out intermediate.crt
openssl req -new -utf8 -nodes -subj "/CN=dbhost.yourdomain.com" -config /etc/ssl/openssl.cnf -keyout server.key -out server.csr
chmod og-rwx server.key
openssl x509 -req -in server.csr -days 365 -CA intermediate.crt -CAkey intermediate.key -CAcreateserial -out server.crt
openssl req -new -utf8 -nodes -subj "/CN=kong" -config /etc/ssl/openssl.cnf -keyout client.key -out client.csr
chmod og-rwx client.key
openssl x509 -req -in client.csr -days 365 -CA intermediate.crt -CAkey intermediate.key -CAcreateserial -out client.crt
"""


def build(directory: Path) -> Path:
    """Run the document's commands in `directory`, then its `cat ... > chain.crt`; returns the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    for line in COMMANDS.splitlines():
        subprocess.run(shlex.split(line), cwd=directory, check=True, capture_output=True, timeout=120)
    (directory / "chain.crt").write_bytes((directory / "intermediate.crt").read_bytes()
                                          + (directory / "root.crt").read_bytes())
    return directory


def postgres_conf(pg_dir: Path) -> str:
    """The document's postgresql.conf lines (ssl, ssl_cert_file, ssl_key_file, ssl_ca_file)."""
    return "\n".join([
        "ssl = on",
        f"ssl_cert_file = '{pg_dir / 'server.crt'}'",
        f"ssl_key_file = '{pg_dir / 'server.key'}'",
        f"ssl_ca_file = '{pg_dir / 'chain.crt'}'",
        "",
    ])


#: The document's pg_hba.conf line for the `cert` method.
HBA = "hostssl all all all cert\n"
