"""Day 2 planning: issue more leaves, renew them, revoke them with CRLs, report status.

Pure like pki.py: a manifest, the CA material and a file reader go in, a `Change`
(the new manifest plus the files to write) comes out, and ops.py applies it in
one fsio transaction. Nothing here writes; reads go through the injected
`Reader`, so tests can run on a dict and move the clock with `now`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pgkongtls import DEFAULT_CRL_DAYS, DEFAULT_WARN_DAYS, certs
from pgkongtls.certs import Issued, PrivateKey
from pgkongtls.errors import InputError, StateError
from pgkongtls.manifest import MANIFEST_NAME, ROLES, CertEntry, Manifest, dumps, entry_for, fingerprint, host_text, iso, parse_iso
from pgkongtls.pki import CHAIN_FILE, SelfCheckError, cert_pem, key_pem, self_check, validate_db_user

#: Reads one file of the PKI directory by name; None when it does not exist.
Reader = Callable[[str], "bytes | None"]

CRL_FILE = "crl.pem"
#: `status` exit code when a certificate in service or the CRL has expired
#: (1 is any error, 2 is click's usage error).
EXIT_EXPIRED = 3
CA_LEVELS = ("root", "intermediate")
LEAF_ROLES = ("server", "client")
#: Names pgkongtls' own files use (root.crt, chain.crt, crl.pem, pgkongtls.json).
RESERVED_NAMES = frozenset({"root", "intermediate", "chain", "crl", "pgkongtls"})
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_CRL_BLOCK = re.compile(rb"-----BEGIN X509 CRL-----.+?-----END X509 CRL-----\s*", re.DOTALL)
_WINDOW = re.compile(r"([0-9]{1,5})([hdw]?)")

#: `--reason` values (RFC 5280 CRLReason names); unspecified is written as no reason code.
REASONS: dict[str, x509.ReasonFlags] = {
    "unspecified": x509.ReasonFlags.unspecified,
    "keyCompromise": x509.ReasonFlags.key_compromise,
    "affiliationChanged": x509.ReasonFlags.affiliation_changed,
    "superseded": x509.ReasonFlags.superseded,
    "cessationOfOperation": x509.ReasonFlags.cessation_of_operation,
    "privilegeWithdrawn": x509.ReasonFlags.privilege_withdrawn,
}


@dataclass(frozen=True)
class Change:
    """One planned change to a PKI directory, applied by ops in one transaction.

    `replaces` lists existing files the change overwrites on purpose (a renewed
    certificate, crl.pem); any other existing file in `files` is a clash.
    """

    manifest: Manifest
    files: dict[str, bytes]
    private: frozenset[str]
    replaces: frozenset[str]
    done: tuple[CertEntry, ...]

    def all_files(self) -> dict[str, bytes]:
        return {**self.files, MANIFEST_NAME: dumps(self.manifest).encode()}


@dataclass(frozen=True)
class Ca:
    """The CA levels of a PKI: certificates always, keys only for the levels that sign."""

    certs: dict[str, x509.Certificate]
    keys: dict[str, PrivateKey]
    issuing: str

    def signer(self, level: str) -> Issued:
        return Issued(cert=self.certs[level], key=self.keys[level])

    def anchors_and_intermediates(self) -> tuple[list[x509.Certificate], list[x509.Certificate]]:
        return [self.certs["root"]], [c for n, c in self.certs.items() if n != "root"]


@dataclass(frozen=True)
class LeafRequest:
    """One certificate `issue` should mint."""

    name: str
    role: str
    cn: str | None
    hosts: tuple[str, ...] = ()


# ---------------------------------------------------------------- input checks

def validate_name(name: str) -> str:
    """A `--name` that stays a plain file name inside --dir and clashes with nothing of ours."""
    if not _NAME.fullmatch(name):
        raise InputError(
            f"invalid --name {name!r}: use 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    if name in RESERVED_NAMES:
        raise InputError(f"--name {name!r} is reserved for pgkongtls' own files; choose another --name")
    return name


def client_cn(template: str | None, name: str, db_user: str) -> str:
    """The CN for client `name`: the db user by default, `{name}` in the template is replaced."""
    cn = db_user if template is None else template.replace("{name}", name)
    if cn.startswith("/"):
        raise InputError(f"invalid --cn {cn!r}: pg_ident.conf would read a leading '/' as a regular expression")
    try:
        return validate_db_user(cn)
    except InputError as exc:
        raise InputError(str(exc).replace("--db-user", "--cn", 1)) from None


def check_days(days: int, what: str, lo: int = 1, hi: int = 36500) -> int:
    if not lo <= days <= hi:
        raise InputError(f"{what} must be between {lo} and {hi} days, got {days}")
    return days


def parse_window(text: str) -> dt.timedelta:
    """`--expiring-within`: 30d, 12h, 2w, or a bare number of days."""
    m = _WINDOW.fullmatch(text.strip())
    if not m:
        raise InputError(f"invalid --expiring-within {text!r}: use days like 30d (or 12h, 2w)")
    n, unit = int(m.group(1)), m.group(2) or "d"
    return {"h": dt.timedelta(hours=n), "d": dt.timedelta(days=n), "w": dt.timedelta(weeks=n)}[unit]


def lookup(m: Manifest, name: str) -> CertEntry:
    """An existing certificate by name, with the fix when there is none."""
    entry = m.certificates.get(name)
    if entry is None:
        raise StateError(f"no certificate named {name!r} in this PKI; pgkongtls status lists them")
    return entry


# ---------------------------------------------------------------- reading what is on disk

def verify_files(m: Manifest, read: Reader) -> dict[str, x509.Certificate]:
    """Every certificate file must still be what the manifest recorded: refuse hand edits.

    Returns the certificates by name. A leaf file holds exactly its certificate
    plus the bundled intermediate (when init bundled), and chain.crt the CAs.
    """
    inter = m.certificates.get("intermediate")
    bundled = [inter.sha256] if m.bundle and m.mode == "ca" and inter is not None else []
    out: dict[str, x509.Certificate] = {}
    for e in m.certificates.values():
        data = read(e.file)
        if data is None and "@" in e.name:
            continue  # an archived revoked certificate: the CRL needs only its serial
        found = _load_certs(e.file, data)
        got = fingerprint(found[0])
        if got != e.sha256 or [fingerprint(c) for c in found[1:]] != (bundled if e.role in LEAF_ROLES else []):
            raise StateError(
                f"{e.file} differs from what {MANIFEST_NAME} recorded (edited by hand?); restore the file pgkongtls wrote"
            )
        out[e.name] = found[0]
    if m.mode == "ca":
        chain = _load_certs(CHAIN_FILE, read(CHAIN_FILE))
        want = [m.certificates[n].sha256 for n in ("intermediate", "root") if n in m.certificates]
        if [fingerprint(c) for c in chain] != want:
            raise StateError(
                f"{CHAIN_FILE} differs from what {MANIFEST_NAME} recorded (edited by hand?); restore the file pgkongtls wrote"
            )
    return out


def _load_certs(file: str, data: bytes | None) -> list[x509.Certificate]:
    if data is None:
        raise StateError(f"{file} is missing; restore it or re-create the PKI with pgkongtls init --force")
    try:
        found = x509.load_pem_x509_certificates(data)
    except ValueError:
        found = []
    if not found or len(found) != data.count(b"-----BEGIN"):  # a cut-off last block parses as absent
        raise StateError(f"{file} is not a PEM certificate any more (edited by hand?); restore the file pgkongtls wrote")
    return found


def load_key(data: bytes | None, file: str, passphrase: bytes | None) -> PrivateKey:
    """Parse a PEM key; each way it can fail is one line naming the fix."""
    if data is None:
        raise StateError(f"{file} is missing; restore it or re-create the PKI with pgkongtls init --force")
    encrypted = b"ENCRYPTED" in data.split(b"\n", 2)[0] or b"Proc-Type: 4,ENCRYPTED" in data
    if encrypted and passphrase is None:
        raise InputError(f"{file} is encrypted; pass --ca-passphrase-file")
    if not encrypted and passphrase is not None:
        raise InputError(f"{file} is not encrypted; drop --ca-passphrase-file")
    try:
        key: Any = serialization.load_pem_private_key(data, passphrase)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        if encrypted:
            raise InputError(f"wrong CA passphrase for {file}; check --ca-passphrase-file") from None
        raise StateError(f"{file} is not a readable private key (edited by hand?); restore the file pgkongtls wrote") from None
    certs.key_type_of(key)
    return key


def _key_type_of(cert: x509.Certificate) -> str:
    """The `KEY_TYPES` name of a certificate's key, so a renewal keeps the algorithm and size."""
    pub = cert.public_key()
    if isinstance(pub, rsa.RSAPublicKey):
        return f"rsa-{pub.key_size}"
    if isinstance(pub, ec.EllipticCurvePublicKey):
        return {"secp256r1": "ecdsa-p256", "secp384r1": "ecdsa-p384"}.get(pub.curve.name, pub.curve.name)
    raise StateError(f"unsupported key {type(pub).__name__} in {cert.subject.rfc4514_string()}")


def _same_key(key: PrivateKey, cert: x509.Certificate) -> bool:
    der = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return key.public_key().public_bytes(*der) == cert.public_key().public_bytes(*der)


def load_ca(
    m: Manifest, found: dict[str, x509.Certificate], read: Reader, *, passphrase: bytes | None,
    sign_with: Iterable[str],
) -> Ca:
    """The CA certificates, plus the keys of the `sign_with` levels ("issuing" = the leaf signer)."""
    if m.mode != "ca" or m.issuing_ca is None:
        raise StateError("this is a self-signed test PKI: it has no CA to sign with; create one with pgkongtls init")
    levels = [n for n in CA_LEVELS if n in m.certificates]
    wanted = {m.issuing_ca if s == "issuing" else s for s in sign_with}
    keys: dict[str, PrivateKey] = {}
    for level in levels:
        if level not in wanted:
            continue
        entry = m.certificates[level]
        key = load_key(read(entry.key_file), entry.key_file, passphrase)
        if not _same_key(key, found[level]):
            raise StateError(f"{entry.key_file} does not belong to {entry.file}; restore the matching key")
        keys[level] = key
    return Ca(certs={n: found[n] for n in levels}, keys=keys, issuing=m.issuing_ca)


# ---------------------------------------------------------------- issue and renew

def _max_days(ca: Ca, now: dt.datetime) -> int:
    left = (ca.certs[ca.issuing].not_valid_after_utc - now).days
    if left < 1:
        raise StateError(f"the {ca.issuing} CA expires within a day; re-create the PKI with pgkongtls init --force")
    return left


def _leaf_days(ca: Ca, days: int, now: dt.datetime) -> int:
    limit = _max_days(ca, now)
    check_days(days, "--days")
    if days > limit:
        raise InputError(
            f"--days {days} outlives the {ca.issuing} CA (it expires {iso(ca.certs[ca.issuing].not_valid_after_utc)[:10]});"
            f" use --days {limit} or less"
        )
    return days


def _mint(
    m: Manifest, ca: Ca, *, name: str, role: str, cn: str, hosts: tuple[str, ...], key: PrivateKey,
    days: int, now: dt.datetime, file: str, key_file: str,
) -> tuple[CertEntry, bytes, bytes]:
    """Sign one leaf with the issuing CA, self-check it, and describe it for the manifest."""
    signer = ca.signer(ca.issuing)
    if role == "server":
        issued = certs.make_server(hosts=list(hosts), key=key, issuer=signer, days=days, now=now, cn=cn)
    else:
        issued = certs.make_client(cn=cn, key=key, issuer=signer, days=days, now=now)
    anchors, intermediates = ca.anchors_and_intermediates()
    self_check(
        anchors=anchors, intermediates=intermediates, server=issued.cert if role == "server" else None,
        client=issued.cert if role == "client" else None, host=hosts[0] if hosts else "", now=now,
    )
    bundle = tuple(intermediates) if m.bundle else ()
    entry = entry_for(issued.cert, name=name, role=role, issuer=ca.issuing, file=file, key_file=key_file)
    return entry, cert_pem(issued.cert, *bundle), key_pem(issued.key)


@dataclass
class _Plan:
    """Accumulates one Change."""

    manifest: Manifest
    files: dict[str, bytes]
    private: set[str]
    replaces: set[str]
    done: list[CertEntry]

    def retire(self, old: CertEntry, read: Reader) -> None:
        """Keep the old files as NAME.crt.<serial>.bak; a revoked entry stays listed for the CRL."""
        bak_crt, bak_key = f"{old.file}.{old.serial}.bak", f"{old.key_file}.{old.serial}.bak"
        self.files[bak_crt] = _must(read(old.file), old.file)
        key = read(old.key_file)
        if key is not None:
            self.files[bak_key] = key
            self.private.add(bak_key)
        if old.revoked:
            archived = replace(old, name=f"{old.name}@{old.serial}", file=bak_crt, key_file=bak_key)
            self.manifest = self.manifest.with_cert(archived)
        self.replaces |= {old.file, old.key_file}

    def add(self, entry: CertEntry, crt: bytes, key: bytes) -> None:
        self.manifest = self.manifest.with_cert(entry)
        self.files[entry.file] = crt
        self.files[entry.key_file] = key
        self.private.add(entry.key_file)
        self.done.append(entry)

    def change(self) -> Change:
        return Change(self.manifest, self.files, frozenset(self.private), frozenset(self.replaces), tuple(self.done))


def _must(data: bytes | None, file: str) -> bytes:
    if data is None:
        raise StateError(f"{file} is missing; restore it or re-create the PKI with pgkongtls init --force")
    return data


def plan_issue(
    m: Manifest, ca: Ca, requests: list[LeafRequest], read: Reader, *, days: int = 365,
    key_type: str | None = None, force: bool = False, now: dt.datetime | None = None,
) -> Change:
    """Mint new server or client leaves; an existing name needs `force` and is kept as .bak."""
    now = now or certs.utcnow()
    days = _leaf_days(ca, days, now)
    key_type = key_type or m.key_type
    plan = _Plan(m, {}, set(), set(), [])
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
            hosts = tuple(host_text(certs.parse_host(h)) for h in req.hosts)
            cn = req.cn or hosts[0]
        else:
            hosts, cn = (), client_cn(req.cn, name, m.db_user)
        entry, crt, key = _mint(
            m, ca, name=name, role=req.role, cn=cn, hosts=hosts, key=certs.generate_key(key_type),
            days=days, now=now, file=f"{name}.crt", key_file=f"{name}.key",
        )
        plan.add(entry, crt, key)
    return plan.change()


def select_expiring(m: Manifest, window: dt.timedelta, now: dt.datetime) -> list[str]:
    """Leaves in service (not revoked) whose notAfter falls within the window."""
    return sorted(
        e.name for e in m.certificates.values()
        if e.role in LEAF_ROLES and not e.revoked and parse_iso(e.not_after) <= now + window
    )


def plan_renew(
    m: Manifest, ca: Ca, found: dict[str, x509.Certificate], names: list[str], read: Reader, *,
    reuse_key: bool = False, days: int | None = None, now: dt.datetime | None = None,
) -> Change:
    """Re-issue leaves with the same subject, SANs and file names, so no config changes."""
    now = now or certs.utcnow()
    plan = _Plan(m, {}, set(), set(), [])
    for name in dict.fromkeys(names):
        old = lookup(m, name)
        if "@" in name:
            raise InputError(f"{name} is a revoked certificate kept for the CRL; renew {name.split('@')[0]} instead")
        if old.role not in LEAF_ROLES:
            raise InputError(f"{name} is a CA; renew re-issues server and client certificates; for a new CA re-create the PKI with pgkongtls init --force")
        cert = found[name]
        if reuse_key:
            if old.revocation_reason == "keyCompromise":
                raise InputError(f"{name} was revoked for keyCompromise; renew it without --reuse-key")
            key = load_key(read(old.key_file), old.key_file, None)
            if not _same_key(key, cert):
                raise StateError(f"{old.key_file} does not belong to {old.file}; renew without --reuse-key")
        else:
            key = certs.generate_key(_key_type_of(cert))
        lifetime = (parse_iso(old.not_after) - parse_iso(old.not_before) - certs.BACKDATE).days
        want = _leaf_days(ca, days, now) if days is not None else max(1, min(lifetime, _max_days(ca, now)))
        plan.retire(old, read)
        entry, crt, key_bytes = _mint(
            m, ca, name=name, role=old.role, cn=old.cn, hosts=old.sans, key=key, days=want, now=now,
            file=old.file, key_file=old.key_file,
        )
        plan.add(entry, crt, key_bytes)
    return plan.change()


# ---------------------------------------------------------------- revoke and CRLs

def previous_crl_number(data: bytes | None) -> int:
    """Highest CRLNumber in an existing crl.pem (0 when absent or unreadable: it is being replaced)."""
    best = 0
    for block in _CRL_BLOCK.findall(data or b""):
        try:
            crl = x509.load_pem_x509_crl(block)
            best = max(best, crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
        except (ValueError, x509.ExtensionNotFound):
            continue
    return best


def build_crls(m: Manifest, ca: Ca, *, days: int, now: dt.datetime, number: int) -> tuple[bytes, str]:
    """One CRL per CA level, concatenated: PostgreSQL sets CRL_CHECK_ALL, so each level needs one.

    Returns the PEM and the nextUpdate (ISO) to record in the manifest.
    """
    check_days(days, "--crl-days", 1, 3650)
    next_update = now + dt.timedelta(days=days)
    out: list[bytes] = []
    for level in ("intermediate", "root"):
        if level not in ca.certs:
            continue
        signer = ca.signer(level)
        ski = signer.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(signer.cert.subject)
            .last_update(now - certs.BACKDATE)
            .next_update(next_update)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
            .add_extension(x509.CRLNumber(number), critical=False)
        )
        for e in sorted(m.certificates.values(), key=lambda e: e.name):
            if e.revoked and e.issuer == level:
                rc = x509.RevokedCertificateBuilder().serial_number(int(e.serial, 16)).revocation_date(parse_iso(e.revoked))
                if e.revocation_reason and e.revocation_reason != "unspecified":
                    rc = rc.add_extension(x509.CRLReason(REASONS[e.revocation_reason]), critical=False)
                builder = builder.add_revoked_certificate(rc.build())
        crl = builder.sign(signer.key, certs._hash_for(signer.key))
        if not crl.is_signature_valid(signer.cert.public_key()):
            raise SelfCheckError(f"self-check failed, this is a pgkongtls bug: the {level} CRL signature")
        out.append(crl.public_bytes(serialization.Encoding.PEM))
    return b"".join(out), iso(next_update)


def plan_crl(
    m: Manifest, ca: Ca, read: Reader, *, days: int = DEFAULT_CRL_DAYS, now: dt.datetime | None = None,
    done: tuple[CertEntry, ...] = (),
) -> Change:
    """Re-sign the CRLs of every CA level from the manifest's revoked entries."""
    now = now or certs.utcnow()
    file = m.crl_file or CRL_FILE
    number = max(previous_crl_number(read(file)) + 1, int(now.timestamp()))
    pem, next_update = build_crls(m, ca, days=days, now=now, number=number)
    manifest = replace(m, crl_file=file, crl_next_update=next_update)
    return Change(manifest, {file: pem}, frozenset(), frozenset({file}), done)


def plan_revoke(
    m: Manifest, ca: Ca, names: list[str], read: Reader, *, reason: str = "unspecified",
    crl_days: int = DEFAULT_CRL_DAYS, now: dt.datetime | None = None,
) -> Change:
    """Mark leaves revoked and write fresh CRLs that list them."""
    now = now or certs.utcnow()
    if reason not in REASONS:
        raise InputError(f"unknown --reason {reason!r}; use one of {', '.join(REASONS)}")
    check_days(crl_days, "--crl-days", 1, 3650)
    done: list[CertEntry] = []
    for name in dict.fromkeys(names):
        e = lookup(m, name)
        if e.role not in LEAF_ROLES:
            raise InputError(f"{name} is a CA; revoke works on server and client certificates; to replace a CA re-create the PKI with pgkongtls init --force")
        if e.revoked:
            raise StateError(f"{name} is already revoked (since {e.revoked[:10]}); pgkongtls crl re-signs the CRL")
        e = replace(e, revoked=iso(now), revocation_reason=reason)
        m = m.with_cert(e)
        done.append(e)
    return plan_crl(m, ca, read, days=crl_days, now=now, done=tuple(done))


def load_crls(m: Manifest, found: dict[str, x509.Certificate], data: bytes | None) -> list[x509.CertificateRevocationList]:
    """The CRLs in crl.pem, checked against the CA certificates and the manifest's nextUpdate."""
    if not m.crl_file:
        return []
    fix = "re-sign it with pgkongtls crl"
    if data is None:
        raise StateError(f"{m.crl_file} is missing; {fix}")
    crls: list[x509.CertificateRevocationList] = []
    for block in _CRL_BLOCK.findall(data):
        try:
            crls.append(x509.load_pem_x509_crl(block))
        except ValueError:
            raise StateError(f"{m.crl_file} is not a PEM CRL any more; {fix}") from None
    cas = {found[n].subject: found[n] for n in CA_LEVELS if n in found}
    ok = bool(crls) and len({c.issuer for c in crls}) == len(cas) and all(
        c.issuer in cas and c.is_signature_valid(cas[c.issuer].public_key()) for c in crls
    )
    if not ok or min(iso(c.next_update_utc) for c in crls if c.next_update_utc) != m.crl_next_update:
        raise StateError(f"{m.crl_file} differs from what {MANIFEST_NAME} recorded (edited by hand?); {fix}")
    return crls


# ---------------------------------------------------------------- status

@dataclass(frozen=True)
class CertStatus:
    """One row of `pgkongtls status`."""

    name: str
    role: str
    cn: str
    sans: tuple[str, ...]
    issuer: str | None
    serial: str
    not_after: str
    days_left: int
    state: str  # valid, expiring, expired, revoked
    revoked: str | None = None
    revocation_reason: str | None = None


@dataclass(frozen=True)
class CrlStatus:
    """The CRL row: its nextUpdate is a deadline for the whole database."""

    file: str
    next_update: str
    days_left: int
    state: str  # valid, expiring, expired


@dataclass(frozen=True)
class Notice:
    """A warning (within --warn-days) or an expiry, with the command that fixes it."""

    name: str
    severity: str  # warning, expired
    message: str


@dataclass(frozen=True)
class Status:
    """What `status` prints, and the exit code cron and monitoring look at."""

    now: str
    warn_days: int
    certificates: tuple[CertStatus, ...]
    crl: CrlStatus | None
    notices: tuple[Notice, ...]

    @property
    def expired(self) -> list[str]:
        return [n.name for n in self.notices if n.severity == "expired"]

    @property
    def exit_code(self) -> int:
        return EXIT_EXPIRED if self.expired else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "now": self.now, "warn_days": self.warn_days, "exit_code": self.exit_code,
            "certificates": [{**asdict(c), "sans": list(c.sans)} for c in self.certificates],
            "crl": None if self.crl is None else asdict(self.crl),
            "notices": [asdict(n) for n in self.notices], "expired": self.expired,
        }


def _days_left(when: dt.datetime, now: dt.datetime) -> int:
    return int((when - now).total_seconds() // 86400)


def _state(when: dt.datetime, now: dt.datetime, warn: dt.timedelta) -> str:
    if when <= now:
        return "expired"
    return "expiring" if when - now <= warn else "valid"


def compute_status(m: Manifest, *, now: dt.datetime | None = None, warn_days: int = DEFAULT_WARN_DAYS,
                   pki: str = "pki") -> Status:
    """Every certificate's state plus the CRL's; warnings name the command that fixes each."""
    now = now or certs.utcnow()
    check_days(warn_days, "--warn-days", 0, 36500)
    warn = dt.timedelta(days=warn_days)
    rows: list[CertStatus] = []
    notices: list[Notice] = []
    order = {r: i for i, r in enumerate(ROLES)}
    for e in sorted(m.certificates.values(), key=lambda e: (order[e.role], e.name)):
        when = parse_iso(e.not_after)
        state = "revoked" if e.revoked else _state(when, now, warn)
        left = _days_left(when, now)
        rows.append(CertStatus(e.name, e.role, e.cn, e.sans, e.issuer, e.serial, e.not_after, left, state,
                               e.revoked, e.revocation_reason))
        fix = (f"pgkongtls renew --dir {pki} {e.name}" if e.role in LEAF_ROLES
               else "a new CA means a new PKI: pgkongtls init --force")
        if state == "expired":
            notices.append(Notice(e.name, "expired", f"{e.name} expired on {e.not_after[:10]}; {fix}"))
        elif state == "expiring":
            notices.append(Notice(e.name, "warning", f"{e.name} expires in {left} days ({e.not_after[:10]}); {fix}"))
    crl: CrlStatus | None = None
    if m.crl_file and m.crl_next_update:
        when = parse_iso(m.crl_next_update)
        crl = CrlStatus(m.crl_file, m.crl_next_update, _days_left(when, now), _state(when, now, warn))
        fix = f"pgkongtls crl --dir {pki}, copy {m.crl_file} to the database and reload it"
        if crl.state == "expired":
            notices.append(Notice(m.crl_file, "expired", f"{m.crl_file} nextUpdate passed on "
                                  f"{m.crl_next_update[:10]}: PostgreSQL now refuses every client certificate; {fix}"))
        elif crl.state == "expiring":
            notices.append(Notice(m.crl_file, "warning", f"{m.crl_file} nextUpdate is in {crl.days_left} days "
                                  f"({m.crl_next_update[:10]}): then PostgreSQL refuses every client certificate; {fix}"))
    return Status(iso(now), warn_days, tuple(rows), crl, tuple(notices))
