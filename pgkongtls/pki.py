"""Whole-PKI planning: mint everything in memory, self-check it, describe the files.

Nothing here touches the disk; ops writes the returned `Change` in one fsio
transaction, so a failure anywhere leaves the target directory untouched.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from cryptography import x509

from pgkongtls import DEFAULT_DAYS_INTERMEDIATE, DEFAULT_DAYS_LEAF, DEFAULT_DAYS_ROOT, DEFAULT_SERVER_EKU, certs
from pgkongtls.certs import Issued, SelfCheckError, cert_pem, key_pem, self_check, validate_db_user
from pgkongtls.errors import InputError
from pgkongtls.hostnames import parse_host
from pgkongtls.manifest import CHAIN_FILE, Change, Manifest, entry_for, host_text

__all__ = ["InitOptions", "SelfCheckError", "SelfSignedOptions", "cert_pem", "key_pem", "plan_init",
           "plan_self_signed", "self_check", "validate_db_user"]

@dataclass(frozen=True)
class InitOptions:
    """What `pgkongtls init` needs; defaults are the source document's values."""

    chain: str = "intermediate"
    hosts: tuple[str, ...] = ("localhost",)
    db_user: str = "kong"
    root_cn: str | None = None
    intermediate_cn: str | None = None
    key_type: str = certs.DEFAULT_KEY_TYPE
    days_root: int = DEFAULT_DAYS_ROOT
    days_intermediate: int = DEFAULT_DAYS_INTERMEDIATE
    days: int = DEFAULT_DAYS_LEAF
    bundle: bool = True
    server_eku: str = DEFAULT_SERVER_EKU


@dataclass(frozen=True)
class SelfSignedOptions:
    """What `pgkongtls self-signed --test` needs."""

    hosts: tuple[str, ...] = ("localhost",)
    db_user: str = "kong"
    key_type: str = certs.DEFAULT_KEY_TYPE
    days: int = DEFAULT_DAYS_LEAF


def _default_cn(what: str) -> str:
    """Distinguishable defaults so two PKIs never share a CA name."""
    return f"pgkongtls {what} {secrets.token_hex(3)}"


def _check_hosts(hosts: tuple[str, ...]) -> tuple[str, ...]:
    if not hosts:
        raise InputError("at least one --db-host is needed")
    return tuple(host_text(parse_host(h)) for h in hosts)


def plan_init(opts: InitOptions, *, now: dt.datetime | None = None, ca_passphrase: bytes | None = None) -> Change:
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
    also_client = certs.server_also_client(opts.server_eku)
    server = certs.make_server(hosts=list(hosts), key=next(keys), issuer=issuing, days=opts.days, now=now,
                               also_client=also_client)
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
    if also_client:  # the server leaf must pass a client verifier too, or the probe it is for fails
        self_check(anchors=[root.cert], intermediates=[inter.cert] if inter else [], server=None,
                   client=server.cert, host=hosts[0], now=now)
    return Change(manifest=manifest, files=files, private=frozenset(n for n in files if n.endswith(".key")))


def plan_self_signed(opts: SelfSignedOptions, *, now: dt.datetime | None = None) -> Change:
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
    return Change(manifest=manifest, files=files, private=frozenset({"server.key", "client.key"}))
