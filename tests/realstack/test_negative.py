"""Negative matrix: each broken set-up is refused, for the reason its name states.

Every refusal asserts the specific text (client side and, where the client only
sees an alert, PostgreSQL's log), and most tests carry a positive twin that
differs only in the one thing under test, so the refusal cannot come from
anything else. Messages were measured on PostgreSQL 15.18, OpenSSL 3.0, libpq 18,
nginx 1.22 + lua-nginx-module 0.10.23 and Python 3.13.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509

from pgkongtls import certs

from .clients import Refused, libpq_connect, py313_connect, s_client
from .kong import KongEquivalent, KongRun, replace_setting
from .pg import DEFAULT_PASSWORD, Cluster, ClusterError
from .pkis import DB_IP, DB_NAME, ClientCert, Pki, PkiFactory, mint_client

pytestmark = pytest.mark.realstack

OTHER_NAME = "other.pgkongtls.test"


def libpq_refusal(**kwargs: object) -> str:
    """The error text of a connection that must fail (fails the test if it connects)."""
    with pytest.raises(Refused) as exc:
        libpq_connect(**kwargs)  # type: ignore[arg-type]
    return str(exc.value)


def assert_kong_runtime_verify_refused(res: KongRun, reason: str) -> None:
    """The workers' connection refused by the certificate check: no AuthenticationOk, and nginx logged
    OpenSSL's `reason`. lua-nginx-module 0.10.23 sometimes reports a failed check as a successful
    handshake on a socket it already closed (FACTS.md); the verify error is logged either way."""
    rt = res.runtime
    assert not rt.ok, res
    assert rt.verify_error == reason, res
    assert (rt.stage == "tls" and reason in rt.message) or (rt.stage == "startup" and "closed" in rt.message), res


def assert_kong_verify_refused(res: KongRun, reason: str) -> None:
    """Kong's verdict for a server it must not trust: refused on both paths (it does not even start)."""
    assert_kong_runtime_verify_refused(res, reason)
    assert (res.startup.ok, res.startup.stage, res.startup.message) == (False, "tls", "certificate verify failed"), res


# ---- the server's certificate is not from the PKI the client trusts -----------------------

def test_server_cert_from_another_pki_refused_by_libpq(cluster: Cluster, main: Pki, other: Pki,
                                                       record: Callable[..., None]) -> None:
    cluster.apply(other)
    client = {"port": cluster.port, "host": DB_NAME, "hostaddr": DB_IP, "sslcert": other.client_cert,
              "sslkey": other.client_key}
    err = libpq_refusal(**client, sslrootcert=main.trust_file)
    record(case="server cert from another PKI", client="libpq verify-full", expected="certificate verify failed",
           observed=err)
    assert err.endswith("SSL error: certificate verify failed")
    assert libpq_connect(**client, sslrootcert=other.trust_file).client_dn == "/CN=kong"  # twin: right trust


def test_server_cert_from_another_pki_refused_by_kong(cluster: Cluster, kong: KongEquivalent, main: Pki, other: Pki,
                                                      record: Callable[..., None]) -> None:
    cluster.apply(other)
    own = kong.deploy(other).conf  # other's client cert, so only the server check can fail
    trusting_main = replace_setting(own, "lua_ssl_trusted_certificate", f"system,{main.trust_file}")
    res = kong.connect(trusting_main, port=cluster.port)
    record(case="server cert from another PKI", client="Kong EE", expected="20: unable to get local issuer cert",
           observed=str(res))
    assert_kong_verify_refused(res, "20: unable to get local issuer certificate")
    assert kong.connect(own, port=cluster.port).ok  # twin: the PKI's own kong.conf


def test_server_cert_from_another_pki_refused_by_python(cluster: Cluster, main: Pki, other: Pki,
                                                        record: Callable[..., None]) -> None:
    cluster.apply(other)
    res = py313_connect(host=DB_IP, port=cluster.port, cafile=main.trust_file, cert=other.client_cert,
                        key=other.client_key)
    record(case="server cert from another PKI", client="asyncpg py3.13 strict", expected="unable to get local issuer",
           observed=res.error or "connected")
    assert res.strict and not res.ok
    assert "certificate verify failed: unable to get local issuer certificate" in (res.error or "")


# ---- the client's certificate is not acceptable to PostgreSQL ---------------------------

def test_client_cert_from_another_pki_refused(cluster: Cluster, main: Pki, other: Pki,
                                              record: Callable[..., None]) -> None:
    cluster.apply(main)
    mark = cluster.log_mark()
    err = libpq_refusal(port=cluster.port, host=DB_NAME, hostaddr=DB_IP, sslrootcert=main.trust_file,
                        sslcert=other.client_cert, sslkey=other.client_key)
    log = cluster.wait_log(mark, "could not accept SSL connection")
    record(case="client cert from another PKI", client="libpq -> PostgreSQL", expected="alert unknown ca",
           observed=err)
    assert err.endswith("SSL error: tlsv1 alert unknown ca")
    assert "could not accept SSL connection: certificate verify failed" in log


def test_client_cert_from_another_pki_refused_for_kong(cluster: Cluster, kong: KongEquivalent, main: Pki, other: Pki,
                                                       record: Callable[..., None]) -> None:
    cluster.apply(main)
    theirs = kong.deploy(other)
    conf = replace_setting(kong.deploy(main).conf, "pg_ssl_cert", str(theirs.client_cert))
    conf = replace_setting(conf, "pg_ssl_cert_key", str(theirs.client_key))
    mark = cluster.log_mark()
    res = kong.connect(conf, port=cluster.port)
    log = cluster.wait_log(mark, "could not accept SSL connection")
    record(case="client cert from another PKI", client="Kong EE -> PostgreSQL", expected="no AuthenticationOk",
           observed=str(res))
    for path in (res.startup, res.runtime):
        assert not path.ok and path.stage in ("tls", "startup"), res
    assert "could not accept SSL connection: certificate verify failed" in log


WRONG_CN = {  # auth -> (client-side text, server log line that names the CN check)
    "cert": ('FATAL:  certificate authentication failed for user "kong"',
             "provided user name (kong) and authenticated user name (intruder) do not match"),
    "verify-full": ('FATAL:  "trust" authentication failed for user "kong"',
                    'certificate validation (clientcert=verify-full) failed for user "kong": CN mismatch'),
    "scram": ('FATAL:  password authentication failed for user "kong"',
              'certificate validation (clientcert=verify-full) failed for user "kong": CN mismatch'),
}


@pytest.fixture(scope="module")
def minted(main: Pki, tmp_path_factory: pytest.TempPathFactory) -> dict[str, ClientCert]:
    """Client certificates from the main PKI's own intermediate, made with the library's clock."""
    d = tmp_path_factory.mktemp("minted")
    now = certs.utcnow()
    return {
        "intruder": mint_client(main, d, cn="intruder", now=now, days=1, name="intruder"),
        "kong-now": mint_client(main, d, cn="kong", now=now, days=1, name="kong-now"),
        "expired": mint_client(main, d, cn="kong", now=now - dt.timedelta(days=3), days=1, name="expired"),
        "not-yet-valid": mint_client(main, d, cn="kong", now=now + dt.timedelta(days=3), days=1, name="future"),
    }


def _connect_with(cluster: Cluster, main: Pki, cert: ClientCert) -> dict[str, object]:
    return {"port": cluster.port, "host": DB_NAME, "hostaddr": DB_IP, "sslrootcert": main.trust_file,
            "sslcert": cert.cert, "sslkey": cert.key, "password": DEFAULT_PASSWORD}


@pytest.mark.parametrize("auth", WRONG_CN)
def test_wrong_cn_without_map_refused(cluster: Cluster, main: Pki, minted: dict[str, ClientCert], auth: str,
                                      record: Callable[..., None]) -> None:
    assert "map=" not in cluster.apply(main, auth=auth).hba
    mark = cluster.log_mark()
    err = libpq_refusal(**_connect_with(cluster, main, minted["intruder"]))
    text, log_line = WRONG_CN[auth]
    log = cluster.wait_log(mark, "FATAL")
    record(case=f"wrong CN, no map (hba {auth})", client="libpq", expected=text.removeprefix("FATAL:  "), observed=err)
    assert err.endswith(text)
    assert log_line in log


@pytest.mark.parametrize("auth", WRONG_CN)
def test_minted_client_cert_with_the_right_cn_connects(cluster: Cluster, main: Pki, minted: dict[str, ClientCert],
                                                       auth: str) -> None:
    """Twin of the wrong-CN, expired and not-yet-valid cases: same CA, same minting, valid, CN kong."""
    cluster.apply(main, auth=auth)
    assert libpq_connect(**_connect_with(cluster, main, minted["kong-now"])).client_dn == "/CN=kong"  # type: ignore[arg-type]


@pytest.mark.parametrize(("which", "alert"), [("expired", "ssl/tls alert certificate expired"),
                                              ("not-yet-valid", "ssl/tls alert bad certificate")])
def test_client_cert_outside_its_validity_refused(cluster: Cluster, main: Pki, minted: dict[str, ClientCert],
                                                  which: str, alert: str, record: Callable[..., None]) -> None:
    cert = x509.load_pem_x509_certificate(minted[which].cert.read_bytes())
    now = certs.utcnow()
    assert (cert.not_valid_after_utc < now) if which == "expired" else (cert.not_valid_before_utc > now)
    cluster.apply(main)
    mark = cluster.log_mark()
    err = libpq_refusal(**_connect_with(cluster, main, minted[which]))
    log = cluster.wait_log(mark, "could not accept SSL connection")
    record(case=f"{which} client cert", client="libpq -> PostgreSQL", expected=alert.removeprefix("ssl/tls "),
           observed=err)
    assert err.endswith(f"SSL error: {alert}")
    assert "could not accept SSL connection: certificate verify failed" in log


def test_no_client_cert_under_cert_refused(cluster: Cluster, main: Pki, record: Callable[..., None]) -> None:
    cluster.apply(main, auth="cert")
    err = libpq_refusal(port=cluster.port, host=DB_NAME, hostaddr=DB_IP, sslrootcert=main.trust_file,
                        password=DEFAULT_PASSWORD)
    record(case="no client cert, hba cert", client="libpq", expected="requires a valid client certificate",
           observed=err)
    assert err.endswith("FATAL:  connection requires a valid client certificate")


def test_no_client_cert_under_cert_refused_for_kong_oss(cluster: Cluster, kong: KongEquivalent, main: Pki,
                                                        record: Callable[..., None]) -> None:
    cluster.apply(main, auth="cert")
    res = kong.connect(kong.deploy(main, "--edition", "oss").conf, port=cluster.port, password=DEFAULT_PASSWORD,
                       edition="oss")
    record(case="no client cert, hba cert", client="Kong OSS", expected="requires a valid client certificate",
           observed=str(res))
    for path in (res.startup, res.runtime):
        assert (path.ok, path.stage, path.message, path.server_error) == (
            False, "auth", "FATAL: connection requires a valid client certificate", "28000"), res


# ---- host names: libpq and Python check them, Kong does not -----------------------------

@pytest.fixture(scope="module")
def dns_only(pkis: PkiFactory) -> Pki:
    """Server certificate for db.pgkongtls.test only: 127.0.0.1 is NOT in its SANs."""
    return pkis.get("intermediate", "ecdsa-p256", hosts=(DB_NAME,))


@pytest.mark.parametrize(("host", "hostaddr", "shown"), [
    (DB_IP, None, 'does not match host name "127.0.0.1"'),
    (OTHER_NAME, DB_IP, f'server certificate for "{DB_NAME}" does not match host name "{OTHER_NAME}"'),
], ids=["ip", "dns"])
def test_host_not_in_sans_refused_by_libpq(cluster: Cluster, dns_only: Pki, host: str, hostaddr: str | None,
                                           shown: str, record: Callable[..., None]) -> None:
    cluster.apply(dns_only)
    client = {"port": cluster.port, "sslrootcert": dns_only.trust_file, "sslcert": dns_only.client_cert,
              "sslkey": dns_only.client_key}
    err = libpq_refusal(**client, host=host, hostaddr=hostaddr)
    record(case=f"host {host} not in SANs", client="libpq verify-full", expected="does not match host name",
           observed=err)
    assert err.endswith(shown)
    assert libpq_connect(**client, host=DB_NAME, hostaddr=DB_IP).ssl  # twin: the name in the SAN


def test_host_not_in_sans_refused_by_python(cluster: Cluster, dns_only: Pki, record: Callable[..., None]) -> None:
    cluster.apply(dns_only)
    res = py313_connect(host=DB_IP, port=cluster.port, cafile=dns_only.trust_file, cert=dns_only.client_cert,
                        key=dns_only.client_key)
    record(case="host 127.0.0.1 not in SANs", client="asyncpg py3.13 strict", expected="IP address mismatch",
           observed=res.error or "connected")
    assert not res.ok
    assert "certificate verify failed: IP address mismatch, certificate is not valid for '127.0.0.1'" in (res.error or "")


def test_host_not_in_sans_accepted_by_kong(cluster: Cluster, kong: KongEquivalent, dns_only: Pki,
                                           record: Callable[..., None]) -> None:
    """Kong's documented behaviour (no SNI, no host name check): if this changes, we want to know."""
    cluster.apply(dns_only)
    res = kong.connect(kong.deploy(dns_only).conf, port=cluster.port)
    record(case="host 127.0.0.1 not in SANs", client="Kong EE, both paths", expected="ACCEPTED (Kong checks no name)",
           observed=str(res))
    assert res.startup.ok and res.runtime.ok, res
    assert res.startup.client_dn == res.runtime.client_dn == "/CN=kong"


# ---- verify depth ------------------------------------------------------------------------------

def test_verify_depth_0_on_intermediate_chain_refused_by_kong(cluster: Cluster, kong: KongEquivalent, main: Pki,
                                                             record: Callable[..., None]) -> None:
    """As in Kong: LuaSec at start-up ignores lua_ssl_verify_depth, so Kong starts, then every worker
    connection fails."""
    cluster.apply(main)
    rendered = kong.deploy(main).conf
    assert "lua_ssl_verify_depth = 1\n" in rendered
    res = kong.connect(replace_setting(rendered, "lua_ssl_verify_depth", "0"), port=cluster.port)
    record(case="lua_ssl_verify_depth 0, intermediate", client="Kong EE",
           expected="starts; runtime 2: unable to get issuer cert", observed=str(res))
    assert res.starts and res.startup.client_dn == "/CN=kong", res
    assert_kong_runtime_verify_refused(res, "2: unable to get issuer certificate")


def test_verify_depth_0_is_enough_without_intermediate(cluster: Cluster, kong: KongEquivalent, pkis: PkiFactory) -> None:
    """Twin: depth 0 works when the leaf is signed by the root, so the refusal above is the depth."""
    root_chain = pkis.get("root", "ecdsa-p256")
    cluster.apply(root_chain)
    res = kong.connect(replace_setting(kong.deploy(root_chain).conf, "lua_ssl_verify_depth", "0"), port=cluster.port)
    assert res.ok, res


def test_verify_depth_0_on_intermediate_chain_refused_by_s_client(cluster: Cluster, main: Pki,
                                                                 record: Callable[..., None]) -> None:
    cluster.apply(main)
    res = s_client(port=cluster.port, cafile=main.trust_file, verify_depth=0, cert=main.client_cert,
                   key=main.client_key)
    record(case="-verify_depth 0, intermediate", client="openssl s_client", expected="22: certificate chain too long",
           observed=res.verify_error or f"verify {res.verify_code}")
    assert (res.verify_code, res.verify_error) == (22, "22:certificate chain too long")
    assert not res.authenticated and res.returncode != 0


# ---- server side ------------------------------------------------------------------------------

def test_server_key_mode_0644_refuses_to_start(new_cluster: Callable[[], Cluster], main: Pki,
                                               record: Callable[..., None]) -> None:
    own = new_cluster()
    applied = own.apply(main)
    key = Path(applied.pg_dir) / "server.key"
    own.stop()
    os.chmod(key, 0o644)
    with pytest.raises(ClusterError) as exc:
        own.start()
    record(case="server.key mode 0644", client="PostgreSQL start", expected="FATAL: ... group or world access",
           observed=str(exc.value).split("--- server.log:")[-1].strip())
    assert f'FATAL:  private key file "{key}" has group or world access' in str(exc.value)
    assert ("DETAIL:  File must have permissions u=rw (0600) or less if owned by the database user, "
            "or permissions u=rw,g=r (0640) or less if owned by root.") in str(exc.value)
    os.chmod(key, 0o600)  # twin: the mode the rendered comment prescribes
    own.start()
    assert libpq_connect(port=own.port, host=DB_IP, sslrootcert=main.trust_file, sslcert=main.client_cert,
                         sslkey=main.client_key).ssl


@pytest.mark.parametrize("user", ["kong", "postgres"])
def test_plaintext_refused(cluster: Cluster, main: Pki, user: str, record: Callable[..., None]) -> None:
    cluster.apply(main)
    err = libpq_refusal(port=cluster.port, host=DB_IP, user=user, sslmode="disable", password=DEFAULT_PASSWORD)
    record(case=f"plaintext as {user}", client="libpq sslmode=disable", expected="pg_hba.conf rejects, no encryption",
           observed=err)
    assert err.endswith(f'FATAL:  pg_hba.conf rejects connection for host "127.0.0.1", user "{user}", '
                        'database "postgres", no encryption')


def test_plaintext_refused_for_kong(cluster: Cluster, kong: KongEquivalent, main: Pki,
                                    record: Callable[..., None]) -> None:
    cluster.apply(main)
    conf = replace_setting(replace_setting(kong.deploy(main).conf, "pg_ssl", "off"), "pg_ssl_required", "off")
    res = kong.connect(conf, port=cluster.port)
    record(case="plaintext (pg_ssl off)", client="Kong EE, both paths", expected="pg_hba.conf rejects, no encryption",
           observed=str(res))
    for path in (res.startup, res.runtime):
        assert (path.ok, path.message) == (False, 'FATAL: pg_hba.conf rejects connection for host "127.0.0.1", '
                                                  'user "kong", database "postgres", no encryption'), res


def test_wrong_password_refused_for_kong_oss(cluster: Cluster, kong: KongEquivalent, main: Pki,
                                             record: Callable[..., None]) -> None:
    """Twin of the OSS positive case: the proof is really checked by the server. pgmoon reads the server's
    ErrorResponse as if it were SASLFinal, so Kong says only `authentication exchange unsuccessful`;
    the server's reason is in its log."""
    cluster.apply(main, auth="scram", edition="oss")
    mark = cluster.log_mark()
    res = kong.connect(kong.deploy(main, "--edition", "oss").conf, port=cluster.port, password="not-the-password",
                       edition="oss")
    log = cluster.wait_log(mark, "password authentication failed")
    record(case="wrong password, hba scram (oss)", client="Kong OSS, both paths",
           expected="authentication exchange unsuccessful", observed=str(res))
    for path in (res.startup, res.runtime):
        assert (path.ok, path.stage, path.message, path.server_error) == (
            False, "auth", "authentication exchange unsuccessful", "28P01"), res
    assert 'FATAL:  password authentication failed for user "kong"' in log


def test_tls12_client_refused_under_min_tls_13(cluster: Cluster, main: Pki, record: Callable[..., None]) -> None:
    cluster.apply(main, min_tls="TLSv1.3")
    mark = cluster.log_mark()
    res = s_client(port=cluster.port, cafile=main.trust_file, verify_depth=1, cert=main.client_cert,
                   key=main.client_key, protocol="-tls1_2")
    log = cluster.wait_log(mark, "could not accept SSL connection")
    record(case="TLS 1.2 client, --min-tls TLSv1.3", client="openssl s_client -tls1_2",
           expected="alert protocol version", observed=res.output.strip().splitlines()[-1])
    assert "tlsv1 alert protocol version" in res.output and not res.authenticated
    assert "could not accept SSL connection: unsupported protocol" in log
    assert s_client(port=cluster.port, cafile=main.trust_file, verify_depth=1, cert=main.client_cert,
                    key=main.client_key, protocol="-tls1_3").ok  # twin: TLS 1.3 pinned


def test_kong_without_tls13_refused_under_min_tls_13(cluster: Cluster, kong: KongEquivalent, main: Pki,
                                                     record: Callable[..., None]) -> None:
    """lua-nginx-module's own default lua_ssl_protocols lacks TLSv1.3 (Kong sets both): it matters here."""
    cluster.apply(main, min_tls="TLSv1.3")
    rendered = kong.deploy(main, "--min-tls", "TLSv1.3").conf
    res = kong.connect(rendered + "lua_ssl_protocols = TLSv1.2\n", port=cluster.port)
    record(case="Kong lua_ssl_protocols TLSv1.2, --min-tls TLSv1.3", client="Kong EE",
           expected="starts; runtime alert protocol version", observed=str(res))
    assert res.starts, res  # pg_ssl_version = tlsv1_3 at start-up: lua_ssl_protocols is the workers' setting
    assert (res.runtime.ok, res.runtime.stage, res.runtime.message) == (False, "tls", "handshake failed"), res
    assert "SSL_do_handshake() failed (SSL: error:0A00042E:SSL routines::tlsv1 alert protocol version" in res.error_log
    assert kong.connect(rendered, port=cluster.port).ok  # twin: Kong's own default, TLSv1.2 TLSv1.3
