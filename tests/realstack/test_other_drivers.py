"""The database's other clients, for real: pgjdbc (Java 17) and node-postgres.

Each connects with what `pgkongtls render jdbc` / `render libpq --url` print and
the key `pgkongtls export` writes, to a PostgreSQL serving the rendered snippets
with `cert` authentication. Negative twins: another PKI's trust file (the server
is not trusted) and, for pgjdbc, the PEM key it cannot read.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .pg import Cluster
from .pkis import DB_IP, DB_NAME, Pki, cli

pytestmark = pytest.mark.realstack

DRIVERS = Path(__file__).parent / "drivers"
JDBC_JAR = Path("/usr/share/java/postgresql.jar")


def _url(rendered: str) -> str:
    """The one non-comment line of a rendered URL snippet."""
    lines = [line for line in rendered.splitlines() if line and not line.startswith("#")]
    assert len(lines) == 1, rendered
    return lines[0]


def _run(cmd: list[str]) -> str:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=DRIVERS)
    return (res.stdout.strip() or res.stderr.strip()).splitlines()[-1]


def _jdbc(url: str) -> str:
    if shutil.which("java") is None or not JDBC_JAR.exists():
        pytest.skip("java or libpostgresql-jdbc-java missing (scripts/test installs them)")
    return _run(["java", "-cp", str(JDBC_JAR), str(DRIVERS / "JdbcProbe.java"), url])


def _node(url: str, ssl: dict[str, str]) -> str:
    if not (DRIVERS / "node_modules" / "pg").is_dir():
        pytest.skip("node-postgres missing (scripts/test runs npm ci in tests/realstack/drivers)")
    return _run(["node", str(DRIVERS / "pg_probe.js"), url, json.dumps(ssl)])


@pytest.fixture(scope="module")
def served(main: Pki, cluster: Cluster) -> Pki:
    cluster.apply(main, auth="cert")
    return main


@pytest.fixture(scope="module")
def pk8(served: Pki, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("jdbc") / "client.pk8"
    cli("export", "--dir", str(served.dir), "client", "--format", "pk8", "--out", str(out))
    assert os.stat(out).st_mode & 0o777 == 0o600
    return out


def _render(pki: Pki, target: str, cluster: Cluster, *args: str) -> str:
    return _url(pki.render(target, "--host", DB_IP, "--port", str(cluster.port), "--database", "postgres", *args))


def test_pgjdbc_connects_with_rendered_url_and_exported_pk8(served: Pki, cluster: Cluster, pk8: Path) -> None:
    url = _render(served, "jdbc", cluster).replace(str(served.dir / "client.pk8"), str(pk8))
    assert _jdbc(url) == f"OK true /CN={served.manifest.certificates['client'].cn} kong"


def test_pgjdbc_refuses_the_pem_key(served: Pki, cluster: Cluster) -> None:
    url = _render(served, "jdbc", cluster).replace(str(served.dir / "client.pk8"), str(served.client_key))
    out = _jdbc(url)
    assert out.startswith("FAIL") and "Could not read SSL key file" in out, out


def test_pgjdbc_refuses_a_server_from_another_pki(served: Pki, other: Pki, cluster: Cluster, pk8: Path) -> None:
    url = (_render(served, "jdbc", cluster).replace(str(served.dir / "client.pk8"), str(pk8))
           .replace(str(served.trust_file), str(other.trust_file)))
    out = _jdbc(url)
    assert out.startswith("FAIL") and "PKIX path" in out, out


def test_pgjdbc_connects_with_the_p12_named_user(served: Pki, cluster: Cluster, tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    p12 = tmp_path / "client.p12"
    cli("export", "--dir", str(served.dir), "client", "--format", "p12", "--password-file", str(pw), "--out", str(p12))
    url = _render(served, "jdbc", cluster).replace(str(served.dir / "client.pk8"), str(p12)) + "&sslpassword=s3cret"
    assert _jdbc(url) == f"OK true /CN={served.manifest.certificates['client'].cn} kong"


def test_node_postgres_connects_with_rendered_url(served: Pki, cluster: Cluster) -> None:
    url = _render(served, "libpq", cluster, "--url")
    assert _node(url, {}) == f"OK true /CN={served.manifest.certificates['client'].cn} kong"


def test_node_postgres_checks_the_url_host_against_the_certificate(served: Pki, cluster: Cluster) -> None:
    """`localhost` reaches the same server, but is not among its SANs: the URL's host is what is checked."""
    url = _render(served, "libpq", cluster, "--url").replace(f"@{DB_IP}:", "@localhost:")
    out = _node(url, {})
    assert out.startswith("FAIL") and "Host: localhost" in out, out


def test_node_postgres_servername_needs_the_ssl_object_not_the_url(served: Pki, cluster: Cluster) -> None:
    """Measured: ssl* parameters in the URL replace the `ssl` object, so `servername` only works without them
    (what render libpq --url's comment tells node-postgres users)."""
    base = f"postgresql://kong@{DB_IP}:{cluster.port}/postgres"
    files = {"ca": str(served.trust_file), "cert": str(served.client_cert), "key": str(served.client_key)}
    cn = served.manifest.certificates["client"].cn
    assert _node(base, {**files, "servername": DB_NAME}) == f"OK true /CN={cn} kong"
    wrong = _node(base, {**files, "servername": "elsewhere.pgkongtls.test"})
    assert wrong.startswith("FAIL") and "elsewhere.pgkongtls.test" in wrong, wrong
    in_url = _render(served, "libpq", cluster, "--url")
    assert _node(in_url, {**files, "servername": "elsewhere.pgkongtls.test"}) == f"OK true /CN={cn} kong"


def test_node_postgres_refuses_a_server_from_another_pki(served: Pki, other: Pki, cluster: Cluster) -> None:
    url = _render(served, "libpq", cluster, "--url").replace(str(served.trust_file), str(other.trust_file))
    out = _node(url, {})
    assert out.startswith("FAIL") and ("unable to get local issuer" in out or "self-signed" in out), out
