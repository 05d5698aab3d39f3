"""Library tests for the certificate builder: the per-role profile, value by value."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from pgkongtls import KEY_TYPES, certs
from pgkongtls.errors import InputError
from pgkongtls.hostnames import parse_host

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.timezone.utc)


def chain(key_type: str = "ecdsa-p256", *, with_int: bool = True) -> dict[str, certs.Issued]:
    root = certs.make_root(cn="Test Root", key=certs.generate_key(key_type), with_intermediate=with_int, now=NOW)
    issuing = root
    out = {"root": root}
    if with_int:
        issuing = out["intermediate"] = certs.make_intermediate(
            cn="Test Intermediate", key=certs.generate_key(key_type), issuer=root, now=NOW)
    out["server"] = certs.make_server(hosts=["db.example", "10.0.0.5"], key=certs.generate_key(key_type),
                                      issuer=issuing, now=NOW)
    out["client"] = certs.make_client(cn="kong", key=certs.generate_key(key_type), issuer=issuing, now=NOW)
    return out


def ext(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> x509.Extension[x509.ExtensionType]:
    return cert.extensions.get_extension_for_oid(oid)


@pytest.fixture(scope="module")
def ec_chain() -> dict[str, certs.Issued]:
    return chain("ecdsa-p256")


@pytest.fixture(scope="module")
def rsa_chain() -> dict[str, certs.Issued]:
    return chain("rsa-2048")


@pytest.mark.parametrize("role", ["root", "intermediate"])
def test_ca_profile_basic_constraints_and_key_usage(ec_chain: dict[str, certs.Issued], role: str) -> None:
    cert = ec_chain[role].cert
    bc = ext(cert, ExtensionOID.BASIC_CONSTRAINTS)
    assert bc.critical and bc.value.ca is True
    assert bc.value.path_length == (1 if role == "root" else 0)
    ku = ext(cert, ExtensionOID.KEY_USAGE)
    assert ku.critical
    assert (ku.value.key_cert_sign, ku.value.crl_sign, ku.value.digital_signature) == (True, True, True)
    assert not ku.value.key_encipherment
    with pytest.raises(x509.ExtensionNotFound):
        ext(cert, ExtensionOID.EXTENDED_KEY_USAGE)


def test_root_pathlen_zero_without_intermediate() -> None:
    root = chain(with_int=False)["root"].cert
    assert ext(root, ExtensionOID.BASIC_CONSTRAINTS).value.path_length == 0


@pytest.mark.parametrize(("role", "eku"), [("server", ExtendedKeyUsageOID.SERVER_AUTH),
                                           ("client", ExtendedKeyUsageOID.CLIENT_AUTH)])
def test_leaf_profile_ec(ec_chain: dict[str, certs.Issued], role: str, eku: x509.ObjectIdentifier) -> None:
    cert = ec_chain[role].cert
    bc = ext(cert, ExtensionOID.BASIC_CONSTRAINTS)
    assert bc.critical and bc.value.ca is False and bc.value.path_length is None
    ku = ext(cert, ExtensionOID.KEY_USAGE)
    assert ku.critical and ku.value.digital_signature
    assert not ku.value.key_encipherment and not ku.value.key_cert_sign and not ku.value.crl_sign
    e = ext(cert, ExtensionOID.EXTENDED_KEY_USAGE)
    assert e.critical is False
    assert list(e.value) == [eku]


def test_rsa_leaves_add_key_encipherment(rsa_chain: dict[str, certs.Issued]) -> None:
    for role in ("server", "client"):
        ku = ext(rsa_chain[role].cert, ExtensionOID.KEY_USAGE).value
        assert ku.digital_signature and ku.key_encipherment and not ku.key_cert_sign
    assert not ext(rsa_chain["root"].cert, ExtensionOID.KEY_USAGE).value.key_encipherment


def test_ski_on_every_cert_and_aki_matches_issuer_ski(ec_chain: dict[str, certs.Issued]) -> None:
    issuer_of = {"intermediate": "root", "server": "intermediate", "client": "intermediate"}
    for issued in ec_chain.values():
        ski = ext(issued.cert, ExtensionOID.SUBJECT_KEY_IDENTIFIER)
        assert ski.critical is False
        assert ski.value.digest == x509.SubjectKeyIdentifier.from_public_key(issued.key.public_key()).digest
    with pytest.raises(x509.ExtensionNotFound):
        ext(ec_chain["root"].cert, ExtensionOID.AUTHORITY_KEY_IDENTIFIER)
    for role, issuer in issuer_of.items():
        aki = ext(ec_chain[role].cert, ExtensionOID.AUTHORITY_KEY_IDENTIFIER)
        assert aki.critical is False
        issuer_ski = ext(ec_chain[issuer].cert, ExtensionOID.SUBJECT_KEY_IDENTIFIER).value.digest
        assert aki.value.key_identifier == issuer_ski
        assert ec_chain[role].cert.issuer == ec_chain[issuer].cert.subject


def test_server_san_and_cn(ec_chain: dict[str, certs.Issued]) -> None:
    cert = ec_chain["server"].cert
    san = ext(cert, ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    assert san.critical is False
    assert san.value.get_values_for_type(x509.DNSName) == ["db.example"]
    assert [str(a) for a in san.value.get_values_for_type(x509.IPAddress)] == ["10.0.0.5"]
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "db.example"


def test_client_has_cn_and_no_san(ec_chain: dict[str, certs.Issued]) -> None:
    cert = ec_chain["client"].cert
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "kong"
    with pytest.raises(x509.ExtensionNotFound):
        ext(cert, ExtensionOID.SUBJECT_ALTERNATIVE_NAME)


def test_serials_random_positive_and_at_most_20_octets(ec_chain: dict[str, certs.Issued]) -> None:
    serials = [i.cert.serial_number for i in ec_chain.values()]
    assert len(set(serials)) == len(serials)
    for s in serials:
        assert 0 < s and (s.bit_length() + 8) // 8 <= 20


def test_validity_is_backdated_and_uses_days(ec_chain: dict[str, certs.Issued]) -> None:
    days = {"root": 3650, "intermediate": 1825, "server": 365, "client": 365}
    for role, issued in ec_chain.items():
        assert issued.cert.not_valid_before_utc == NOW - certs.BACKDATE
        assert issued.cert.not_valid_after_utc == NOW + dt.timedelta(days=days[role])


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_every_key_type_and_signature_hash(key_type: str) -> None:
    key = certs.generate_key(key_type)
    assert certs.key_type_of(key) == key_type
    if key_type.startswith("rsa-"):
        assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == int(key_type[4:])
    else:
        assert isinstance(key, ec.EllipticCurvePrivateKey)
    root = certs.make_root(cn="R", key=key, now=NOW)
    assert root.cert.signature_hash_algorithm is not None
    assert root.cert.signature_hash_algorithm.name == ("sha384" if key_type == "ecdsa-p384" else "sha256")
    assert root.cert.version == x509.Version.v3


def test_self_signed_leaf_names_itself_in_aki() -> None:
    leaf = certs.make_server(hosts=["localhost"], key=certs.generate_key("ecdsa-p256"), issuer=None, now=NOW)
    aki = ext(leaf.cert, ExtensionOID.AUTHORITY_KEY_IDENTIFIER).value.key_identifier
    assert aki == ext(leaf.cert, ExtensionOID.SUBJECT_KEY_IDENTIFIER).value.digest
    assert ext(leaf.cert, ExtensionOID.BASIC_CONSTRAINTS).value.ca is False
    assert leaf.cert.issuer == leaf.cert.subject


@pytest.mark.parametrize(("value", "expected"), [
    ("db.internal", x509.DNSName("db.internal")),
    ("DB.Internal.", x509.DNSName("db.internal")),
    ("bücher.example", x509.DNSName("xn--bcher-kva.example")),
    ("xn--bcher-kva.example", x509.DNSName("xn--bcher-kva.example")),
    # IDNA 2008 keeps ß (IDNA 2003, Python's "idna" codec, mapped it to "ss": fass.de, another domain)
    ("faß.de", x509.DNSName("xn--fa-hia.de")),
    ("straße.de", x509.DNSName("xn--strae-oqa.de")),
    ("10.0.0.5", x509.IPAddress(__import__("ipaddress").ip_address("10.0.0.5"))),
    ("::1", x509.IPAddress(__import__("ipaddress").ip_address("::1"))),
])
def test_parse_host_accepts(value: str, expected: x509.GeneralName) -> None:
    assert parse_host(value) == expected


@pytest.mark.parametrize(("value", "message"), [
    ("", "invalid host '': empty or surrounded by spaces"),
    (" db", "invalid host ' db': empty or surrounded by spaces"),
    ("fe80::1%eth0", "invalid host 'fe80::1%eth0': zone ids cannot go in a certificate"),
    ("*.example.com", "invalid host '*.example.com': wildcards are not accepted for a database host"),
    ("a..b", "invalid host 'a..b': not a valid DNS name or IP address"),
    ("bad_host", "invalid host 'bad_host': not a valid DNS name or IP address"),
    ("a" * 64 + ".example", f"invalid host '{'a' * 64}.example': not a valid DNS name or IP address"),
    ("db\nhost", "invalid host 'db\\nhost': not a valid DNS name or IP address"),
    ("ＤＢ．example", "invalid host 'ＤＢ．example': IDNA maps it to 'db.example'; pass that name instead"),
    ("💩.la", "invalid host '💩.la': not a valid DNS name or IP address"),  # IDNA 2003 allowed emoji
])
def test_parse_host_refuses(value: str, message: str) -> None:
    with pytest.raises(InputError) as err:
        parse_host(value)
    assert str(err.value).startswith(message)


@pytest.mark.parametrize("days", [0, -1])
def test_days_must_be_positive(days: int) -> None:
    with pytest.raises(InputError, match=f"--days must be at least 1 day, got {days}"):
        certs.make_client(cn="kong", key=certs.generate_key("ecdsa-p256"), issuer=None, days=days, now=NOW)


def test_unknown_key_type() -> None:
    with pytest.raises(InputError, match="unknown key type 'dsa-1024'"):
        certs.generate_key("dsa-1024")
