"""The source document's openssl procedure, run command for command.

`run_source_procedure(dir, chain)` makes the same files an operator following
Kong's guide "Configure PostgreSQL TLS" would make, so tests (and benchmarks)
can check what `pgkongtls verify` says about them and compare speed. The
command strings below are the document's own, in its order; only
`-config /etc/ssl/openssl.cnf` is already part of them.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

#: Section "中間CAチェーン" (root → intermediate → server, client).
INTERMEDIATE = [
    'openssl req -new -x509 -utf8 -nodes -subj "/CN=root.yourdomain.com" -config /etc/ssl/openssl.cnf'
    " -extensions v3_ca -days 3650 -keyout root.key -out root.crt",
    'openssl req -new -utf8 -nodes -subj "/CN=intermediate.yourdomain.com" -config /etc/ssl/openssl.cnf'
    " -keyout intermediate.key -out intermediate.csr",
    "chmod og-rwx intermediate.key",
    "openssl x509 -req -extfile /etc/ssl/openssl.cnf -extensions v3_ca -in intermediate.csr -days 1825"
    " -CA root.crt -CAkey root.key -CAcreateserial -out intermediate.crt",
    'openssl req -new -utf8 -nodes -subj "/CN=dbhost.yourdomain.com" -config /etc/ssl/openssl.cnf'
    " -keyout server.key -out server.csr",
    "chmod og-rwx server.key",
    "openssl x509 -req -in server.csr -days 365 -CA intermediate.crt -CAkey intermediate.key -CAcreateserial"
    " -out server.crt",
    'openssl req -new -utf8 -nodes -subj "/CN=kong" -config /etc/ssl/openssl.cnf -keyout client.key -out client.csr',
    "chmod og-rwx client.key",
    "openssl x509 -req -in client.csr -days 365 -CA intermediate.crt -CAkey intermediate.key -CAcreateserial"
    " -out client.crt",
    "cat intermediate.crt > chain.crt",
    "cat root.crt >> chain.crt",
]
#: The two steps the document marks 任意 (optional).
INTERMEDIATE_OPTIONAL = ["cat intermediate.crt >> server.crt", "cat intermediate.crt >> client.crt"]

#: Section "中間CAなしのチェーン" (root → server, client); it makes no chain.crt.
ROOT = [
    INTERMEDIATE[0],
    INTERMEDIATE[4],
    "chmod og-rwx server.key",
    "openssl x509 -req -in server.csr -days 365 -CA root.crt -CAkey root.key -CAcreateserial -out server.crt",
    INTERMEDIATE[7],
    "chmod og-rwx client.key",
    "openssl x509 -req -in client.csr -days 365 -CA root.crt -CAkey root.key -CAcreateserial -out client.crt",
]

#: Section "テスト用の自己署名証明書".
SELF_SIGNED = [
    'openssl req -new -x509 -utf8 -nodes -subj "/CN=dbhost.yourdomain.com" -config /etc/ssl/openssl.cnf'
    " -days 365 -keyout server.key -out server.crt",
    "chmod og-rwx server.key",
    'openssl req -new -x509 -utf8 -nodes -subj "/CN=kong" -config /etc/ssl/openssl.cnf'
    " -days 365 -keyout client.key -out client.crt",
    "chmod og-rwx client.key",
]

CHAINS = ("intermediate", "root", "self-signed")


def source_commands(chain: str, *, optional_steps: bool = True) -> list[str]:
    """The document's commands for one chain shape, in its order."""
    if chain == "intermediate":
        return INTERMEDIATE + (INTERMEDIATE_OPTIONAL if optional_steps else [])
    if chain == "root":
        return list(ROOT)
    if chain == "self-signed":
        return list(SELF_SIGNED)
    raise ValueError(f"unknown chain {chain!r}; use one of {', '.join(CHAINS)}")


def run_source_procedure(dir: Path, chain: str, *, optional_steps: bool = True) -> None:
    """Run the document's procedure in `dir` (created if needed), one shell command at a time."""
    dir.mkdir(parents=True, exist_ok=True)
    for command in source_commands(chain, optional_steps=optional_steps):
        subprocess.run(command, shell=True, cwd=dir, check=True, capture_output=True)
