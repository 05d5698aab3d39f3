"""The source document's own openssl chain on the real stack: libpq takes it, Python 3.13 does not.

This is the case pgkongtls exists for: the chain passes `openssl verify` and libpq,
but its CAs have no keyUsage and its leaves are v1, so the strict default context
of Python >= 3.13 (asyncpg and every other `ssl`-module client) refuses it. The
positive matrix shows the same client accepting every PKI pgkongtls makes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from . import sourcedoc
from .clients import libpq_connect, py313_connect
from .pg import Cluster
from .pkis import DB_IP

pytestmark = pytest.mark.realstack

RESOLVE = f"{sourcedoc.SERVER_CN}:{DB_IP}"


@pytest.fixture(scope="module")
def source_doc(realstack_base: Path) -> Path:
    return sourcedoc.build(realstack_base / "sourcedoc")


@pytest.fixture
def serving_source_doc(cluster: Cluster, source_doc: Path) -> Cluster:
    """The cluster with the document's postgresql.conf lines and its `hostssl all all all cert`."""
    pg_dir = cluster.install_files("sourcedoc", {n: source_doc / n for n in ("server.crt", "server.key", "chain.crt")})
    cluster.configure(postgres_conf=sourcedoc.postgres_conf(pg_dir), hba=sourcedoc.HBA, ident="")
    return cluster


def test_libpq_accepts_the_source_documents_chain(serving_source_doc: Cluster, source_doc: Path,
                                                  record: Callable[..., None]) -> None:
    row = libpq_connect(port=serving_source_doc.port, host=sourcedoc.SERVER_CN, hostaddr=DB_IP,
                        sslrootcert=source_doc / "chain.crt", sslcert=source_doc / "client.crt",
                        sslkey=source_doc / "client.key")
    record(case="source document's openssl chain", client="libpq verify-full", expected="auth ok",
           observed=f"{row.version} {row.client_dn}")
    assert (row.ssl, row.client_dn, row.user) == (True, f"/CN={sourcedoc.CLIENT_CN}", "kong")


def test_python313_strict_context_rejects_the_source_documents_chain(
        serving_source_doc: Cluster, source_doc: Path, record: Callable[..., None]) -> None:
    files = {"host": sourcedoc.SERVER_CN, "resolve": RESOLVE, "port": serving_source_doc.port,
             "cafile": source_doc / "chain.crt", "cert": source_doc / "client.crt", "key": source_doc / "client.key"}
    strict = py313_connect(**files)  # type: ignore[arg-type]
    record(case="source document's openssl chain", client="asyncpg py3.13 strict",
           expected="CA cert does not include key usage", observed=strict.error or "connected")
    assert strict.strict and not strict.ok
    assert "certificate verify failed: CA cert does not include key usage extension" in (strict.error or "")
    relaxed = py313_connect(**files, relaxed=True)  # type: ignore[arg-type]
    assert not relaxed.strict
    assert relaxed.ok, relaxed.error  # twin: only VERIFY_X509_STRICT differs
