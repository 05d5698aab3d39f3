"""`issue`: mint new server or client leaves from the issuing CA, and the plan both issue and renew fill."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

from pgkongtls import DEFAULT_DAYS_LEAF, certs
from pgkongtls.certs import PrivateKey, cert_pem, key_pem
from pgkongtls.errors import InputError, StateError
from pgkongtls.hostnames import parse_host
from pgkongtls.lifecycle.base import Ca, LeafRequest, Progress, Reader, check_days, client_cn, must, validate_name
from pgkongtls.lifecycle.check import LeafChecker
from pgkongtls.manifest import CertEntry, Change, Manifest, backup_name, entry_for, host_text


def max_days(ca: Ca, now: dt.datetime) -> int:
    left = certs.longest_days(ca.certs[ca.issuing], now)
    if left < 1:
        raise StateError(f"the {ca.issuing} CA expires within a day; re-create the PKI with pgkongtls init --force")
    return left


def leaf_days(ca: Ca, days: int, now: dt.datetime) -> int:
    """A leaf never outlives the CA that signs it (certs.check_within), checked before any key is made."""
    max_days(ca, now)
    return certs.check_within(check_days(days, "--days"), ca.certs[ca.issuing], now, "--days")


def mint(
    m: Manifest, ca: Ca, *, name: str, role: str, cn: str, hosts: tuple[str, ...], key: PrivateKey,
    days: int, now: dt.datetime, file: str, key_file: str, also_client: bool = False,
    checker: LeafChecker | None = None,
) -> tuple[CertEntry, bytes, bytes]:
    """Sign one leaf with the issuing CA, self-check it (as a client too when it is one), describe it.

    A run minting many leaves passes one `checker`, so the chain is checked once, not per leaf.
    """
    signer = ca.signer(ca.issuing)
    if role == "server":
        issued = certs.make_server(hosts=list(hosts), key=key, issuer=signer, days=days, now=now, cn=cn,
                                   also_client=also_client)
    else:
        issued = certs.make_client(cn=cn, key=key, issuer=signer, days=days, now=now)
    (checker or LeafChecker(ca, now)).check(
        issued.cert, server=role == "server", client=role == "client" or also_client, host=hosts[0] if hosts else "",
    )
    bundle = tuple(ca.anchors_and_intermediates()[1]) if m.bundle else ()
    entry = entry_for(issued.cert, name=name, role=role, issuer=ca.issuing, file=file, key_file=key_file)
    return entry, cert_pem(issued.cert, *bundle), key_pem(issued.key)


@dataclass
class Plan:
    """Accumulates one Change.

    The entries are one dict copied once, not a new Manifest per leaf (`with_cert` copies every
    entry: O(N) per leaf, O(N^2) for a fleet, and O(N x PKI size) on a big PKI).
    """

    base: Manifest
    entries: dict[str, CertEntry]
    files: dict[str, bytes]
    private: set[str]
    replaces: set[str]
    done: list[CertEntry]

    @classmethod
    def on(cls, m: Manifest) -> Plan:
        return cls(m, dict(m.certificates), {}, set(), set(), [])

    @property
    def manifest(self) -> Manifest:
        return replace(self.base, certificates=dict(self.entries))

    def retire(self, old: CertEntry, read: Reader) -> None:
        """Keep the old files as NAME.crt.<serial>.bak; a revoked entry stays listed for the CRL."""
        bak_crt, bak_key = backup_name(old.file, old.serial), backup_name(old.key_file, old.serial)
        self.files[bak_crt] = must(read(old.file), old.file)
        key = read(old.key_file)
        if key is not None:
            self.files[bak_key] = key
            self.private.add(bak_key)
        if old.revoked:
            archived = replace(old, name=f"{old.name}@{old.serial}", file=bak_crt, key_file=bak_key)
            self.entries[archived.name] = archived
        self.replaces |= {old.file, old.key_file}

    def add(self, entry: CertEntry, crt: bytes, key: bytes) -> None:
        self.entries[entry.name] = entry
        self.files[entry.file] = crt
        self.files[entry.key_file] = key
        self.private.add(entry.key_file)
        self.done.append(entry)

    def change(self) -> Change:
        return Change(self.manifest, self.files, frozenset(self.private), frozenset(self.replaces), tuple(self.done))


def plan_issue(
    m: Manifest, ca: Ca, requests: list[LeafRequest], read: Reader, *, days: int = DEFAULT_DAYS_LEAF,
    key_type: str | None = None, force: bool = False, now: dt.datetime | None = None, progress: Progress | None = None,
) -> Change:
    """Mint new server or client leaves; an existing name needs `force` and is kept as .bak."""
    now = now or certs.utcnow()
    days = leaf_days(ca, days, now)
    key_type = key_type or m.key_type
    plan = Plan.on(m)
    checker = LeafChecker(ca, now)
    seen: set[str] = set()
    for req in requests:
        name = validate_name(req.name)
        if name in seen:
            raise InputError(f"--name {name} is given twice")
        seen.add(name)
        old = m.certificates.get(name)
        if old is not None:
            if old.role != req.role:
                raise InputError(f"{name} is a {old.role} certificate; choose another --name")
            if not force:
                raise StateError(f"{name} already exists in this PKI; pass --force to replace it, or renew it")
            plan.retire(old, read)
        if req.role == "server":
            if not req.hosts:
                raise InputError("issue server needs at least one --db-host")
            hosts = tuple(host_text(parse_host(h)) for h in req.hosts)
            cn = req.cn or hosts[0]
        else:
            hosts, cn = (), client_cn(req.cn, name, m.db_user)
        entry, crt, key = mint(
            m, ca, name=name, role=req.role, cn=cn, hosts=hosts, key=certs.generate_key(key_type),
            days=days, now=now, file=f"{name}.crt", key_file=f"{name}.key",
            also_client=req.also_client and req.role == "server", checker=checker,
        )
        plan.add(entry, crt, key)
        if progress is not None:
            progress(len(plan.done), len(requests))
    return plan.change()
