"""Day 2 on the real stack: revoke with CRLs, renew, per-node identities, status.

Every change is made by the real CLI (`pgkongtls issue/revoke/renew/status` in a
subprocess), every server-side setting is the rendered snippet (Cluster.apply),
and the clients are libpq (psycopg), the Kong-equivalent nginx client and
openssl s_client. PKIs here are our own (`pkis.fresh`), never the shared ones.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509

from pgkongtls import ops
from pgkongtls.manifest import fingerprint
from pgkongtls.pki import InitOptions

from .clients import Refused, libpq_connect, s_client
from .kong import KongEquivalent, replace_setting
from .pg import Cluster, write_owned
from .pkis import DB_IP, DB_NAME, DEFAULT_HOSTS, Pki, PkiFactory, cli, mint_client

pytestmark = pytest.mark.realstack

NODES = ("kong-node-1", "kong-node-2", "kong-node-3")


def connect(pki: Pki, cluster: Cluster, name: str) -> str:
    """libpq verify-full with client certificate NAME; the session's client DN, or Refused."""
    row = libpq_connect(port=cluster.port, host=DB_NAME, hostaddr=DB_IP, sslrootcert=pki.trust_file,
                        sslcert=pki.cert_file(name), sslkey=pki.key_file(name))
    assert (row.ssl, row.user) == (True, "kong")
    return row.client_dn or ""


def kong_as(pki: Pki, kong: KongEquivalent, cluster: Cluster, name: str) -> object:
    """The Kong-equivalent client configured by `render kong --client NAME`."""
    return kong.connect(kong.deploy(pki, "--client", name).conf, port=cluster.port)


def refusal(pki: Pki, cluster: Cluster, cert: Path, key: Path) -> str:
    with pytest.raises(Refused) as e:
        libpq_connect(port=cluster.port, host=DB_NAME, hostaddr=DB_IP, sslrootcert=pki.trust_file,
                      sslcert=cert, sslkey=key)
    return str(e.value)


def server_cert_seen(pki: Pki, cluster: Cluster) -> x509.Certificate:
    """The leaf the running server presents (openssl s_client -showcerts)."""
    res = subprocess.run(
        ["openssl", "s_client", "-starttls", "postgres", "-connect", f"127.0.0.1:{cluster.port}",
         "-CAfile", str(pki.trust_file), "-cert", str(pki.client_cert), "-key", str(pki.client_key)],
        input=b"", capture_output=True, timeout=30)
    pem = re.search(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", res.stdout, re.S)
    assert pem, res.stdout.decode(errors="replace")
    return x509.load_pem_x509_certificate(pem.group(0))


_FRESH = itertools.count()


@pytest.fixture
def fleet(pkis: PkiFactory) -> Pki:
    """A fresh intermediate-chain PKI with three per-node client certificates (CN = node name)."""
    pki = pkis.fresh("intermediate", tag=f"lifecycle-{next(_FRESH)}")  # its own ssl/<label> dir on the cluster
    cli("issue", "client", "--dir", str(pki.dir), *[a for n in NODES for a in ("--name", n)], "--cn", "{name}")
    return pki


def test_three_node_certificates_map_to_kong_and_a_fourth_cn_is_refused(
        fleet: Pki, cluster: Cluster, kong: KongEquivalent, tmp_path: Path, record: Callable[..., None]) -> None:
    applied = cluster.apply(fleet, auth="cert")
    assert "pgkongtls /^kong-node-[0-9]+$ kong\n" in applied.ident
    assert "hostssl all kong all cert map=pgkongtls\n" in applied.hba
    for name in NODES:
        assert connect(fleet, cluster, name) == f"/CN={name}"
        res = kong_as(fleet, kong, cluster, name)
        record(case=f"ident regex map, {name}", client="libpq + Kong EE", expected="auth ok as kong",
               observed=str(res), column="lifecycle")
        assert res.ok and (res.client_dn, res.user) == (f"/CN={name}", "kong"), res  # type: ignore[attr-defined]
    # Signed by the same CA, but its CN is outside the pattern: the map does not admit it.
    outsider = mint_client(fleet, tmp_path, cn="kong-edge-a", now=dt.datetime.now(dt.timezone.utc), days=2)
    msg = refusal(fleet, cluster, outsider.cert, outsider.key)
    assert 'certificate authentication failed for user "kong"' in msg
    deployed = kong.deploy(fleet, "--client", "kong-node-1")
    cert, key = kong.install_client(deployed, outsider.cert, outsider.key)  # readable by Kong's workers
    conf = replace_setting(replace_setting(deployed.conf, "pg_ssl_cert", str(cert)), "pg_ssl_cert_key", str(key))
    res = kong.connect(conf, port=cluster.port)
    record(case="ident regex map, CN kong-edge-a", client="libpq + Kong EE", expected="refused",
           observed=str(res), column="lifecycle")
    assert not res.ok and 'certificate authentication failed for user "kong"' in res.message, res


def test_a_revoked_node_is_refused_after_reload_and_the_others_still_connect(
        fleet: Pki, cluster: Cluster, kong: KongEquivalent, record: Callable[..., None]) -> None:
    applied = cluster.apply(fleet, auth="cert")
    assert "ssl_crl_file" not in applied.postgres_conf
    assert connect(fleet, cluster, "kong-node-2") == "/CN=kong-node-2"  # it worked before the revocation
    # The node keeps the kong.conf it was given; render refuses a revoked --client from now on.
    node2_conf = fleet.render("kong", "--client", "kong-node-2")
    cli("revoke", "--dir", str(fleet.dir), "kong-node-2", "--reason", "keyCompromise")
    applied = cluster.apply(fleet, auth="cert")  # copy crl.pem, rendered config, pg_reload_conf()
    assert f"ssl_crl_file = '{applied.pg_dir / 'crl.pem'}'\n" in applied.postgres_conf
    live = cluster.sql("SHOW ssl_crl_file")[0][0]
    assert live == str(applied.pg_dir / "crl.pem")
    mark = cluster.log_mark()
    msg = refusal(fleet, cluster, fleet.cert_file("kong-node-2"), fleet.key_file("kong-node-2"))
    assert "certificate revoked" in msg, msg
    # PostgreSQL 15 logs only the generic reason; the TLS alert libpq got names the revocation.
    assert "could not accept SSL connection: certificate verify failed" in cluster.wait_log(mark, "verify failed")
    res = kong.connect(node2_conf, port=cluster.port)
    record(case="revoked kong-node-2 after reload", client="libpq + Kong EE", expected="refused",
           observed=f"libpq: {msg.splitlines()[0]}; kong: {res}", column="lifecycle")
    assert not res.ok, res  # type: ignore[attr-defined]
    for name in ("kong-node-1", "kong-node-3"):
        assert connect(fleet, cluster, name) == f"/CN={name}"
        res = kong_as(fleet, kong, cluster, name)
        record(case=f"{name} with the CRL loaded", client="libpq + Kong EE", expected="auth ok",
               observed=str(res), column="lifecycle")
        assert res.ok, res  # type: ignore[attr-defined]


def test_the_original_client_still_connects_once_node_certificates_are_mapped(
        fleet: Pki, cluster: Cluster) -> None:
    applied = cluster.apply(fleet, auth="cert")
    assert "map=pgkongtls" in applied.hba and fleet.manifest.certificates["client"].cn == "kong"
    assert connect(fleet, cluster, "client") == "/CN=kong"


@pytest.mark.parametrize("missing", ["intermediate", "root"])
def test_postgresql_needs_the_crl_of_every_ca_level(
        fleet: Pki, cluster: Cluster, missing: str, record: Callable[..., None]) -> None:
    """crl.pem holds the intermediate's and the root's CRL; drop either and PostgreSQL refuses everyone."""
    cli("revoke", "--dir", str(fleet.dir), "kong-node-2")
    applied = cluster.apply(fleet, auth="cert")
    full = (fleet.dir / "crl.pem").read_bytes()
    crls = {x509.load_pem_x509_crl(b).issuer: b for b in
            re.findall(rb"-----BEGIN X509 CRL-----.+?-----END X509 CRL-----\n", full, re.S)}
    subjects = {lvl: x509.load_pem_x509_certificate(fleet.path(f"{lvl}.crt").read_bytes()).subject
                for lvl in ("intermediate", "root")}
    assert set(crls) == set(subjects.values())
    assert connect(fleet, cluster, "kong-node-1") == "/CN=kong-node-1"
    kept = crls[subjects["root" if missing == "intermediate" else "intermediate"]]
    try:
        write_owned(applied.pg_dir / "crl.pem", kept, 0o644)
        cluster.reload()
        msg = refusal(fleet, cluster, fleet.cert_file("kong-node-1"), fleet.key_file("kong-node-1"))
        record(case=f"crl.pem without the {missing} CRL", client="libpq verify-full", expected="refused",
               observed=msg.splitlines()[0], column="lifecycle")
        # OpenSSL's "unable to get certificate CRL" goes out as the unknown_ca alert.
        assert "SSL error: tlsv1 alert unknown ca" in msg, msg
    finally:
        write_owned(applied.pg_dir / "crl.pem", full, 0o644)
        cluster.reload()
    assert connect(fleet, cluster, "kong-node-1") == "/CN=kong-node-1"


def test_renewed_server_certificate_needs_no_config_change(
        pkis: PkiFactory, cluster: Cluster, kong: KongEquivalent, record: Callable[..., None]) -> None:
    pki = pkis.fresh("intermediate", tag=f"lifecycle-{next(_FRESH)}")
    cli("revoke", "--dir", str(pki.dir), "--crl-days", "30", "client")  # a CRL is loaded too: renewals keep it valid
    cli("issue", "client", "--dir", str(pki.dir), "--name", "kong-node-1", "--cn", "{name}")
    before = cluster.apply(pki, auth="cert")
    kong_conf = kong.deploy(pki, "--client", "kong-node-1").conf
    old = fingerprint(server_cert_seen(pki, cluster))
    assert old == pki.manifest.certificates["server"].sha256
    cli("renew", "--dir", str(pki.dir), "server")
    new = pki.manifest.certificates["server"].sha256
    assert new != old and (pki.dir / f"server.crt.{_serial_of(pki, old)}.bak").exists()
    after = cluster.apply(pki, auth="cert")  # copy the files, write the (same) rendered config, reload
    assert (after.postgres_conf, after.hba, after.ident) == (before.postgres_conf, before.hba, before.ident)
    assert kong.deploy(pki, "--client", "kong-node-1").conf == kong_conf  # same text; renewed files copied
    assert fingerprint(server_cert_seen(pki, cluster)) == new
    assert connect(pki, cluster, "kong-node-1") == "/CN=kong-node-1"
    res = kong.connect(kong_conf, port=cluster.port)
    record(case="after renew server, same config", client="libpq + Kong EE", expected="auth ok",
           observed=str(res), column="lifecycle")
    assert res.ok, res
    sc = s_client(port=cluster.port, cafile=pki.trust_file, verify_depth=pki.verify_depth,
                  cert=pki.cert_file("kong-node-1"), key=pki.key_file("kong-node-1"), verify_hostname=DB_NAME)
    assert sc.ok, sc.output


def _serial_of(pki: Pki, sha256: str) -> str:
    """The serial of the .bak whose certificate has this fingerprint."""
    for bak in pki.dir.glob("server.crt.*.bak"):
        cert = x509.load_pem_x509_certificates(bak.read_bytes())[0]
        if fingerprint(cert) == sha256:
            return format(cert.serial_number, "x")
    raise AssertionError(f"no server.crt.*.bak with fingerprint {sha256}")


def status(pki_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pgkongtls", "status", "--dir", str(pki_dir), *args],
                          capture_output=True, text=True, timeout=60, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})


def clocked_pki(base: Path, label: str, days_ago: float) -> Pki:
    """A PKI minted `days_ago` days in the past through the library's injected clock."""
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(days=days_ago)
    out = base / f"pki-clock-{label}"
    ops.init(out, InitOptions(hosts=DEFAULT_HOSTS), now=now)
    return Pki(label=f"clock-{label}", dir=out, shape="intermediate", key_type="ecdsa-p256")


def test_status_warns_about_an_expiring_certificate_that_still_connects(
        realstack_base: Path, cluster: Cluster, record: Callable[..., None]) -> None:
    pki = clocked_pki(realstack_base, "expiring", 350 - 1 / 24)  # leaves expire in 15 days and an hour
    r = status(pki.dir)
    record(case="status, leaves expire in 15 days", client="pgkongtls status", expected="exit 0, warning",
           observed=f"exit {r.returncode}", column="lifecycle")
    assert r.returncode == 0, r.stderr
    assert "warning: server expires in 15 days" in r.stderr and f"pgkongtls renew --dir {pki.dir} server" in r.stderr
    cluster.apply(pki, auth="cert")
    assert connect(pki, cluster, "client") == "/CN=kong"


def test_status_exits_3_for_an_expired_certificate_until_renew(
        realstack_base: Path, cluster: Cluster, kong: KongEquivalent, record: Callable[..., None]) -> None:
    pki = clocked_pki(realstack_base, "expired", 400)
    r = status(pki.dir, "--json")
    assert r.returncode == 3, r.stderr
    assert '"expired": [\n    "server",\n    "client"\n  ]' in r.stdout
    before = cluster.apply(pki, auth="cert")
    msg = refusal(pki, cluster, pki.client_cert, pki.client_key)
    assert "SSL error: certificate verify failed" in msg, msg  # libpq: the server's certificate expired
    with pytest.raises(Refused) as e:  # no server check: PostgreSQL itself refuses the expired client certificate
        libpq_connect(port=cluster.port, host=DB_IP, sslmode="require", sslcert=pki.client_cert,
                      sslkey=pki.client_key)
    assert "alert certificate expired" in str(e.value), e.value
    cli("renew", "--dir", str(pki.dir), "--expiring-within", "30d")
    r = status(pki.dir)
    record(case="status, expired leaves, then renew --expiring-within", client="pgkongtls status",
           expected="exit 3, then 0", observed=f"then exit {r.returncode}", column="lifecycle")
    assert r.returncode == 0, r.stderr
    after = cluster.apply(pki, auth="cert")
    assert after.postgres_conf == before.postgres_conf and after.hba == before.hba
    assert connect(pki, cluster, "client") == "/CN=kong"
    res = kong.connect(kong.deploy(pki).conf, port=cluster.port)
    assert res.ok, res
