"""Library tests for `verify`: every check has a case that triggers it and one that passes.

The source document's own openssl output is built with the openssl CLI and its
exact findings are asserted; the strict-profile verdict is cross-checked with a
real Python >= 3.13 handshake when the machine has one.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pwd
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pgkongtls import confparse, consumers, inputs, ops
from pgkongtls import verify as v
from pgkongtls.certs import utcnow
from pgkongtls.errors import InputError
from pgkongtls.inputs_model import Account, KeyFile, VerifyInput
from pgkongtls.pki import InitOptions, SelfSignedOptions, cert_pem, key_pem

from .openssl_procedure import run_source_procedure

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def now() -> dt.datetime:
    """The one clock of this module: every PKI below is minted at it and checked at it (or at a shift from it),
    so the verdicts do not depend on how long after collection, or after the fixture, a test runs."""
    return utcnow()


def minted_at(d: Path) -> dt.datetime:
    """The clock of a directory minted by something that reads the live clock (the openssl CLI): its newest
    notBefore, so checking at it is checking at the moment the files were made."""
    return max(c.not_valid_before_utc for p in d.glob("*.crt") for c in x509.load_pem_x509_certificates(p.read_bytes()))


def ids(findings: list[v.Finding]) -> set[tuple[str, str]]:
    """(id, file name) pairs: what a finding is about, without the wording."""
    return {(f.id, Path(f.file).name) for f in findings}


def check_dir(d: Path | None, *, now: dt.datetime, **conf: Path) -> list[v.Finding]:
    """All findings at `now`: the clock the PKI was minted with (the `now` fixture) or, for the source
    document's openssl output, that output's own notBefore (`minted_at`)."""
    return v.run_checks(inputs.gather(d, **conf), now=now)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def pki_template(tmp_path_factory: pytest.TempPathFactory, now: dt.datetime) -> Path:
    d = tmp_path_factory.mktemp("tpl") / "pki"
    ops.init(d, InitOptions(hosts=("db.internal", "10.0.0.5")), now=now)
    return d


@pytest.fixture
def pki(pki_template: Path, tmp_path: Path) -> Path:
    d = tmp_path / "pki"
    shutil.copytree(pki_template, d)
    return d


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory, now: dt.datetime) -> Path:
    d = tmp_path_factory.mktemp("other") / "pki"
    ops.init(d, InitOptions(hosts=("db.internal",)), now=now)
    return d


@pytest.fixture(scope="module")
def source_doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("sourcedoc")
    out = {}
    for chain in ("intermediate", "root", "self-signed"):
        run_source_procedure(base / chain, chain)
        out[chain] = base / chain
    return out


# --------------------------------------------------------------------------- whole directories


def test_pgkongtls_dirs_have_no_findings(pki: Path, tmp_path: Path, now: dt.datetime) -> None:
    ops.init(tmp_path / "root", InitOptions(chain="root"), now=now)
    ops.self_signed(tmp_path / "ss", SelfSignedOptions(), now=now)
    for d in (pki, tmp_path / "root", tmp_path / "ss"):
        assert check_dir(d, now=now) == []


#: What verify must say about the document's own output (see FACTS.md): CAs without keyUsage fail the strict
#: profile (Python 3.13), the leaves are v1 with no SAN or EKU.
SOURCE_FINDINGS = {
    "intermediate": {
        ("ca-key-usage", "root.crt"), ("ca-key-usage", "intermediate.crt"),
        ("chain-strict", "server.crt"), ("chain-strict", "client.crt"),
        ("cert-v1", "server.crt"), ("cert-v1", "client.crt"),
        ("eku-missing", "server.crt"), ("eku-missing", "client.crt"), ("server-san", "server.crt"),
    },
    "root": {
        ("ca-key-usage", "root.crt"), ("chain-strict", "server.crt"), ("chain-strict", "client.crt"),
        ("cert-v1", "server.crt"), ("cert-v1", "client.crt"),
        ("eku-missing", "server.crt"), ("eku-missing", "client.crt"), ("server-san", "server.crt"),
    },
    # `openssl req -x509` takes v3_ca from openssl.cnf: CA:TRUE leaves; alone in their chain, strict passes.
    "self-signed": {
        ("leaf-is-ca", "server.crt"), ("leaf-is-ca", "client.crt"),
        ("eku-missing", "server.crt"), ("eku-missing", "client.crt"), ("server-san", "server.crt"),
    },
}


@pytest.mark.parametrize("chain", ["intermediate", "root", "self-signed"])
def test_source_document_output_exact_findings(source_doc: dict[str, Path], chain: str) -> None:
    findings = check_dir(source_doc[chain], now=minted_at(source_doc[chain]))
    assert ids(findings) == SOURCE_FINDINGS[chain]
    errors = {f.id for f in findings if f.severity == "error"}
    assert errors == ({"ca-key-usage", "chain-strict"} if chain != "self-signed" else set())


def test_source_document_strict_message_names_the_cause(source_doc: dict[str, Path]) -> None:
    d = source_doc["intermediate"]
    f = next(f for f in check_dir(d, now=minted_at(d)) if f.id == "chain-strict")
    assert "CA cert does not include key usage extension (depth 1, intermediate.yourdomain.com)" in f.message
    assert "Python 3.13" in f.message


@pytest.mark.parametrize("chain", ["intermediate", "self-signed"])
def test_strict_verdict_agrees_with_python313(source_doc: dict[str, Path], chain: str, py313: str) -> None:
    """chain-strict is reported exactly when a real Python >= 3.13 mTLS handshake fails."""
    d = source_doc[chain]
    trust_s, trust_c = ("chain.crt", "chain.crt") if chain == "intermediate" else ("client.crt", "server.crt")
    res = subprocess.run([py313, str(TESTS / "tls_pair.py"), "server.crt", "server.key", trust_s, "client.crt",
                          "client.key", trust_c, "dbhost.yourdomain.com"], cwd=d, capture_output=True, text=True)
    strict_found = any(f.id == "chain-strict" for f in check_dir(d, now=minted_at(d)))
    assert (res.returncode != 0) == strict_found, res.stdout
    if strict_found:
        assert "CA cert does not include key usage extension" in res.stdout


# --------------------------------------------------------------------------- keys


def test_key_mismatch(pki: Path, now: dt.datetime) -> None:
    shutil.copy(pki / "client.key", pki / "server.key")
    f = [f for f in check_dir(pki, now=now) if f.id == "key-mismatch"]
    assert [Path(x.file).name for x in f] == ["server.key"] and f[0].severity == "error"


def test_leaf_order(pki: Path, now: dt.datetime) -> None:
    certs = x509.load_pem_x509_certificates((pki / "server.crt").read_bytes())
    (pki / "server.crt").write_bytes(cert_pem(certs[1], certs[0]))
    f = next(f for f in check_dir(pki, now=now) if f.id == "leaf-order")
    assert "is number 2 in the file" in f.message and Path(f.file).name == "server.crt"


def test_dir_key_mode(pki: Path, now: dt.datetime) -> None:
    os.chmod(pki / "root.key", 0o640)
    f = [f for f in check_dir(pki, now=now) if f.id == "key-mode"]
    assert ids(f) == {("key-mode", "root.key")} and "mode 0640" in f[0].message


def _key(mode: int, uid: int, gid: int) -> KeyFile:
    return KeyFile(path="/x/server.key", key=None, encrypted=False, mode=mode, uid=uid, gid=gid, owner=f"u{uid}")


PG = Account(name="postgres", uid=101, gids=frozenset({102}))


@pytest.mark.parametrize(("mode", "uid", "gid", "want"), [
    (0o600, 101, 102, None), (0o400, 101, 0, None), (0o640, 101, 102, "key-mode"), (0o604, 101, 102, "key-mode"),
    (0o640, 0, 102, None), (0o600, 0, 0, "key-mode"), (0o640, 0, 0, "key-mode"), (0o644, 0, 102, "key-mode"),
    (0o660, 0, 102, "key-mode"), (0o600, 1000, 1000, "key-owner"),
])
def test_pg_key_rule(mode: int, uid: int, gid: int, want: str | None) -> None:
    got = v.check_pg_key_mode(_key(mode, uid, gid), PG, "postgres")
    assert [f.id for f in got] == ([want] if want else [])


def test_pg_key_rule_without_the_account_is_a_warning() -> None:
    got = v.check_pg_key_mode(_key(0o600, 1000, 1000), None, "pgsql")
    assert [(f.id, f.severity) for f in got] == [("key-owner", "warning")]
    assert v.check_pg_key_mode(_key(0o640, 0, 5), None, "pgsql") == []


def _encrypt(path: Path) -> None:
    key = serialization.load_pem_private_key(path.read_bytes(), None)
    path.write_bytes(key_pem(key, b"secret"))  # type: ignore[arg-type]


def test_encrypted_client_key_is_an_error_server_key_a_warning(pki: Path, now: dt.datetime) -> None:
    _encrypt(pki / "client.key")
    _encrypt(pki / "server.key")
    got = {(f.id, Path(f.file).name, f.severity) for f in check_dir(pki, now=now)}
    assert got == {("key-encrypted", "client.key", "error"), ("key-encrypted", "server.key", "warning")}


# --------------------------------------------------------------------------- chains


def test_chain_broken_for_a_client_from_another_pki(pki: Path, other_pki: Path, now: dt.datetime) -> None:
    for name in ("client.crt", "client.key"):
        shutil.copy(other_pki / name, pki / name)
    f = [f for f in check_dir(pki, now=now) if f.id == "chain-broken"]
    assert ids(f) == {("chain-broken", "client.crt")}
    assert "unable to get local issuer certificate" in f[0].message


def test_chain_order(pki: Path, now: dt.datetime) -> None:
    certs = x509.load_pem_x509_certificates((pki / "chain.crt").read_bytes())
    (pki / "chain.crt").write_bytes(cert_pem(*reversed(certs)))
    assert ids(check_dir(pki, now=now)) == {("chain-order", "chain.crt")}


@pytest.mark.parametrize(("shift", "want", "severity"), [
    (dt.timedelta(days=400), "cert-expired", "error"), (dt.timedelta(days=340), "cert-expiring", "warning"),
    (dt.timedelta(days=-1), "cert-not-yet-valid", "error"),
])
def test_validity(pki: Path, shift: dt.timedelta, want: str, severity: str, now: dt.datetime) -> None:
    got = {(f.id, f.severity) for f in check_dir(pki, now=now + shift) if f.id.startswith("cert-")}
    assert (want, severity) in got


def test_missing_file_with_manifest_is_an_error_without_a_warning(pki: Path, source_doc: dict[str, Path],
                                                                   tmp_path: Path, now: dt.datetime) -> None:
    (pki / "client.crt").unlink()
    assert {(f.id, Path(f.file).name, f.severity) for f in check_dir(pki, now=now)} >= {("file-missing", "client.crt", "error")}
    bare = tmp_path / "bare"
    shutil.copytree(source_doc["intermediate"], bare)
    (bare / "server.key").unlink()
    got = {(f.id, Path(f.file).name, f.severity) for f in check_dir(bare, now=minted_at(bare))}
    assert ("file-missing", "server.key", "warning") in got


def test_manifest_mismatch(pki: Path, other_pki: Path, now: dt.datetime) -> None:
    for name in ("server.crt", "server.key"):
        shutil.copy(other_pki / name, pki / name)
    assert ("manifest-mismatch", "server.crt") in ids(check_dir(pki, now=now))


def test_server_host_not_in_the_san(pki: Path, now: dt.datetime) -> None:
    data = json.loads((pki / "pgkongtls.json").read_text())
    data["hosts"].append("db2.internal")
    (pki / "pgkongtls.json").write_text(json.dumps(data))
    f = next(f for f in check_dir(pki, now=now) if f.id == "server-host")
    assert 'server certificate for "db.internal" (and 1 other name) does not match host name "db2.internal"' in f.message


# --------------------------------------------------------------------------- the role profile, one extension at a time


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_cert(cn: str, *, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
              ca: bool | None = None, bc_critical: bool = True, ku: dict[str, bool] | None = None,
              eku: list[x509.ObjectIdentifier] | None = None, ski: bool = True, aki: bool = True,
              san: list[str] | None = None, now: dt.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate with exactly the extensions asked for (None = extension absent)."""
    key = ec.generate_private_key(ec.SECP256R1())
    b = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(issuer[0].subject if issuer else _name(cn))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=300)))
    if ca is not None:
        b = b.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=bc_critical)
    if ku is not None:
        flags = dict.fromkeys(("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
                               "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only"), False)
        b = b.add_extension(x509.KeyUsage(**{**flags, **ku}), critical=True)
    if eku is not None:
        b = b.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    if ski:
        b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    if aki and issuer:
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()),
                            critical=False)
    if san is not None:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in san]), critical=False)
    return b.sign(issuer[1] if issuer else key, hashes.SHA256()), key


CA_KU = {"digital_signature": True, "key_cert_sign": True, "crl_sign": True}
LEAF_KU = {"digital_signature": True}


@pytest.fixture(scope="module")
def good_root(now: dt.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    return make_cert("root", ca=True, ku=CA_KU, now=now)


def test_profile_of_a_good_root_and_leaves_is_clean(good_root: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
                                                    now: dt.datetime) -> None:
    server, _ = make_cert("db", issuer=good_root, ca=False, ku=LEAF_KU, eku=[ExtendedKeyUsageOID.SERVER_AUTH], san=["db"],
                          now=now)
    client, _ = make_cert("kong", issuer=good_root, ca=False, ku=LEAF_KU, eku=[ExtendedKeyUsageOID.CLIENT_AUTH], now=now)
    assert v.check_profile(good_root[0], "root", "root.crt") == []
    assert v.check_profile(server, "server", "server.crt") == []
    assert v.check_profile(client, "client", "client.crt") == []


@pytest.mark.parametrize(("role", "kwargs", "want"), [
    ("intermediate", {"ca": None, "ku": CA_KU}, "ca-basic-constraints"),
    ("intermediate", {"ca": True, "bc_critical": False, "ku": CA_KU}, "ca-basic-constraints"),
    ("intermediate", {"ca": True, "ku": None}, "ca-key-usage"),
    ("intermediate", {"ca": True, "ku": {"digital_signature": True, "crl_sign": True}}, "ca-key-usage"),
    ("intermediate", {"ca": True, "ku": CA_KU, "ski": False}, "missing-ski"),
    ("intermediate", {"ca": True, "ku": CA_KU, "aki": False}, "missing-aki"),
    ("server", {"ca": True, "ku": CA_KU, "eku": [ExtendedKeyUsageOID.SERVER_AUTH], "san": ["db"]}, "leaf-is-ca"),
    ("server", {"ca": False, "ku": LEAF_KU, "san": ["db"]}, "eku-missing"),
    ("server", {"ca": False, "ku": LEAF_KU, "eku": [ExtendedKeyUsageOID.CLIENT_AUTH], "san": ["db"]}, "eku-wrong"),
    ("client", {"ca": False, "ku": LEAF_KU, "eku": [ExtendedKeyUsageOID.SERVER_AUTH]}, "eku-wrong"),
    ("client", {"ca": False, "ku": {"crl_sign": True}, "eku": [ExtendedKeyUsageOID.CLIENT_AUTH]}, "leaf-key-usage"),
    ("client", {"ca": False, "ku": {"digital_signature": True, "key_cert_sign": True},
                "eku": [ExtendedKeyUsageOID.CLIENT_AUTH]}, "leaf-key-usage"),
    ("server", {"ca": False, "ku": LEAF_KU, "eku": [ExtendedKeyUsageOID.SERVER_AUTH]}, "server-san"),
    ("client", {"ca": False, "ku": LEAF_KU, "eku": [ExtendedKeyUsageOID.CLIENT_AUTH], "aki": False}, "missing-aki"),
])
def test_profile_departures(good_root: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], role: str,
                            kwargs: dict[str, object], want: str, now: dt.datetime) -> None:
    cert, _ = make_cert("x", issuer=good_root, **kwargs, now=now)  # type: ignore[arg-type]
    assert [f.id for f in v.check_profile(cert, role, "x.crt")] == [want]


@pytest.mark.parametrize("kwargs", [
    {"ca": True, "bc_critical": False, "ku": CA_KU}, {"ca": True, "ku": None}, {"ca": True, "ku": CA_KU, "ski": False},
    {"ca": True, "ku": CA_KU, "aki": False},
])
def test_profile_errors_are_what_openssl_strict_rejects(
        good_root: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], kwargs: dict[str, object],
        tmp_path: Path, now: dt.datetime) -> None:
    """Every CA departure reported as a strict-profile error fails `openssl verify -x509_strict` with the system
    OpenSSL (the one Python 3.13 links here), and passes without -x509_strict."""
    inter = make_cert("int", issuer=good_root, **kwargs, now=now)  # type: ignore[arg-type]
    leaf, _ = make_cert("db", issuer=inter, ca=False, ku=LEAF_KU, eku=[ExtendedKeyUsageOID.SERVER_AUTH], san=["db"], now=now)
    for name, cert in (("root.pem", good_root[0]), ("int.pem", inter[0]), ("leaf.pem", leaf)):
        (tmp_path / name).write_bytes(cert_pem(cert))

    def openssl_verify(*flags: str) -> int:
        return subprocess.run(["openssl", "verify", *flags, "-CAfile", "root.pem", "-untrusted", "int.pem",
                               "leaf.pem"], cwd=tmp_path, capture_output=True).returncode

    assert openssl_verify() == 0
    assert openssl_verify("-x509_strict") != 0
    assert v.openssl_verify(leaf, trusted=[good_root[0]], untrusted=[inter[0]], now=now).ok


# --------------------------------------------------------------------------- libpq's host name rule


@pytest.mark.parametrize(("sans", "cn", "host", "ok"), [
    (["db.internal"], "x", "db.internal", True), (["DB.Internal"], "x", "db.internal", True),
    (["*.internal"], "x", "db.internal", True), (["*.internal"], "x", "a.db.internal", False),
    (["*.internal"], "x", "internal", False), ([], "db.internal", "db.internal", True),
    (["other"], "db.internal", "db.internal", False), ([], "*.internal", "db.internal", True),
    (["other"], "127.0.0.1", "127.0.0.1", True),  # libpq 17+: no iPAddress SAN, so the CN is examined
])
def test_libpq_host_rule(sans: list[str], cn: str, host: str, ok: bool, now: dt.datetime) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    b = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn)).public_key(key.public_key())
         .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1)))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), critical=False)
    assert consumers.libpq_host_check(b.sign(key, hashes.SHA256()), host)[0] is ok


def test_libpq_host_rule_ip_and_message(pki_template: Path) -> None:
    leaf = x509.load_pem_x509_certificates((pki_template / "server.crt").read_bytes())[0]
    assert consumers.libpq_host_check(leaf, "10.0.0.5") == (True, "")
    assert consumers.libpq_host_check(leaf, "10.0.0.6") == (
        False, 'server certificate for "db.internal" (and 1 other name) does not match host name "10.0.0.6"')


# --------------------------------------------------------------------------- postgresql.conf


def pg_conf(tmp_path: Path, pki: Path, **over: str | None) -> Path:
    settings: dict[str, str | None] = {"ssl": "on", "ssl_cert_file": f"'{pki}/server.crt'",
                                       "ssl_key_file": f"'{pki}/server.key'", "ssl_ca_file": f"'{pki}/chain.crt'"}
    settings.update(over)
    p = tmp_path / "postgresql.conf"
    p.write_text("".join(f"{k} = {val}   # set by the test\n" for k, val in settings.items() if val is not None))
    return p


def pg_findings(tmp_path: Path, pki: Path, now: dt.datetime, **over: str | None) -> list[v.Finding]:
    """Checks of postgresql.conf alone (the server key's owner rule is tested separately)."""
    data = inputs.gather(None, postgresql_conf=pg_conf(tmp_path, pki, **over))
    kong_client = inputs.gather(pki).pki
    assert kong_client is not None
    clients = [e.cert for e in kong_client.role("client") if isinstance(e.cert, inputs.CertFile)]
    return [f for f in v.check_pg(data, data.pg, now=now, warn_days=30, seen=v._Seen(set()), clients=clients)  # type: ignore[arg-type]
            if f.id not in ("key-mode", "key-owner", "key-unreachable")]  # the key rules have their own tests


def test_pg_conf_good(tmp_path: Path, pki: Path, now: dt.datetime) -> None:
    assert pg_findings(tmp_path, pki, now=now) == []


def test_pg_conf_reads_includes_and_quotes(tmp_path: Path, pki: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "tls.conf").write_text(f"ssl_ca_file = '{pki}/chain.crt'\n")
    main = pg_conf(tmp_path, pki, ssl_ca_file="'/nonexistent/chain.crt'")
    main.write_text(main.read_text() + "include_dir 'conf.d'\n")
    pg = inputs.load_pg(main)
    assert isinstance(pg.ca, inputs.CertFile) and pg.settings["ssl"].value == "on"


@pytest.mark.parametrize(("over", "want"), [
    ({"ssl": "off"}, "pg-ssl-off"), ({"ssl": None}, "pg-ssl-off"),
    ({"ssl_ca_file": "'/nonexistent/chain.crt'"}, "pg-file-missing"),
    ({"ssl_key_file": "'/nonexistent/server.key'"}, "pg-file-missing"),
    ({"ssl_ca_file": None}, "pg-no-ca"),
])
def test_pg_conf_problems(tmp_path: Path, pki: Path, over: dict[str, str | None], want: str, now: dt.datetime) -> None:
    assert [f.id for f in pg_findings(tmp_path, pki, **over, now=now)] == [want]


def test_pg_ca_file_without_the_client_issuer(tmp_path: Path, pki: Path, other_pki: Path, now: dt.datetime) -> None:
    got = pg_findings(tmp_path, pki, ssl_ca_file=f"'{other_pki}/chain.crt'", now=now)
    assert [f.id for f in got] == ["pg-ca-file"]
    assert "unable to get local issuer certificate" in got[0].message


def test_pg_key_owner_rule_through_gather(tmp_path: Path, pki: Path, now: dt.datetime) -> None:
    """As root, chown the key as an operator would and see PostgreSQL's rule applied."""
    pg = inputs.account("postgres")
    if os.geteuid() != 0 or pg is None:
        pytest.skip("needs root and a postgres user")
    os.chown(pki / "server.key", pg.uid, min(pg.gids))
    owner_rule = ("key-mode", "key-owner")  # key-unreachable (pytest's 0700 tmp) is tested in test_verify_deploy
    assert [f for f in check_dir(None, postgresql_conf=pg_conf(tmp_path, pki), now=now) if f.id in owner_rule] == []
    os.chown(pki / "server.key", 0, 0)
    got = [f for f in check_dir(None, postgresql_conf=pg_conf(tmp_path, pki), now=now) if f.id in owner_rule]
    assert [f.id for f in got] == ["key-mode"] and "postgres cannot read it through its group" in got[0].message


# --------------------------------------------------------------------------- CRLs


def _crl(issuer_crt: Path, issuer_key: Path, *, revoked: list[int] = (), next_days: float = 30, now: dt.datetime) -> bytes:  # type: ignore[assignment]
    ca = x509.load_pem_x509_certificates(issuer_crt.read_bytes())[0]
    key = serialization.load_pem_private_key(issuer_key.read_bytes(), None)
    b = (x509.CertificateRevocationListBuilder().issuer_name(ca.subject).last_update(now - dt.timedelta(days=2))
         .next_update(now + dt.timedelta(days=next_days)))
    for serial in revoked:
        b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(serial)
                                      .revocation_date(now - dt.timedelta(hours=1)).build())
    return b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)  # type: ignore[arg-type]


def crl_findings(tmp_path: Path, pki: Path, crl: bytes, now: dt.datetime) -> list[str]:
    (tmp_path / "all.crl").write_bytes(crl)
    return [f.id for f in pg_findings(tmp_path, pki, ssl_crl_file=f"'{tmp_path}/all.crl'", now=now)]


def test_crl_current_at_every_level(tmp_path: Path, pki: Path, now: dt.datetime) -> None:
    crl = _crl(pki / "root.crt", pki / "root.key", now=now) + _crl(pki / "intermediate.crt", pki / "intermediate.key", now=now)
    assert crl_findings(tmp_path, pki, crl, now=now) == []


def test_crl_missing_for_the_root_level(tmp_path: Path, pki: Path, now: dt.datetime) -> None:
    crl = _crl(pki / "intermediate.crt", pki / "intermediate.key", now=now)
    assert crl_findings(tmp_path, pki, crl, now=now) == ["crl-missing"]


def test_crl_expired(tmp_path: Path, pki: Path, now: dt.datetime) -> None:
    crl = _crl(pki / "root.crt", pki / "root.key", now=now) + _crl(pki / "intermediate.crt", pki / "intermediate.key",
                                                           next_days=-1, now=now)
    assert crl_findings(tmp_path, pki, crl, now=now) == ["crl-expired"]


def test_crl_revokes_the_client(tmp_path: Path, pki: Path, now: dt.datetime) -> None:
    client = x509.load_pem_x509_certificates((pki / "client.crt").read_bytes())[0]
    crl = _crl(pki / "root.crt", pki / "root.key", now=now) + _crl(pki / "intermediate.crt", pki / "intermediate.key",
                                                           revoked=[client.serial_number], now=now)
    assert crl_findings(tmp_path, pki, crl, now=now) == ["cert-revoked"]


# --------------------------------------------------------------------------- pg_hba.conf / pg_ident.conf


def hba_findings(hba: str, *, ident: str | None = None, cns: tuple[str, ...] = ("kong",), user: str = "kong",
                 edition: str = "enterprise", kong_sends_cert: bool | None = None) -> list[str]:
    data = VerifyInput(hba=("pg_hba.conf", tuple(confparse.parse_hba(hba))),
                       ident=("pg_ident.conf", tuple(confparse.parse_ident(ident))) if ident is not None else None)
    return [f.id for f in v.check_hba(data, user=user, database="kong", edition=edition, client_cns=list(cns),
                                      kong_sends_cert=kong_sends_cert)]


@pytest.mark.parametrize("hba", [
    "hostssl all all all cert\n", "hostssl all all all trust clientcert=verify-full\n",
    "hostssl kong kong 0.0.0.0/0 scram-sha-256 clientcert=verify-full\n",
    'hostssl "kong" "kong",other all cert\nhostnossl all all all reject\n',
    "local all all trust\nhostssl all +kongs all cert\n",
])
def test_hba_good(hba: str) -> None:
    assert hba_findings(hba) == []


@pytest.mark.parametrize(("hba", "want"), [
    ("hostssl all postgres all cert\n", ["hba-no-line"]),
    ("hostssl all all all scram-sha-256\nhostssl all all all cert\n", ["hba-method"]),
    ("hostssl all all all scram-sha-256 clientcert=verify-ca\n", ["hba-method"]),
    ("host all all 127.0.0.1/32 scram-sha-256\nhostssl all all all cert\n", ["hba-shadowed"]),
    ("hostssl all kong all reject\nhostssl all all all cert\n", ["hba-reject"]),
    ("host all all all cert\n", ["hba-plaintext"]),
    ('hostssl "all" all all cert\n', ["hba-no-line"]),
])
def test_hba_problems(hba: str, want: list[str]) -> None:
    assert hba_findings(hba) == want


def test_hba_oss_must_not_ask_for_a_certificate() -> None:
    assert hba_findings("hostssl all all all cert\n", edition="oss", cns=()) == ["hba-oss-cert"]
    assert hba_findings("hostssl all all all scram-sha-256\n", edition="oss", cns=()) == []


def test_hba_needs_kong_to_send_a_certificate() -> None:
    assert hba_findings("hostssl all all all cert\n", kong_sends_cert=False) == ["kong-no-client-cert"]


def test_client_cn_message_names_the_server_error_and_the_map_line() -> None:
    data = VerifyInput(hba=("pg_hba.conf", tuple(confparse.parse_hba("hostssl all kong all cert map=m\n"))),
                       ident=("pg_ident.conf", tuple(confparse.parse_ident("m /^kong-node-[0-9]+$ kong\n"))))
    [f] = v.check_hba(data, user="kong", database="kong", edition="enterprise", client_cns=["kong"],
                      kong_sends_cert=True)
    assert f.message == ("map 'm' does not map the client CN 'kong' to 'kong': PostgreSQL answers 'certificate "
                         "authentication failed for user \"kong\"'")
    assert f.fix == "add the line 'm kong kong' to pg_ident.conf and reload" and f.file == "pg_ident.conf"


def test_client_cn_against_the_user_and_the_map() -> None:
    assert hba_findings("hostssl all all all cert\n", cns=("kong-node-1",)) == ["client-cn"]
    mapped = "hostssl all all all cert map=pgkongtls\n"
    assert hba_findings(mapped, cns=("kong-node-1",)) == ["ident-unchecked"]
    assert hba_findings(mapped, cns=("kong-node-1",), ident="pgkongtls kong-node-1 kong\n") == []
    assert hba_findings(mapped, cns=("kong-node-7",), ident='pgkongtls "/^kong-node-[0-9]+$" kong\n') == []
    assert hba_findings(mapped, cns=("kong",), ident="pgkongtls kong-node-1 kong\n") == ["client-cn"]
    assert hba_findings(mapped, cns=("kong",), ident="pgkongtls /^(.*)$ \\1\n") == []


# --------------------------------------------------------------------------- kong.conf


ME = pwd.getpwuid(os.getuid()).pw_name


def kong_findings(tmp_path: Path, text: str, *, server_pki: Path | None = None, edition: str = "enterprise",
                  now: dt.datetime) -> list[str]:
    p = tmp_path / "kong.conf"
    p.write_text(text)
    data = inputs.gather(server_pki, kong_conf=p, kong_os_user=ME)  # the files' own user: they are readable
    return [f.id for f in v.run_checks(data, now=now, edition=edition)]


def kong_text(pki: Path, **over: str | None) -> str:
    vals: dict[str, str | None] = {
        "pg_ssl": "on", "pg_ssl_required": "on", "pg_ssl_verify": "on", "pg_ssl_version": "tlsv1_2",
        "pg_ssl_cert": f"{pki}/client.crt", "pg_ssl_cert_key": f"{pki}/client.key",
        "lua_ssl_trusted_certificate": f"{pki}/chain.crt", "lua_ssl_verify_depth": "1",
    }
    vals.update(over)
    return "".join(f"{k} = {val}  # the test's\n" for k, val in vals.items() if val is not None)


def test_kong_good(tmp_path: Path, pki: Path, now: dt.datetime) -> None:
    assert kong_findings(tmp_path, kong_text(pki), server_pki=pki, now=now) == []
    assert kong_findings(tmp_path, kong_text(pki, lua_ssl_trusted_certificate=f"system,{pki}/chain.crt"),
                         server_pki=pki, now=now) == ["kong-trust-system"]  # a warning: see tests/test_verify_kong_policy.py


@pytest.mark.parametrize(("over", "want"), [
    ({"pg_ssl": "off"}, ["kong-ssl-off"]),
    ({"pg_ssl_verify": "off"}, ["kong-no-verify"]),
    ({"lua_ssl_verify_depth": "0"}, ["kong-depth"]),
    ({"lua_ssl_verify_depth": "one"}, ["kong-depth"]),
    ({"lua_ssl_verify_depth": None}, []),
    ({"pg_ssl_cert_key": None}, ["kong-cert-pair"]),
])
def test_kong_problems(tmp_path: Path, pki: Path, over: dict[str, str | None], want: list[str], now: dt.datetime) -> None:
    assert kong_findings(tmp_path, kong_text(pki, **over), server_pki=pki, now=now) == want


def test_kong_depth_names_the_needed_value(tmp_path: Path, pki: Path, now: dt.datetime) -> None:
    p = tmp_path / "kong.conf"
    p.write_text(kong_text(pki, lua_ssl_verify_depth="0"))
    f = next(f for f in v.run_checks(inputs.gather(pki, kong_conf=p), now=now) if f.id == "kong-depth")
    assert f.fix == "set lua_ssl_verify_depth = 1" and "1 intermediate CA(s)" in f.message


def test_kong_trust_without_the_server_root(tmp_path: Path, pki: Path, other_pki: Path, now: dt.datetime) -> None:
    got = kong_findings(tmp_path, kong_text(pki, lua_ssl_trusted_certificate=f"{other_pki}/chain.crt"),
                        server_pki=pki, now=now)
    assert got == ["kong-trust"]


def test_kong_quoted_paths_as_in_the_source_document(tmp_path: Path, pki: Path, now: dt.datetime) -> None:
    """The document writes pg_ssl_cert = '/path/...': Kong keeps the quotes, so the file is not found."""
    text = kong_text(pki, pg_ssl_cert=f"'{pki}/client.crt'", pg_ssl_cert_key=f"'{pki}/client.key'")
    p = tmp_path / "kong.conf"
    p.write_text(text)
    got = [f for f in v.run_checks(inputs.gather(pki, kong_conf=p), now=now) if f.id == "kong-file-missing"]
    assert len(got) == 2 and "Kong keeps the quotes as part of the path" in got[0].message


def test_kong_missing_trust_file_and_unchecked_trust(tmp_path: Path, pki: Path, now: dt.datetime) -> None:
    assert kong_findings(tmp_path, kong_text(pki, lua_ssl_trusted_certificate="/nonexistent.crt"), server_pki=pki, now=now) \
        == ["kong-trust-file"]
    assert kong_findings(tmp_path, kong_text(pki), now=now) == ["kong-trust-unchecked"]


def test_kong_enterprise_keys_on_oss(tmp_path: Path, pki: Path, now: dt.datetime) -> None:
    got = kong_findings(tmp_path, kong_text(pki), server_pki=pki, edition="oss", now=now)
    assert got == ["kong-enterprise-key"] * 4
    oss = kong_text(pki, pg_ssl_required=None, pg_ssl_version=None, pg_ssl_cert=None, pg_ssl_cert_key=None)
    assert kong_findings(tmp_path, oss, server_pki=pki, edition="oss", now=now) == []


def test_kong_client_key_world_readable_and_encrypted(tmp_path: Path, pki: Path, now: dt.datetime) -> None:
    os.chmod(pki / "client.key", 0o644)
    got = kong_findings(tmp_path, kong_text(pki), server_pki=None, now=now)
    assert "key-mode" in got
    _encrypt(pki / "client.key")
    assert "key-encrypted" in kong_findings(tmp_path, kong_text(pki), server_pki=None, now=now)


# --------------------------------------------------------------------------- parsers


def test_pg_conf_parser_quoting() -> None:
    got = confparse.parse_pg_conf("a = 'it''s \\'x\\' # not a comment'  # comment\nb on\nc=5\n")
    assert [(s.name, s.value) for s in got] == [("a", "it's 'x' # not a comment"), ("b", "on"), ("c", "5")]
    with pytest.raises(InputError, match="line 1: unterminated quoted string"):
        confparse.parse_pg_conf("a = 'open\n")


def test_hba_parser_tokens() -> None:
    [line] = confparse.parse_hba('hostssl "all",kong +g 10.0.0.0 255.0.0.0 cert map=m # c\n')
    assert [t.text for t in line.databases] == ["all", "kong"] and line.databases[0].quoted
    assert line.address == "10.0.0.0 255.0.0.0" and line.method == "cert" and line.options == {"map": "m"}
    with pytest.raises(InputError, match="unknown connection type 'hostsll'"):
        confparse.parse_hba("hostsll all all all cert\n")


def test_kong_parser_comments_and_escapes() -> None:
    got = confparse.parse_kong_conf("# c\npg_password = a\\#b # comment\nlua_ssl_trusted_certificate = system, /x \n")
    assert got["pg_password"].value == "a#b"
    assert confparse.kong_list(got["lua_ssl_trusted_certificate"].value) == ["system", "/x"]


def test_manifest_crl_is_checked_at_every_level(pki: Path, now: dt.datetime) -> None:
    """A CRL written by `pgkongtls crl` is current now and expired after its nextUpdate (90 days)."""
    ops.refresh_crl(pki, now=now)
    assert check_dir(pki, now=now) == []
    later = [f for f in check_dir(pki, now=now + dt.timedelta(days=100)) if f.id.startswith("crl")]
    assert {(f.id, Path(f.file).name) for f in later} == {("crl-expired", "crl.pem")}
    assert len(later) == 2  # the intermediate's CRL and the root's
    crl = inputs.load_pki_dir(pki).crl
    assert isinstance(crl, inputs.CrlFile)
    Path(crl.path).unlink()
    assert ("file-missing", "crl.pem") in ids(check_dir(pki, now=now))
