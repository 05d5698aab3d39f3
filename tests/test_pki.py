"""Library tests for whole-PKI planning: files, manifest, and chains that strict validators accept."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509 import verification as v

from pgkongtls import certs, pki
from pgkongtls.certs import utcnow
from pgkongtls.errors import InputError
from pgkongtls.manifest import MANIFEST_NAME, Change, loads

from .conftest import TESTS

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.timezone.utc)
HOSTS = ("db.example", "127.0.0.1")


def write(fs: Change, d: Path) -> Path:
    """Test-only dump of a planned Change (the product writes through fsio)."""
    for name, data in fs.all_files().items():
        (d / name).write_bytes(data)
    return d


def pems(data: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(data)


@pytest.fixture(scope="module", params=["intermediate", "root"])
def ca_pki(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Change, Path]:
    now = utcnow()  # the clock of this fixture's PKI, read when it is minted
    fs = pki.plan_init(pki.InitOptions(chain=request.param, hosts=HOSTS), now=now)
    return fs, write(fs, tmp_path_factory.mktemp(request.param))


@pytest.fixture(scope="module")
def ss_pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Change, Path]:
    now = utcnow()  # the clock of this fixture's PKI, read when it is minted
    fs = pki.plan_self_signed(pki.SelfSignedOptions(hosts=HOSTS), now=now)
    return fs, write(fs, tmp_path_factory.mktemp("ss"))


def test_intermediate_files_chain_order_and_bundle() -> None:
    fs = pki.plan_init(pki.InitOptions(chain="intermediate"), now=NOW)
    assert set(fs.all_files()) == {"root.crt", "root.key", "intermediate.crt", "intermediate.key", "server.crt",
                                   "server.key", "client.crt", "client.key", "chain.crt", MANIFEST_NAME}
    assert fs.private == {"root.key", "intermediate.key", "server.key", "client.key"}
    inter, root = pems(fs.files["intermediate.crt"])[0], pems(fs.files["root.crt"])[0]
    assert pems(fs.files["chain.crt"]) == [inter, root]
    for leaf in ("server", "client"):
        certs_in_file = pems(fs.files[f"{leaf}.crt"])
        assert len(certs_in_file) == 2 and certs_in_file[1] == inter
        assert certs_in_file[0].issuer == inter.subject


def test_no_bundle_keeps_leaf_files_single() -> None:
    fs = pki.plan_init(pki.InitOptions(bundle=False), now=NOW)
    assert len(pems(fs.files["server.crt"])) == 1 and len(pems(fs.files["client.crt"])) == 1
    assert fs.manifest.bundle is False


def test_root_chain_files() -> None:
    fs = pki.plan_init(pki.InitOptions(chain="root"), now=NOW)
    assert "intermediate.crt" not in fs.files
    root = pems(fs.files["root.crt"])[0]
    assert pems(fs.files["chain.crt"]) == [root]
    assert pems(fs.files["server.crt"])[0].issuer == root.subject
    assert fs.manifest.intermediates == 0 and fs.manifest.issuing_ca == "root"


def test_manifest_records_each_certificate() -> None:
    fs = pki.plan_init(pki.InitOptions(hosts=("db.internal", "10.0.0.5"), db_user="kong_rw", key_type="ecdsa-p384"),
                       now=NOW)
    m = loads(fs.all_files()[MANIFEST_NAME].decode())
    assert (m.mode, m.chain, m.key_type, m.db_user, m.hosts) == (
        "ca", "intermediate", "ecdsa-p384", "kong_rw", ("db.internal", "10.0.0.5"))
    server = pems(fs.files["server.crt"])[0]
    e = m.certificates["server"]
    assert (e.file, e.key_file, e.role, e.issuer, e.cn, e.sans) == (
        "server.crt", "server.key", "server", "intermediate", "db.internal", ("db.internal", "10.0.0.5"))
    assert e.serial == format(server.serial_number, "x")
    assert e.sha256 == server.fingerprint(__import__("cryptography").hazmat.primitives.hashes.SHA256()).hex(":").upper()
    assert e.not_after == "2027-06-01T12:00:00Z"
    assert m.certificates["client"].cn == "kong_rw"


def test_default_ca_names_differ_between_pkis() -> None:
    a, b = (pki.plan_init(pki.InitOptions(), now=NOW).manifest for _ in range(2))
    assert a.certificates["root"].cn != b.certificates["root"].cn
    assert a.certificates["root"].cn.startswith("pgkongtls root CA ")
    assert a.certificates["intermediate"].cn.startswith("pgkongtls intermediate CA ")


@pytest.mark.parametrize(("user", "message"), [
    ("", "invalid --db-user '': must be 1 to 63 bytes"),
    ("k" * 64, f"invalid --db-user '{'k' * 64}': must be 1 to 63 bytes"),
    ("kong\nhost all all all trust", "invalid --db-user 'kong\\nhost all all all trust': spaces, quotes"),
    ('ko"ng', "invalid --db-user 'ko\"ng': spaces, quotes"),
])
def test_bad_db_user(user: str, message: str) -> None:
    with pytest.raises(InputError) as err:
        pki.plan_init(pki.InitOptions(db_user=user), now=NOW)
    assert str(err.value).startswith(message)


def test_self_check_rejects_a_broken_chain() -> None:
    """The self-check can fail: a server certificate checked against another PKI's root."""
    a = pki.plan_init(pki.InitOptions(chain="root"), now=NOW)
    b = pki.plan_init(pki.InitOptions(chain="root"), now=NOW)
    with pytest.raises(pki.SelfCheckError, match="self-check failed, this is a pgkongtls bug"):
        pki.self_check(anchors=pems(b.files["root.crt"]), intermediates=[], server=pems(a.files["server.crt"])[0],
                       client=None, host="localhost", now=NOW)


def verify_with_cryptography(anchor: Path, leaf_file: Path, host: str | None) -> None:
    leaf, *rest = pems(leaf_file.read_bytes())
    builder = v.PolicyBuilder().store(v.Store(pems(anchor.read_bytes())))
    if host:
        builder.build_server_verifier(certs.subject_for(host)).verify(leaf, rest)
    else:
        ca, ee = certs.client_policy()
        builder.extension_policies(ca_policy=ca, ee_policy=ee).build_client_verifier().verify(leaf, rest)


@pytest.mark.parametrize("host", HOSTS)
def test_ca_chains_pass_cryptography_verification(ca_pki: tuple[Change, Path], host: str) -> None:
    _, d = ca_pki
    verify_with_cryptography(d / "root.crt", d / "server.crt", host)
    verify_with_cryptography(d / "root.crt", d / "client.crt", None)


def test_server_chain_fails_cryptography_for_a_host_not_in_san(ca_pki: tuple[Change, Path]) -> None:
    _, d = ca_pki
    with pytest.raises(v.VerificationError):
        verify_with_cryptography(d / "root.crt", d / "server.crt", "other.example")


def test_self_signed_pair_passes_cryptography_verification(ss_pki: tuple[Change, Path]) -> None:
    _, d = ss_pki
    verify_with_cryptography(d / "server.crt", d / "server.crt", "db.example")
    verify_with_cryptography(d / "client.crt", d / "client.crt", None)
    with pytest.raises(v.VerificationError):
        verify_with_cryptography(d / "server.crt", d / "client.crt", None)


def openssl_verify(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", "verify", "-x509_strict", *args], capture_output=True, text=True)


def split_leaf(d: Path, name: str) -> tuple[Path, Path | None]:
    """openssl verify reads only the first certificate of a file: pass the bundle as -untrusted."""
    leaf, *rest = d.joinpath(f"{name}.crt").read_text().split("-----END CERTIFICATE-----\n")[:-1]
    (d / f"{name}.leaf.pem").write_text(leaf + "-----END CERTIFICATE-----\n")
    return d / f"{name}.leaf.pem", (d / "intermediate.crt") if (d / "intermediate.crt").exists() else None


@pytest.mark.parametrize(("name", "purpose"), [("server", "sslserver"), ("client", "sslclient")])
def test_ca_chains_pass_openssl_x509_strict(ca_pki: tuple[Change, Path], name: str, purpose: str) -> None:
    _, d = ca_pki
    leaf, untrusted = split_leaf(d, name)
    extra = ["-untrusted", str(untrusted)] if untrusted else []
    out = openssl_verify("-purpose", purpose, "-CAfile", str(d / "root.crt"), *extra, str(leaf))
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip().endswith(": OK")


def test_openssl_refuses_wrong_purpose(ca_pki: tuple[Change, Path]) -> None:
    """serverAuth only: the server certificate must not pass as a client."""
    _, d = ca_pki
    leaf, untrusted = split_leaf(d, "server")
    extra = ["-untrusted", str(untrusted)] if untrusted else []
    out = openssl_verify("-purpose", "sslclient", "-CAfile", str(d / "root.crt"), *extra, str(leaf))
    assert out.returncode != 0
    assert "error 26 at 0 depth lookup: unsuitable certificate purpose" in out.stdout + out.stderr


def test_self_signed_pair_passes_openssl_x509_strict(ss_pki: tuple[Change, Path]) -> None:
    _, d = ss_pki
    for name, purpose in (("server", "sslserver"), ("client", "sslclient")):
        out = openssl_verify("-purpose", purpose, "-CAfile", str(d / f"{name}.crt"), str(d / f"{name}.crt"))
        assert out.returncode == 0, out.stdout + out.stderr


def handshake(python: str, d: Path, server_trust: str, client_trust: str, host: str) -> subprocess.CompletedProcess[str]:
    args = [str(d / "server.crt"), str(d / "server.key"), str(d / server_trust),
            str(d / "client.crt"), str(d / "client.key"), str(d / client_trust), host]
    return subprocess.run([python, str(TESTS / "tls_pair.py"), *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("host", HOSTS)
def test_ca_chains_mutual_tls_handshake(ca_pki: tuple[Change, Path], py313: str, host: str) -> None:
    _, d = ca_pki
    for python in (sys.executable, py313):
        out = handshake(python, d, "chain.crt", "root.crt", host)
        assert out.returncode == 0 and out.stdout.startswith("OK TLSv1."), (python, out.stdout, out.stderr)


def test_self_signed_pair_mutual_tls_handshake(ss_pki: tuple[Change, Path], py313: str) -> None:
    _, d = ss_pki
    for python in (sys.executable, py313):
        out = handshake(python, d, "client.crt", "server.crt", "db.example")
        assert out.returncode == 0 and out.stdout.startswith("OK TLSv1."), (python, out.stdout, out.stderr)


def test_handshake_fails_on_hostname_mismatch(ca_pki: tuple[Change, Path], py313: str) -> None:
    _, d = ca_pki
    out = handshake(py313, d, "chain.crt", "root.crt", "other.example")
    assert out.returncode == 1 and "Hostname mismatch" in out.stdout


def test_handshake_fails_with_another_pkis_root(
    tmp_path: Path, ca_pki: tuple[Change, Path], py313: str, now: dt.datetime,
) -> None:
    _, d = ca_pki
    other = pki.plan_init(pki.InitOptions(chain="root"), now=now)
    (d / "other-root.crt").write_bytes(other.files["root.crt"])
    out = handshake(py313, d, "chain.crt", "other-root.crt", "db.example")
    assert out.returncode == 1 and "certificate verify failed" in out.stdout
