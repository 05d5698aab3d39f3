"""One certificate and its key: the strict role profile, validity dates, key match and key encryption.

The profile is the one FACTS.md measures: each departure is reported with the
consumer that refuses it, or as a warning when every consumer still accepts it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from pgkongtls.consumers import OPENSSL_KEY_MISMATCH, STRICT_WHO, X509Err
from pgkongtls.inputs_model import CertFile, KeyFile
from pgkongtls.verify.chain import ext, is_v1, name_of, public_der, self_issued
from pgkongtls.verify.findings import ERROR, WARNING, Finding

CA_ROLES = ("root", "intermediate")
_REISSUE = "re-issue it with pgkongtls init (or openssl x509 -req with an -extfile that sets the profile)"

Rule = Callable[[x509.Certificate, str, str], list[Finding]]


def _v1(cert: x509.Certificate, role: str, file: str) -> list[Finding]:
    """A v1 certificate cannot carry the extensions the profile needs; OpenSSL still accepts it, linters do not."""
    if not is_v1(cert):
        return []
    return [Finding("cert-v1", WARNING, file,
                    f"{name_of(cert)} is an X.509 v1 certificate: it carries no extensions (no SAN, EKU, SKI or AKI); "
                    "RFC 5280 linters and cryptography's validator reject it", _REISSUE)]


def _ca_basic_constraints(cert: x509.Certificate, role: str, file: str) -> list[Finding]:
    """OpenSSL takes an issuer only with CA:TRUE (a self-issued v1 root excepted), and X509_STRICT wants it critical."""
    bc = ext(cert, x509.BasicConstraints)
    if bc is None or not bc.value.ca:
        if is_v1(cert) and self_issued(cert):
            return []
        return [Finding("ca-basic-constraints", ERROR, file,
                        f"{name_of(cert)} is used as a CA but has no basicConstraints CA:TRUE; "
                        f"OpenSSL refuses it as an issuer ({X509Err.INVALID_CA.text})", _REISSUE)]
    if not bc.critical:
        return [Finding("ca-basic-constraints", ERROR, file,
                        f"{name_of(cert)}: basicConstraints is not critical; {STRICT_WHO}", _REISSUE)]
    return []


def _ca_key_usage(cert: x509.Certificate, role: str, file: str) -> list[Finding]:
    """X509_STRICT wants a CA's keyUsage, and OpenSSL refuses an issuer whose keyUsage lacks keyCertSign."""
    ku = ext(cert, x509.KeyUsage)
    if ku is None:
        if is_v1(cert):
            return []
        return [Finding("ca-key-usage", ERROR, file,
                        f"CA {name_of(cert)} has no keyUsage ({X509Err.MISSING_KEY_USAGE.text}); {STRICT_WHO}",
                        "re-issue the CA with keyUsage = critical, keyCertSign, cRLSign (pgkongtls init)")]
    if not ku.value.key_cert_sign:
        return [Finding("ca-key-usage", ERROR, file,
                        f"CA {name_of(cert)}: keyUsage lacks keyCertSign; OpenSSL refuses it as an issuer",
                        "re-issue the CA with keyUsage = critical, keyCertSign, cRLSign")]
    return []


def _ca_ski(cert: x509.Certificate, role: str, file: str) -> list[Finding]:
    """X509_STRICT wants a subjectKeyIdentifier on every v3 CA."""
    if is_v1(cert) or ext(cert, x509.SubjectKeyIdentifier) is not None:
        return []
    return [Finding("missing-ski", ERROR, file, f"CA {name_of(cert)} has no subjectKeyIdentifier; {STRICT_WHO}",
                    _REISSUE)]


def _leaf_not_ca(cert: x509.Certificate, role: str, file: str) -> list[Finding]:
    """OpenSSL lets a CA act as a TLS end entity; strict validators do not."""
    bc = ext(cert, x509.BasicConstraints)
    if bc is None or not bc.value.ca:
        return []
    return [Finding("leaf-is-ca", WARNING, file,
                    f"the {role} certificate {name_of(cert)} is a CA (basicConstraints CA:TRUE); "
                    "strict validators refuse a CA as an end entity", _REISSUE)]


def _leaf_eku(cert: x509.Certificate, role: str, file: str) -> list[Finding]:
    """The peer checks the purpose: a wrong EKU fails the handshake, a missing one only strict validators."""
    eku = ext(cert, x509.ExtendedKeyUsage)
    want = ExtendedKeyUsageOID.SERVER_AUTH if role == "server" else ExtendedKeyUsageOID.CLIENT_AUTH
    want_name = "serverAuth" if role == "server" else "clientAuth"
    who = "libpq and Kong (OpenSSL purpose ssl_server)" if role == "server" else \
        "PostgreSQL (OpenSSL purpose ssl_client)"
    if eku is None:
        return [Finding("eku-missing", WARNING, file,
                        f"the {role} certificate {name_of(cert)} has no extendedKeyUsage: OpenSSL allows any "
                        f"purpose, strict validators (cryptography, pkilint) want {want_name}", _REISSUE)]
    if want not in eku.value:
        return [Finding("eku-wrong", ERROR, file,
                        f"the {role} certificate {name_of(cert)} has extendedKeyUsage without {want_name}; "
                        f"{who} reject it ({X509Err.INVALID_PURPOSE.text})", _REISSUE)]
    return []


def _leaf_key_usage(cert: x509.Certificate, role: str, file: str) -> list[Finding]:
    """A TLS key must sign or encipher; keyCertSign on a non-CA is refused by X509_STRICT."""
    ku = ext(cert, x509.KeyUsage)
    if ku is None:
        return []
    bc = ext(cert, x509.BasicConstraints)
    out: list[Finding] = []
    v = ku.value
    if not (v.digital_signature or v.key_encipherment or v.key_agreement):
        out.append(Finding("leaf-key-usage", ERROR, file,
                           f"the {role} certificate {name_of(cert)}: keyUsage allows neither digitalSignature "
                           "nor keyEncipherment; OpenSSL rejects it for TLS", _REISSUE))
    if v.key_cert_sign and not (bc is not None and bc.value.ca):
        out.append(Finding("leaf-key-usage", ERROR, file,
                           f"the {role} certificate {name_of(cert)} has keyCertSign but is not a CA; {STRICT_WHO}",
                           _REISSUE))
    return out


def _server_san(cert: x509.Certificate, role: str, file: str) -> list[Finding]:
    """libpq falls back to the CN, but cryptography's validator and RFC 6125 clients match only the SAN."""
    if role != "server" or ext(cert, x509.SubjectAlternativeName) is not None:
        return []
    return [Finding("server-san", WARNING, file,
                    f"the server certificate has no subjectAltName: libpq verify-full matches the "
                    f"CN {name_of(cert)!r}; cryptography's validator and RFC 6125 clients need a SAN",
                    "re-issue it with every database host name in the SAN (pgkongtls init --db-host)")]


def _aki(cert: x509.Certificate, role: str, file: str) -> list[Finding]:
    """X509_STRICT wants an authorityKeyIdentifier on every v3 certificate that a CA issued."""
    if is_v1(cert) or self_issued(cert):
        return []
    aki = ext(cert, x509.AuthorityKeyIdentifier)
    if aki is not None and aki.value.key_identifier is not None:
        return []
    return [Finding("missing-aki", ERROR, file,
                    f"{name_of(cert)} has no authorityKeyIdentifier keyIdentifier; {STRICT_WHO}", _REISSUE)]


_CA_RULES: tuple[Rule, ...] = (_ca_basic_constraints, _ca_key_usage, _ca_ski)
_LEAF_RULES: tuple[Rule, ...] = (_leaf_not_ca, _leaf_eku, _leaf_key_usage, _server_san)


def check_profile(cert: x509.Certificate, role: str, file: str) -> list[Finding]:
    """The strict role profile (FACTS.md), one finding per departure, each with its consequence."""
    rules = (_v1, *(_CA_RULES if role in CA_ROLES else _LEAF_RULES), _aki)
    return [f for rule in rules for f in rule(cert, role, file)]


def check_validity(cert: x509.Certificate, file: str, now: dt.datetime, warn_days: int) -> list[Finding]:
    """Expired and not-yet-valid break every client; expiring soon is a warning with time to renew."""
    renew = "renew it (pgkongtls renew, or re-issue it) before it expires"
    if cert.not_valid_after_utc < now:
        return [Finding("cert-expired", ERROR, file,
                        f"{name_of(cert)} expired on {cert.not_valid_after_utc:%Y-%m-%d}; every client rejects it",
                        renew.replace(" before it expires", ""))]
    if cert.not_valid_before_utc > now:
        return [Finding("cert-not-yet-valid", ERROR, file,
                        f"{name_of(cert)} is valid only from {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC; "
                        "check this host's clock", "re-issue it, or fix the clock")]
    left = cert.not_valid_after_utc - now
    if left <= dt.timedelta(days=warn_days):
        return [Finding("cert-expiring", WARNING, file,
                        f"{name_of(cert)} expires in {left.days} days ({cert.not_valid_after_utc:%Y-%m-%d})", renew)]
    return []


def check_key_pair(certs: CertFile, key: KeyFile, role: str) -> list[Finding]:
    """The key matches the first certificate of its file (the leaf PostgreSQL and Kong send)."""
    if key.key is None:
        return []
    want = public_der(key.key)
    if public_der(certs.certs[0]) == want:
        return []
    later = [i for i, c in enumerate(certs.certs[1:], 2) if public_der(c) == want]
    if later:
        return [Finding("leaf-order", ERROR, certs.path,
                        f"the {role} certificate matching {key.path} is number {later[0]} in the file, but the first "
                        f"certificate is {name_of(certs.certs[0])}; PostgreSQL and Kong send the first one as the leaf",
                        "put the leaf first, then its intermediates")]
    return [Finding("key-mismatch", ERROR, key.path,
                    f"{key.path} does not match the certificate {name_of(certs.certs[0])} in {certs.path}; "
                    f"the TLS server or client will not start ({OPENSSL_KEY_MISMATCH})",
                    f"restore the key that was made with {certs.path}, or re-issue both")]


def check_encrypted(key: KeyFile, role: str) -> list[Finding]:
    """Kong cannot read an encrypted key at all; PostgreSQL can, only with a passphrase command."""
    if not key.encrypted:
        return []
    if role == "client":
        return [Finding("key-encrypted", ERROR, key.path,
                        f"{key.path} is encrypted: Kong cannot read an encrypted pg_ssl_cert_key",
                        f"openssl pkey -in {key.path} -out {key.path}.plain (then chmod 0600 and use it)")]
    if role == "server":
        return [Finding("key-encrypted", WARNING, key.path,
                        f"{key.path} is encrypted: PostgreSQL needs ssl_passphrase_command to load it, and cannot "
                        "reload it without ssl_passphrase_command_supports_reload",
                        "set ssl_passphrase_command, or store the key unencrypted with mode 0600")]
    return []
