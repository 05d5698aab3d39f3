"""Certificate builder: one shared helper plus one small function per role.

No file I/O here and no click or rich: dataclasses in, dataclasses out, so the
same code serves `init`, `issue`, `renew` and the tests (which inject `now`).
The extension profile per role is written down once, in `PROFILE`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
import warnings
from dataclasses import dataclass
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import verification as v
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pgkongtls import DEFAULT_DAYS_INTERMEDIATE, DEFAULT_DAYS_LEAF, DEFAULT_DAYS_ROOT, KEY_TYPES, MAX_DAYS, SERVER_EKUS
from pgkongtls.errors import InputError, PgkError, PgkWarning, deferred_interrupt
from pgkongtls.hostnames import parse_host
from pgkongtls.manifest import host_text

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
Role = Literal["root", "intermediate", "server", "client"]

DEFAULT_KEY_TYPE = "ecdsa-p256"

#: Clock-skew allowance: a certificate minted now must already be valid on a
#: database whose clock runs a little behind.
BACKDATE = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class RoleProfile:
    """The strict extension profile of one role (FACTS.md, OpenSSL strict)."""

    ca: bool
    path_length: int | None
    key_cert_sign: bool
    eku: tuple[x509.ObjectIdentifier, ...]


#: basicConstraints and keyUsage are critical, EKU is not, SKI on all,
#: AKI on all but the root. Root pathlen is set per chain shape.
PROFILE: dict[Role, RoleProfile] = {
    "root": RoleProfile(ca=True, path_length=1, key_cert_sign=True, eku=()),
    "intermediate": RoleProfile(ca=True, path_length=0, key_cert_sign=True, eku=()),
    "server": RoleProfile(
        ca=False, path_length=None, key_cert_sign=False, eku=(ExtendedKeyUsageOID.SERVER_AUTH,)
    ),
    "client": RoleProfile(
        ca=False, path_length=None, key_cert_sign=False, eku=(ExtendedKeyUsageOID.CLIENT_AUTH,)
    ),
}


@dataclass(frozen=True)
class Issued:
    """A certificate with its private key."""

    cert: x509.Certificate
    key: PrivateKey


def ca_public_key(cert: x509.Certificate) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
    """The key of a CA pgkongtls minted (EC or RSA), typed for signature checks."""
    pub = cert.public_key()
    if not isinstance(pub, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey)):
        raise InputError(f"unsupported key {type(pub).__name__} in {cert.subject.rfc4514_string()}")
    return pub


def generate_key(key_type: str) -> PrivateKey:
    """A fresh private key of one of `KEY_TYPES`."""
    if key_type == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ecdsa-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if key_type.startswith("rsa-") and key_type in KEY_TYPES:
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[4:]))
    raise InputError(f"unknown key type {key_type!r}; use one of {', '.join(KEY_TYPES)}")


class KeyGenerationError(PgkError):
    """The crypto library failed to make a key (entropy, memory): one line, not a worker's traceback."""


def generate_keys(key_type: str, count: int) -> list[PrivateKey]:
    """`count` fresh keys of one type.

    RSA prime search is most of an RSA `init`'s wall time, and OpenSSL runs it
    without holding the GIL, so RSA keys are made on a pool of one thread per core.
    A failure in any worker comes back here as one `KeyGenerationError`.
    """
    workers = min(count, os.cpu_count() or 1)
    pooled = key_type in KEY_TYPES and key_type.startswith("rsa-") and workers >= 2
    try:
        if not pooled:
            return [generate_key(key_type) for _ in range(count)]
        from concurrent.futures import ThreadPoolExecutor  # here: P-256 never pools, and it costs start-up

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pgkongtls-keygen") as pool:
            return list(pool.map(generate_key, [key_type] * count))
    except PgkError:
        raise
    except Exception as exc:  # whatever OpenSSL raised, the user gets one line
        raise KeyGenerationError(f"generating a {key_type} key failed ({exc or type(exc).__name__}); "
                                 "run the command again") from exc


def key_type_of(key: PrivateKey) -> str:
    """The `KEY_TYPES` name of an existing key (used when renewing or reusing)."""
    if isinstance(key, rsa.RSAPrivateKey):
        name = f"rsa-{key.key_size}"
    else:  # the PrivateKey union is RSA or EC; load_key refuses any other algorithm before this
        name = {"secp256r1": "ecdsa-p256", "secp384r1": "ecdsa-p384"}.get(key.curve.name, "")
    if name not in KEY_TYPES:
        raise InputError(f"unsupported key {type(key).__name__}; use one of {', '.join(KEY_TYPES)}")
    return name


def _hash_for(key: PrivateKey) -> hashes.SHA256 | hashes.SHA384:
    """SHA-384 for P-384 signers, SHA-256 for everything else."""
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()


def _random_serial() -> int:
    """Positive, at most 20 octets DER (RFC 5280 4.1.2.2): 159 random bits."""
    return secrets.randbits(159) | 1


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _check_cn(cn: str) -> str:
    """CNs are at most 64 characters (X.520 ub-common-name) and printable."""
    if any("\ud800" <= c <= "\udfff" for c in cn):
        raise InputError(f"common name {cn!r} is not valid UTF-8 text")
    if not cn or len(cn.encode()) > 64:  # cryptography counts the limit in UTF-8 bytes, not characters
        raise InputError(f"common name {cn!r} is {len(cn.encode())} bytes in UTF-8; "
                         "it must be 1 to 64 bytes (64 ASCII characters, fewer for accented ones)")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in cn):
        raise InputError(f"common name {cn!r} contains a control character")
    return cn


def _check_days(days: int, what: str) -> int:
    if days < 1:
        raise InputError(f"{what} must be at least 1 day, got {days}")
    if days > MAX_DAYS:
        raise InputError(f"{what} must be at most {MAX_DAYS} days, got {days}")
    return days


def longest_days(issuer: x509.Certificate, now: dt.datetime) -> int:
    """The most whole days a certificate signed by `issuer` at `now` can live without outliving it."""
    return (issuer.not_valid_after_utc - now).days


def issuer_level(cert: x509.Certificate) -> str:
    """"root" for a self-signed CA, "intermediate" for one the root signed (what messages call them)."""
    return "root" if cert.issuer == cert.subject else "intermediate"


def check_within(days: int, issuer: x509.Certificate, now: dt.datetime, what: str) -> int:
    """The one rule of init, issue and renew: nothing outlives the CA that signs it (refused, not capped)."""
    limit = longest_days(issuer, now)
    if days > limit:
        expires = issuer.not_valid_after_utc.strftime("%Y-%m-%d")
        fix = f"use {what} {limit} or less" if limit >= 1 else "it expires within a day; renew that CA first"
        raise InputError(f"{what} {days} outlives the {issuer_level(issuer)} CA (it expires {expires}); {fix}")
    return days


def _key_usage(role: Role, key: PrivateKey) -> x509.KeyUsage:
    prof = PROFILE[role]
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=not prof.ca and isinstance(key, rsa.RSAPrivateKey),
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=prof.key_cert_sign,
        crl_sign=prof.ca,
        encipher_only=False,
        decipher_only=False,
    )


#: The option that sets each role's lifetime, for check_within's message.
_OPTION: dict[Role, str] = {"root": "--days-root", "intermediate": "--days-intermediate", "server": "--days",
                            "client": "--days"}


def _build(
    *,
    role: Role,
    subject_cn: str,
    key: PrivateKey,
    issuer: Issued | None,
    days: int,
    now: dt.datetime,
    path_length: int | None,
    sans: list[x509.GeneralName] | None = None,
    extra_eku: tuple[x509.ObjectIdentifier, ...] = (),
) -> Issued:
    """What every certificate shares: serial, validity, SKI/AKI, profile, signature.

    `issuer=None` means self-signed (root CA or self-signed test leaf).
    """
    prof = PROFILE[role]
    if issuer is not None:
        check_within(days, issuer.cert, now, _OPTION[role])
    public = key.public_key()
    ski = x509.SubjectKeyIdentifier.from_public_key(public)
    signer = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(_check_cn(subject_cn)))
        .issuer_name(issuer.cert.subject if issuer else _name(subject_cn))
        .public_key(public)
        .serial_number(_random_serial())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=prof.ca, path_length=path_length), critical=True)
        .add_extension(_key_usage(role, key), critical=True)
        .add_extension(ski, critical=False)
    )
    if role != "root":  # a self-signed test leaf names itself: strict validators want an AKI on every EE
        issuer_ski = (
            issuer.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value if issuer else ski
        )
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski), critical=False
        )
    if prof.eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage([*prof.eku, *extra_eku]), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return Issued(cert=builder.sign(signer, _hash_for(signer)), key=key)


def make_root(
    *, cn: str, key: PrivateKey, days: int = DEFAULT_DAYS_ROOT, with_intermediate: bool = True, now: dt.datetime
) -> Issued:
    """Self-signed root CA; pathlen 1 over an intermediate, 0 when it signs leaves directly."""
    return _build(
        role="root", subject_cn=cn, key=key, issuer=None,
        days=_check_days(days, "--days-root"), now=now,
        path_length=1 if with_intermediate else 0,
    )


def make_intermediate(
    *, cn: str, key: PrivateKey, issuer: Issued, days: int = DEFAULT_DAYS_INTERMEDIATE, now: dt.datetime
) -> Issued:
    """Intermediate CA signed by the root, pathlen 0."""
    return _build(
        role="intermediate", subject_cn=cn, key=key, issuer=issuer,
        days=_check_days(days, "--days-intermediate"), now=now, path_length=0,
    )


def server_also_client(eku: str) -> bool:
    """Whether an `--eku` choice (SERVER_EKUS) adds clientAuth to a server certificate."""
    if eku not in SERVER_EKUS:
        raise InputError(f"unknown --eku {eku!r}; use one of: {', '.join(SERVER_EKUS)}")
    return eku == "server,client"


def has_client_auth(cert: x509.Certificate) -> bool:
    """A server certificate minted with `--eku server,client` keeps that purpose when renewed."""
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return ExtendedKeyUsageOID.CLIENT_AUTH in eku


def make_server(
    *, hosts: list[str], key: PrivateKey, issuer: Issued | None, days: int = DEFAULT_DAYS_LEAF,
    now: dt.datetime, cn: str | None = None, also_client: bool = False,
) -> Issued:
    """PostgreSQL server leaf: serverAuth, every host in the SAN, first host as CN.

    `also_client` adds clientAuth (`--eku server,client`, see SERVER_EKUS for why);
    `issuer=None` makes the self-signed test certificate.
    """
    if not hosts:
        raise InputError("at least one --db-host is needed")
    sans = [parse_host(h) for h in hosts]
    if also_client:
        warnings.warn(PgkWarning(
            f"the server certificate for {hosts[0]} also carries clientAuth (--eku server,client), for charts whose "
            "probes present it as a client certificate (Bitnami); PostgreSQL accepts it as a client too, so map "
            "its CN to no role it should not have"), stacklevel=2)
    return _build(
        role="server", subject_cn=cn or host_text(sans[0]), key=key, issuer=issuer,
        days=_check_days(days, "--days"), now=now, path_length=None, sans=sans,
        extra_eku=(ExtendedKeyUsageOID.CLIENT_AUTH,) if also_client else (),
    )


def make_client(
    *, cn: str, key: PrivateKey, issuer: Issued | None, days: int = DEFAULT_DAYS_LEAF, now: dt.datetime
) -> Issued:
    """Kong client leaf: clientAuth only; CN is what PostgreSQL matches against the role."""
    return _build(
        role="client", subject_cn=cn, key=key, issuer=issuer,
        days=_check_days(days, "--days"), now=now, path_length=None,
    )


def utcnow() -> dt.datetime:
    """The default clock; every role function takes `now` so tests can move it."""
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


# ---------------------------------------------------------------- PEM files and the self-check
# Shared by the init planner (pki) and the day-2 planner (lifecycle), which stay independent.


class SelfCheckError(PgkError):
    """A minted chain failed verification: a bug in pgkongtls, never the user's fault."""


def cert_pem(*cs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in cs)


def key_pem(key: PrivateKey, passphrase: bytes | None = None) -> bytes:
    """PKCS#8 PEM; leaf keys stay unencrypted because PostgreSQL and Kong read them plain."""
    if passphrase:
        from pgkongtls.keywrap import encrypted_pkcs8_pem  # here: loads PBKDF2 and AES, which plain keys skip

        return encrypted_pkcs8_pem(key, passphrase)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def validate_db_user(user: str) -> str:
    """A PostgreSQL role name that can go into a CN and a config line unquoted-safe."""
    if not user or len(user.encode()) > 63:
        raise InputError(f"invalid --db-user {user!r}: must be 1 to 63 bytes (PostgreSQL's NAMEDATALEN)")
    if any(c in user for c in "\"\\,#") or any(ord(c) < 0x21 or ord(c) == 0x7F for c in user):
        raise InputError(f"invalid --db-user {user!r}: spaces, quotes, commas, # and control characters are not allowed")
    return user


def subject_for(host: str) -> x509.DNSName | x509.IPAddress:
    """The verification subject for a host string (as libpq would match it)."""
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def client_policy() -> tuple[v.ExtensionPolicy, v.ExtensionPolicy]:
    """Client leaves carry no SAN (PostgreSQL matches the CN), so relax the EE SAN rule."""
    ee = v.ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.SubjectAlternativeName, v.Criticality.AGNOSTIC, None
    )
    return v.ExtensionPolicy.webpki_defaults_ca(), ee


def leaf_verifier(anchors: list[x509.Certificate], *, server: bool, host: str,
                  at: dt.datetime) -> v.ServerVerifier | v.ClientVerifier:
    """cryptography's strict verifier for a server leaf (matching `host`) or a client leaf, at `at`."""
    builder = v.PolicyBuilder().store(v.Store(anchors)).time(at)
    if server:
        return builder.build_server_verifier(subject_for(host))
    ca_policy, ee_policy = client_policy()
    return builder.extension_policies(ca_policy=ca_policy, ee_policy=ee_policy).build_client_verifier()


def check_leaf(verifier: v.ServerVerifier | v.ClientVerifier, leaf: x509.Certificate,
               intermediates: list[x509.Certificate]) -> None:
    """One minted leaf through `verifier`; a failure is pgkongtls's bug, never the user's input."""
    try:
        with deferred_interrupt():  # Ctrl-C inside the verifier would read as a bad signature
            verifier.verify(leaf, intermediates)
    except v.VerificationError as exc:
        raise SelfCheckError(f"self-check failed, this is a pgkongtls bug: {exc}") from None


def self_check(
    *, anchors: list[x509.Certificate], intermediates: list[x509.Certificate],
    server: x509.Certificate | None, client: x509.Certificate | None, host: str, now: dt.datetime,
) -> None:
    """Verify what was just minted with cryptography's strict RFC 5280 validator."""
    at = now + dt.timedelta(seconds=1)
    if server is not None:
        check_leaf(leaf_verifier(anchors, server=True, host=host, at=at), server, intermediates)
    if client is not None:
        check_leaf(leaf_verifier(anchors, server=False, host="", at=at), client, intermediates)
