"""Positive matrix: every rendered configuration connects and authenticates as `kong`, for real.

PKI shapes {init --chain intermediate, init --chain root, self-signed --test} x key
families {ecdsa-p256, rsa-2048}; on each:
  - libpq verify-full, by DNS name (hostaddr) and by IP SAN, under every `render hba --auth`
  - the Kong-equivalent client through both of Kong's paths (start-up: LuaSocket + LuaSec as
    root; runtime: nginx worker as `kong`, reading the deployed key per connection), Enterprise
    (client cert) under every --auth, and open-source (SCRAM-SHA-256-PLUS over TLS, no
    certificate) under `render hba --edition oss`
  - asyncpg on Python >= 3.13 with the strict default ssl context, by DNS name and by IP
  - openssl s_client -starttls postgres -verify_return_error -verify_depth <rendered depth>
The server-side files come only from `pgkongtls bundle postgres` + `pgkongtls install --reload`
(realstack.pg.Cluster.deploy), onto initdb's own pg_hba.conf.
"""

from __future__ import annotations

import grp
import os
import pwd
from collections.abc import Callable

import psycopg
import pytest

from .clients import libpq_connect, py313_connect, s_client
from .kong import KONG_USER, KongEquivalent, KongRun, parse_kong_conf
from .pg import DEFAULT_PASSWORD, Cluster
from .pkis import DB_IP, DB_NAME, KEY_FAMILIES, SHAPES, Pki, PkiFactory

pytestmark = pytest.mark.realstack

AUTHS = ("cert", "verify-full", "scram")
VIA = {"dns": {"host": DB_NAME, "hostaddr": DB_IP}, "ip": {"host": DB_IP}}


@pytest.fixture(scope="session", params=[(s, k) for s in SHAPES for k in KEY_FAMILIES],
                ids=[f"{s}-{k}" for s in SHAPES for k in KEY_FAMILIES])
def pki(request: pytest.FixtureRequest, pkis: PkiFactory) -> Pki:
    shape, key_type = request.param
    return pkis.get(shape, key_type)


@pytest.fixture
def cluster(deployed: Cluster) -> Cluster:
    """The positive matrix deploys with `bundle postgres` + `install --reload` onto initdb's pg_hba.conf."""
    return deployed


def expected_dn(pki: Pki) -> str:
    return f"/CN={pki.manifest.certificates['client'].cn}"


def password_for(auth: str) -> str | None:
    return DEFAULT_PASSWORD if auth == "scram" else None


def assert_both_paths(res: KongRun, *, dn: str | None, version: str | None = None, scram: bool = False) -> None:
    """Kong's verdict "works": start-up and runtime both authenticated, with the same session shape."""
    for path in (res.startup, res.runtime):
        assert path.ok, res
        assert (path.ssl, path.client_dn, path.user) == (True, dn, "kong"), path
        if version:
            assert path.tls_version == version, path
        # over TLS pgmoon takes SCRAM-SHA-256-PLUS whenever PostgreSQL offers it (it always does over TLS)
        assert path.mechanism == ("SCRAM-SHA-256-PLUS" if scram else None), path


@pytest.mark.parametrize("via", VIA)
@pytest.mark.parametrize("auth", AUTHS)
def test_libpq_verify_full_authenticates(pki: Pki, cluster: Cluster, auth: str, via: str,
                                         record: Callable[..., None]) -> None:
    cluster.apply(pki, auth=auth)
    row = libpq_connect(port=cluster.port, **VIA[via], sslrootcert=pki.trust_file, sslcert=pki.client_cert,
                        sslkey=pki.client_key, password=password_for(auth))
    record(case=f"hba {auth}, host by {via.upper()}", client="libpq verify-full", expected="auth ok",
           observed=f"{row.version} {row.client_dn}", column=pki.label)
    assert (row.ssl, row.client_dn, row.user) == (True, expected_dn(pki), "kong")


@pytest.mark.parametrize("auth", AUTHS)
def test_kong_enterprise_authenticates(pki: Pki, cluster: Cluster, kong: KongEquivalent, auth: str,
                                       record: Callable[..., None]) -> None:
    cluster.apply(pki, auth=auth)
    res = kong.connect(kong.deploy(pki).conf, port=cluster.port, password=password_for(auth))
    record(case=f"hba {auth}", client="Kong EE (cert), both paths", expected="auth ok", observed=str(res),
           column=pki.label)
    assert_both_paths(res, dn=expected_dn(pki), scram=auth == "scram")


def test_kong_oss_scram_over_tls(pki: Pki, cluster: Cluster, kong: KongEquivalent,
                                 record: Callable[..., None]) -> None:
    cluster.apply(pki, auth="scram", edition="oss")
    res = kong.connect(kong.deploy(pki, "--edition", "oss").conf, port=cluster.port, password=DEFAULT_PASSWORD,
                       edition="oss")
    record(case="hba scram (--edition oss)", client="Kong OSS (SCRAM-PLUS), both paths", expected="auth ok",
           observed=str(res), column=pki.label)
    assert_both_paths(res, dn=None, scram=True)


@pytest.mark.parametrize("via", VIA)
def test_python313_strict_asyncpg(pki: Pki, cluster: Cluster, via: str, record: Callable[..., None]) -> None:
    cluster.apply(pki, auth="cert")
    res = py313_connect(host=VIA[via]["host"], port=cluster.port, cafile=pki.trust_file, cert=pki.client_cert,
                        key=pki.client_key, resolve=f"{DB_NAME}:{DB_IP}" if via == "dns" else None)
    record(case=f"hba cert, host by {via.upper()}", client="asyncpg py3.13 strict", expected="auth ok",
           observed=res.error or f"{res.version} {res.client_dn}", column=pki.label)
    assert res.strict, "the default context must be the strict one (VERIFY_X509_STRICT)"
    assert res.ok, res.error
    assert (res.ssl, res.client_dn, res.user) == (True, expected_dn(pki), "kong")


def test_openssl_s_client_at_rendered_depth(pki: Pki, cluster: Cluster, record: Callable[..., None]) -> None:
    cluster.apply(pki, auth="cert")
    depth = int(parse_kong_conf(pki.render("kong"))["lua_ssl_verify_depth"])
    res = s_client(port=cluster.port, cafile=pki.trust_file, verify_depth=depth, cert=pki.client_cert,
                   key=pki.client_key, verify_hostname=DB_NAME)
    record(case=f"hba cert, -verify_depth {depth}", client="openssl s_client", expected="auth ok",
           observed=f"verify {res.verify_code} auth {res.authenticated} {res.verify_error or res.server_error or ''}",
           column=pki.label)
    assert res.verify_code == 0, res.output
    assert res.authenticated, res.output
    assert res.returncode == 0


def test_rendered_libpq_conninfo_connects(pki: Pki, cluster: Cluster, record: Callable[..., None]) -> None:
    """`render libpq` as written, plus only what a test host needs: where the name points, and the port."""
    cluster.apply(pki, auth="cert")
    conninfo = "".join(ln for ln in pki.render("libpq").splitlines() if not ln.startswith("#"))
    with psycopg.connect(f"{conninfo} hostaddr={DB_IP} port={cluster.port} dbname=postgres") as conn:
        ssl, dn = conn.execute("SELECT ssl, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()  # type: ignore[misc]
    record(case="rendered `render libpq` conninfo", client="libpq", expected="auth ok", observed=f"{ssl} {dn}",
           column=pki.label)
    assert f"host={DB_NAME} " in conninfo and "sslmode=verify-full" in conninfo
    assert (ssl, dn) == (True, expected_dn(pki))


@pytest.mark.parametrize("edition", ["enterprise", "oss"])
def test_min_tls_13_and_no_system_bundle(pkis: PkiFactory, cluster: Cluster, kong: KongEquivalent, edition: str,
                                         record: Callable[..., None]) -> None:
    """`render postgres --min-tls TLSv1.3` and `render kong --no-system` still connect every client."""
    pki = pkis.get("intermediate", "ecdsa-p256")
    cluster.apply(pki, auth="cert" if edition == "enterprise" else "scram", edition=edition, min_tls="TLSv1.3")
    assert "ssl_min_protocol_version = 'TLSv1.3'" in cluster.applied.postgres_conf  # type: ignore[union-attr]
    d = kong.deploy(pki, "--edition", edition, "--no-system", "--min-tls", "TLSv1.3")
    assert f"lua_ssl_trusted_certificate = {d.dir / 'chain.crt'}\n" in d.conf
    if edition == "enterprise":
        assert "\npg_ssl_version = tlsv1_3\n" in d.conf  # what lets Kong Enterprise start against a TLS 1.3 floor
    res = kong.connect(d.conf, port=cluster.port, password=DEFAULT_PASSWORD, edition=edition)
    record(case="--min-tls TLSv1.3, kong --no-system", client=f"Kong {'EE' if edition == 'enterprise' else 'OSS'}",
           expected="auth ok", observed=str(res))
    assert_both_paths(res, dn=expected_dn(pki) if edition == "enterprise" else None, version="TLSv1.3",
                      scram=edition == "oss")
    row = libpq_connect(port=cluster.port, host=DB_NAME, hostaddr=DB_IP, sslrootcert=pki.trust_file,
                        sslcert=pki.client_cert, sslkey=pki.client_key, password=DEFAULT_PASSWORD)
    assert row.version == "TLSv1.3"


def test_kong_workers_run_as_the_kong_user_and_read_a_key_only_kong_can_read(
        pkis: PkiFactory, cluster: Cluster, kong: KongEquivalent, record: Callable[..., None]) -> None:
    """The deployed key is what `render kong` prescribes (kong:kong 0600): readable by the workers, no one else."""
    pki = pkis.get("intermediate", "ecdsa-p256")
    cluster.apply(pki)
    d = kong.deploy(pki)
    st = d.client_key.stat()
    assert (d.key_owner, d.key_mode) == (f"{KONG_USER}:{KONG_USER}", 0o600)
    assert (pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name, st.st_mode & 0o777) == (
        KONG_USER, KONG_USER, 0o600)
    res = kong.connect(d.conf, port=cluster.port)
    assert kong.worker_user() == KONG_USER
    record(case="workers as kong, key kong:kong 0600", client="Kong EE, both paths", expected="auth ok",
           observed=str(res))
    assert_both_paths(res, dn=expected_dn(pki))


def test_kong_key_root_kong_0640_works_too(pkis: PkiFactory, cluster: Cluster, kong: KongEquivalent) -> None:
    """The rendered alternative, `chown root:kong ... && chmod 0640`, also serves every runtime connection."""
    pki = pkis.get("intermediate", "ecdsa-p256")
    cluster.apply(pki)
    d = kong.deploy(pki)
    assert f"#   (or: chown root:{KONG_USER} {d.client_key} && chmod 0640 {d.client_key})\n" in d.conf
    os.chown(d.client_key, 0, grp.getgrnam(KONG_USER).gr_gid)
    os.chmod(d.client_key, 0o640)
    assert_both_paths(kong.connect(d.conf, port=cluster.port), dn=expected_dn(pki))
