"""Whole-PKI planning: mint everything in memory, self-check it, describe the files.

Nothing here touches the disk; `fsio` writes the returned `FileSet` in one
transaction, so a failure anywhere leaves the target directory untouched.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import secrets
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import verification as v

from pgkongtls import certs
from pgkongtls.certs import Issued, PrivateKey
from pgkongtls.errors import InputError, PgkError, deferred_interrupt
from pgkongtls.keywrap import encrypted_pkcs8_pem
from pgkongtls.manifest import MANIFEST_NAME, Manifest, dumps, entry_for, host_text

CHAIN_FILE = "chain.crt"


class SelfCheckError(PgkError):
    """A minted chain failed verification: a bug in pgkongtls, never the user's fault."""


@dataclass(frozen=True)
class InitOptions:
    """What `pgkongtls init` needs; defaults are the source document's values."""

    chain: str = "intermediate"
    hosts: tuple[str, ...] = ("localhost",)
    db_user: str = "kong"
    root_cn: str | None = None
    intermediate_cn: str | None = None
    key_type: str = certs.DEFAULT_KEY_TYPE
    days_root: int = 3650
    days_intermediate: int = 1825
    days: int = 365
    bundle: bool = True


@dataclass(frozen=True)
class SelfSignedOptions:
    """What `pgkongtls self-signed --test` needs."""

    hosts: tuple[str, ...] = ("localhost",)
    db_user: str = "kong"
    key_type: str = certs.DEFAULT_KEY_TYPE
    days: int = 365


@dataclass(frozen=True)
class FileSet:
    """Files to write, by name. `private` names are keys: 0600 from their first byte."""

    manifest: Manifest
    files: dict[str, bytes]
    private: frozenset[str] = field(default_factory=frozenset)

    def all_files(self) -> dict[str, bytes]:
        """Every file including the manifest, which is written last."""
        return {**self.files, MANIFEST_NAME: dumps(self.manifest).encode()}


def cert_pem(*cs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in cs)


def key_pem(key: PrivateKey, passphrase: bytes | None = None) -> bytes:
    """PKCS#8 PEM; leaf keys stay unencrypted because PostgreSQL and Kong read them plain."""
    if passphrase:
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


def _default_cn(what: str) -> str:
    """Distinguishable defaults so two PKIs never share a CA name."""
    return f"pgkongtls {what} {secrets.token_hex(3)}"


def _check_hosts(hosts: tuple[str, ...]) -> tuple[str, ...]:
    if not hosts:
        raise InputError("at least one --db-host is needed")
    return tuple(host_text(certs.parse_host(h)) for h in hosts)


def plan_init(opts: InitOptions, *, now: dt.datetime | None = None, ca_passphrase: bytes | None = None) -> FileSet:
    """Mint root [→ intermediate] → server + client, self-check, and lay out the files.

    `ca_passphrase` encrypts the CA keys only; leaf keys stay plain for PostgreSQL and Kong.
    """
    if opts.chain not in ("intermediate", "root"):
        raise InputError(f"unknown chain {opts.chain!r}; use intermediate or root")
    now = now or certs.utcnow()
    hosts = _check_hosts(opts.hosts)
    user = validate_db_user(opts.db_user)
    with_int = opts.chain == "intermediate"
    keys = iter(certs.generate_keys(opts.key_type, 4 if with_int else 3))
    root = certs.make_root(
        cn=opts.root_cn or _default_cn("root CA"), key=next(keys),
        days=opts.days_root, with_intermediate=with_int, now=now,
    )
    issuing = root
    inter: Issued | None = None
    if with_int:
        inter = certs.make_intermediate(
            cn=opts.intermediate_cn or _default_cn("intermediate CA"),
            key=next(keys), issuer=root, days=opts.days_intermediate, now=now,
        )
        issuing = inter
    server = certs.make_server(hosts=list(hosts), key=next(keys), issuer=issuing, days=opts.days, now=now)
    client = certs.make_client(cn=user, key=next(keys), issuer=issuing, days=opts.days, now=now)
    issuing_name = "intermediate" if with_int else "root"

    manifest = Manifest(
        mode="ca", chain=opts.chain, key_type=opts.key_type, db_user=user, hosts=hosts, bundle=opts.bundle,
    )
    manifest = manifest.with_cert(entry_for(root.cert, name="root", role="root", issuer=None))
    files = {"root.crt": cert_pem(root.cert), "root.key": key_pem(root.key, ca_passphrase)}
    extra: tuple[x509.Certificate, ...] = ()
    if inter is not None:
        manifest = manifest.with_cert(entry_for(inter.cert, name="intermediate", role="intermediate", issuer="root"))
        files |= {"intermediate.crt": cert_pem(inter.cert), "intermediate.key": key_pem(inter.key, ca_passphrase)}
        extra = (inter.cert,) if opts.bundle else ()
    for name, leaf in (("server", server), ("client", client)):
        manifest = manifest.with_cert(entry_for(leaf.cert, name=name, role=name, issuer=issuing_name))
        files |= {f"{name}.crt": cert_pem(leaf.cert, *extra), f"{name}.key": key_pem(leaf.key)}
    files[CHAIN_FILE] = cert_pem(*((inter.cert,) if inter else ()), root.cert)

    self_check(
        anchors=[root.cert], intermediates=[inter.cert] if inter else [],
        server=server.cert, client=client.cert, host=hosts[0], now=now,
    )
    return FileSet(manifest=manifest, files=files, private=frozenset(n for n in files if n.endswith(".key")))


def plan_self_signed(opts: SelfSignedOptions, *, now: dt.datetime | None = None) -> FileSet:
    """The test-only pair: each certificate is the other side's trust anchor."""
    now = now or certs.utcnow()
    hosts = _check_hosts(opts.hosts)
    user = validate_db_user(opts.db_user)
    server = certs.make_server(hosts=list(hosts), key=certs.generate_key(opts.key_type), issuer=None, days=opts.days, now=now)
    client = certs.make_client(cn=user, key=certs.generate_key(opts.key_type), issuer=None, days=opts.days, now=now)
    manifest = Manifest(mode="self-signed", chain=None, key_type=opts.key_type, db_user=user, hosts=hosts, bundle=False)
    files: dict[str, bytes] = {}
    for name, leaf in (("server", server), ("client", client)):
        manifest = manifest.with_cert(entry_for(leaf.cert, name=name, role=name, issuer=None))
        files |= {f"{name}.crt": cert_pem(leaf.cert), f"{name}.key": key_pem(leaf.key)}
    self_check(anchors=[server.cert], intermediates=[], server=server.cert, client=None, host=hosts[0], now=now)
    self_check(anchors=[client.cert], intermediates=[], server=None, client=client.cert, host=hosts[0], now=now)
    return FileSet(manifest=manifest, files=files, private=frozenset({"server.key", "client.key"}))


def subject_for(host: str) -> v.DNSName | v.IPAddress:
    """The verification subject for a host string (as libpq would match it)."""
    try:
        return v.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return v.DNSName(host)


def _client_policy() -> tuple[v.ExtensionPolicy, v.ExtensionPolicy]:
    """Client leaves carry no SAN (PostgreSQL matches the CN), so relax the EE SAN rule."""
    ee = v.ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.SubjectAlternativeName, v.Criticality.AGNOSTIC, None
    )
    return v.ExtensionPolicy.webpki_defaults_ca(), ee


def self_check(
    *, anchors: list[x509.Certificate], intermediates: list[x509.Certificate],
    server: x509.Certificate | None, client: x509.Certificate | None, host: str, now: dt.datetime,
) -> None:
    """Verify what was just minted with cryptography's strict RFC 5280 validator."""
    store = v.Store(anchors)
    at = now + dt.timedelta(seconds=1)
    try:
        with deferred_interrupt():  # Ctrl-C inside the verifier would read as a bad signature
            if server is not None:
                (v.PolicyBuilder().store(store).time(at)
                 .build_server_verifier(subject_for(host)).verify(server, intermediates))
            if client is not None:
                ca_policy, ee_policy = _client_policy()
                (v.PolicyBuilder().store(store).time(at)
                 .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
                 .build_client_verifier().verify(client, intermediates))
    except v.VerificationError as exc:
        raise SelfCheckError(f"self-check failed, this is a pgkongtls bug: {exc}") from None
