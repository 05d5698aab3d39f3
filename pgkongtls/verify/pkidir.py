"""The PKI directory: every file the manifest (or the source document's layout) names, and the manifest's CRL.

A key in a PKI directory belongs to whoever made the directory, so there only
group and world bits are an error (PostgreSQL's owner rule is for the key that
ssl_key_file names: see postgres.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography import x509

from pgkongtls.consumers import libpq_host_check
from pgkongtls.inputs_model import CertFile, CrlFile, KeyFile, Missing, PkiDir, PkiEntry
from pgkongtls.verify.chain import (
    ChainResult,
    Verifier,
    check_chain_order,
    check_crls,
    leaf_chain_findings,
    name_of,
    self_issued,
)
from pgkongtls.verify.findings import ERROR, WARNING, Finding, Seen
from pgkongtls.verify.profile import check_encrypted, check_key_pair, check_profile, check_validity

_RESTORE = "restore it, or re-create the PKI with pgkongtls init --force"


def _shared_anchors(pki: PkiDir) -> list[x509.Certificate]:
    """The directory's own trust anchors: its root, else the self-signed certificates in chain.crt."""
    roots = [c for e in pki.role("root") if isinstance(e.cert, CertFile) for c in e.cert.certs[:1]]
    if roots:
        return roots
    if isinstance(pki.chain, CertFile):
        return [c for c in pki.chain.certs if self_issued(c)]
    return []


def pki_anchors(pki: PkiDir, leaf: x509.Certificate) -> list[x509.Certificate]:
    """The directory's trust anchors: its root, else the self-signed certificates in chain.crt, else the leaf."""
    return _shared_anchors(pki) or [leaf]  # self-signed: each side trusts the other's certificate directly


def pki_pool(pki: PkiDir) -> list[x509.Certificate]:
    """Every CA certificate the directory holds besides the anchors, for OpenSSL's untrusted list."""
    pool = [c for e in pki.role("intermediate") if isinstance(e.cert, CertFile) for c in e.cert.certs]
    if isinstance(pki.chain, CertFile):
        pool += list(pki.chain.certs)
    return pool


@dataclass
class PkiTrust:
    """The PKI's anchors and CA pool as OpenSSL stores, built once per run, and each leaf's verdict.

    check_pki and check_pki_crl share one, so a client's chain is built once for both (it was built
    three times per leaf, each time with a fresh store: minutes on 10,000 leaves).
    """

    pki: PkiDir
    now: dt.datetime
    _stores: tuple[Verifier, Verifier] | None = None
    _shared: bool | None = None
    _verdicts: dict[int, tuple[x509.Certificate, ChainResult, list[Finding]]] = field(default_factory=dict)

    def _verifiers(self, leaf: x509.Certificate) -> tuple[Verifier, Verifier, bool]:
        """(lenient, strict, shared): the run's stores, or a leaf's own when the PKI has no anchor (self-signed)."""
        if self._shared is None:
            anchors, pool = _shared_anchors(self.pki), pki_pool(self.pki)
            self._shared = bool(anchors)
            if anchors:
                self._stores = (Verifier(anchors, untrusted=pool, now=self.now),
                                Verifier(anchors, untrusted=pool, now=self.now, strict=True))
        if self._stores is not None:
            return (*self._stores, True)
        pool = pki_pool(self.pki)
        return (Verifier([leaf], untrusted=pool, now=self.now),
                Verifier([leaf], untrusted=pool, now=self.now, strict=True), False)

    def leaf(self, leaf: x509.Certificate, extra: Sequence[x509.Certificate], role: str,
             file: str) -> tuple[ChainResult, list[Finding]]:
        """The leaf's chain and its chain findings, computed on first call."""
        got = self._verdicts.get(id(leaf))
        if got is not None and got[0] is leaf:
            return got[1], got[2]
        lenient, strict, shared = self._verifiers(leaf)
        res, found = leaf_chain_findings(leaf, role, file, lenient=lenient, strict=strict, extra=extra,
                                         trust_name=f"the PKI's {'root' if shared else 'own certificate'}")
        self._verdicts[id(leaf)] = (leaf, res, found)
        return res, found


def check_dir_key_mode(key: KeyFile) -> list[Finding]:
    """A PKI directory belongs to whoever made it: only group and world bits are wrong."""
    if key.mode & 0o077:
        return [Finding("key-mode", ERROR, key.path,
                        f"{key.path} has mode {key.mode:04o}: group or others can read a private key",
                        f"chmod 0600 {key.path}")]
    return []


def check_pki(pki: PkiDir, *, now: dt.datetime, warn_days: int, seen: Seen,
              served_keys: frozenset[str] = frozenset(), trust: PkiTrust | None = None) -> list[Finding]:
    """Each live entry, chain.crt, and libpq's host rule for every host the manifest records.

    `served_keys` are the real paths of keys a given postgresql.conf or kong.conf reads in place: their
    consumer's mode rule (PostgreSQL's root:postgres 0640, say) judges them, not the PKI's 0600, since one
    file cannot satisfy both and following one fix would trigger the other.
    """
    out: list[Finding] = []
    strict_manifest = pki.manifest is not None
    trust = trust or PkiTrust(pki, now)
    for e in pki.entries:
        if e.revoked:
            continue
        out += _check_entry(trust, e, now=now, warn_days=warn_days, seen=seen, strict_manifest=strict_manifest,
                            served_keys=served_keys)
    if isinstance(pki.chain, Missing):
        out.append(Finding("file-missing", ERROR, pki.chain.path, f"{pki.chain.path} is missing", _RESTORE))
    elif pki.chain is not None:
        out += check_chain_order(pki.chain)
        if pki.chain.real:
            seen.first(pki.chain.real)
        for c in pki.chain.certs:
            out += check_validity(c, pki.chain.path, now, warn_days)
    if pki.manifest is not None:
        out += _check_hosts(pki, pki.manifest.hosts)
    return out


def _check_hosts(pki: PkiDir, hosts: Sequence[str]) -> list[Finding]:
    """Each server certificate passes libpq verify-full for its own hosts, as issued (a replica's are not the
    primary's); init's `server`, and one the manifest does not know, also for the PKI's --db-host list."""
    out: list[Finding] = []
    m = pki.manifest
    for e in pki.role("server"):
        if not isinstance(e.cert, CertFile):
            continue
        entry = m.certificates.get(e.name) if m is not None else None
        own = tuple(entry.sans) if entry is not None else ()
        targets = own + tuple(h for h in hosts if h not in own) if e.name == "server" or not own else own
        for host in targets:
            ok, why = libpq_host_check(e.cert.certs[0], host)
            if not ok:
                out.append(Finding("server-host", ERROR, e.cert.path, f"libpq verify-full to {host} fails: {why}",
                                   f"re-issue it: pgkongtls issue server --name {e.name} --db-host {host} --force"))
    return out


def _check_entry(trust: PkiTrust, e: PkiEntry, *, now: dt.datetime, warn_days: int, seen: Seen,
                 strict_manifest: bool, served_keys: frozenset[str]) -> list[Finding]:
    """One certificate (and its key): present, as recorded, profile, dates, key, and its chain to the PKI's root."""
    out: list[Finding] = []
    if isinstance(e.cert, Missing):
        return [Finding("file-missing", ERROR, e.cert.path, f"{e.cert.path} is missing", _RESTORE)]
    if isinstance(e.key, Missing):
        if strict_manifest:
            out.append(Finding("file-missing", ERROR, e.key.path, f"{e.key.path} is missing", _RESTORE))
        elif e.role in ("server", "client"):
            out.append(Finding("file-missing", WARNING, e.key.path,
                               f"{e.key.path} is not here, so its match with {e.cert.path} is not checked",
                               "run verify where the key is, or pass --postgresql-conf / --kong-conf"))
    leaf = e.cert.certs[0]
    if e.damage is not None:  # the check and the words the day-2 commands refuse the file with (pkiload)
        out.append(Finding("manifest-mismatch", ERROR, e.cert.path, e.damage.what, e.damage.fix))
    if seen.first(e.cert.real):
        out += check_profile(leaf, e.role, e.cert.path)
        out += check_validity(leaf, e.cert.path, now, warn_days)
        if e.role in ("server", "client"):
            for extra in e.cert.certs[1:]:
                out += check_validity(extra, e.cert.path, now, warn_days)
    if isinstance(e.key, KeyFile) and seen.first(e.key.real):
        out += check_key_pair(e.cert, e.key, e.role)
        if e.key.real not in served_keys:
            out += check_dir_key_mode(e.key)
        out += check_encrypted(e.key, e.role)
    if e.role in ("server", "client"):
        out += trust.leaf(leaf, e.cert.certs[1:], e.role, e.cert.path)[1]
    return out


def check_pki_crl(pki: PkiDir, *, now: dt.datetime, trust: PkiTrust | None = None) -> list[Finding]:
    """The manifest's CRL, judged as PostgreSQL would judge each client certificate with it."""
    if isinstance(pki.crl, Missing):
        return [Finding("file-missing", ERROR, pki.crl.path, f"{pki.crl.path} is missing (pgkongtls.json names it)",
                        "restore it, or run pgkongtls revoke again to write a fresh CRL")]
    out: list[Finding] = []
    assert isinstance(pki.crl, CrlFile)
    trust = trust or PkiTrust(pki, now)
    for e in pki.role("client"):
        if not isinstance(e.cert, CertFile):
            continue
        leaf = e.cert.certs[0]
        res = trust.leaf(leaf, e.cert.certs[1:], e.role, e.cert.path)[0]
        if res.ok:
            out += check_crls(res.chain, pki.crl, now=now, who=f"the client certificate {name_of(leaf)}")
    return out
