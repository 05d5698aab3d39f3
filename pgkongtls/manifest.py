"""The manifest (`pgkongtls.json`): what later commands read instead of guessing.

Plain dataclasses with a strict JSON round trip, so a hand-edited or truncated
manifest gives one clear line instead of a KeyError deep inside a command.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from pgkongtls import KEY_TYPES
from pgkongtls.errors import StateError

if TYPE_CHECKING:  # cryptography is imported where it is used, so `render` never loads it
    from cryptography import x509

MANIFEST_NAME = "pgkongtls.json"
#: The CA bundle, intermediate first (the source document's name), and the CRLs of every CA level.
CHAIN_FILE = "chain.crt"
CRL_FILE = "crl.pem"
#: What the last writing command saw of each file it vouches for (fsio.read, "the stat cache").
STAT_CACHE = "pgkongtls.stat"


def is_stat_temp(name: str) -> bool:
    """The stat cache's temporary file (`.pgkongtls.stat.<pid>.tmp`): ours, even when a kill left it behind."""
    return name.startswith(f".{STAT_CACHE}.") and name.endswith(".tmp")
FORMAT = 1
MODES = ("ca", "self-signed")
CHAINS = ("intermediate", "root")
ROLES = ("root", "intermediate", "server", "client")
#: Manifest.phase while old CA certificates are still trusted: after `renew root|intermediate` ("renewed"),
#: and between `rotate begin`, `rotate reissue` and `rotate finish` ("begun", "reissued").
PHASES = ("renewed", "begun", "reissued")
#: RFC 5280 CRLReason names `revoke --reason` stores (lifecycle.REASONS maps them to cryptography's flags).
REVOCATION_REASONS = ("unspecified", "keyCompromise", "affiliationChanged", "superseded", "cessationOfOperation",
                      "privilegeWithdrawn")

#: What renew and issue --force keep of a replaced certificate or key: NAME.crt.<serial>.bak, NAME.key.<serial>.bak.
BACKUP_NAME = re.compile(r"(?P<file>.+)\.(?P<serial>[0-9a-f]{1,40})\.bak")


def backup_name(file: str, serial: str) -> str:
    return f"{file}.{serial}.bak"


def foreign_names(m: Manifest, names: list[str]) -> list[str]:
    """Of the names in a PKI directory, those pgkongtls did not write: not the manifest, not a file it
    lists (chain.crt, the CRL, every certificate and key), not a backup of one."""
    own = {n for e in m.certificates.values() for n in (e.file, e.key_file)} | {MANIFEST_NAME, CHAIN_FILE, STAT_CACHE}
    own |= {m.crl_file} if m.crl_file else set()
    return [n for n in names if n not in own and not ((b := BACKUP_NAME.fullmatch(n)) and b["file"] in own)
            and not is_stat_temp(n)]


@dataclass(frozen=True)
class CertEntry:
    """One certificate file and its key, as minted."""

    name: str
    role: str
    file: str
    key_file: str
    cn: str
    sans: tuple[str, ...]
    issuer: str | None
    serial: str
    sha256: str
    not_before: str
    not_after: str
    revoked: str | None = None
    revocation_reason: str | None = None


@dataclass(frozen=True)
class Manifest:
    """The whole PKI: its shape, its defaults, and every certificate by name."""

    mode: str
    chain: str | None
    key_type: str
    db_user: str
    hosts: tuple[str, ...]
    bundle: bool
    certificates: dict[str, CertEntry] = field(default_factory=dict)
    crl_file: str | None = None
    crl_next_update: str | None = None
    format: int = FORMAT
    #: Where each host keeps its files ("postgres", "kong" -> directory): the last `bundle --ssl-dir`,
    #: or `pgkongtls deploy-paths`. render and the hints use it so nobody retypes a path.
    deploy: dict[str, str] = field(default_factory=dict)
    #: None in steady state; one of PHASES while old CA certificates (named LEVEL@serial) are still trusted.
    phase: str | None = None

    @property
    def issuing_ca(self) -> str | None:
        """Name of the CA that signs leaves: the intermediate, the root, or none."""
        if self.mode != "ca":
            return None
        return "intermediate" if self.chain == "intermediate" else "root"

    @property
    def intermediates(self) -> int:
        """CAs between a leaf and the root: what lua_ssl_verify_depth must allow."""
        return 1 if self.mode == "ca" and self.chain == "intermediate" else 0

    def root_fingerprint(self) -> str:
        """Identifies the PKI in rendered comments (the server's own for self-signed)."""
        anchor = "root" if self.mode == "ca" else "server"
        return self.certificates[anchor].sha256

    def with_cert(self, entry: CertEntry) -> Manifest:
        return replace(self, certificates={**self.certificates, entry.name: entry})

    def by_role(self, role: str) -> list[CertEntry]:
        return [e for e in self.certificates.values() if e.role == role]

    def deploy_dir(self, host: str) -> str:
        """Where `host` keeps the files: recorded, else the default (never the PKI directory)."""
        return self.deploy.get(host) or DEFAULT_DEPLOY_DIRS[host]


#: Default directory of the files on each host: root-owned and traversable, apart from the PKI.
DEFAULT_DEPLOY_DIRS = {"postgres": "/etc/postgresql/pgkongtls", "kong": "/etc/kong/pgkongtls"}
#: The keys of Manifest.deploy.
DEPLOY_KEYS = ("postgres", "kong", "postgres-conf", "kong-conf")


@dataclass(frozen=True)
class Change:
    """One planned change to a PKI directory (init's whole PKI or a day-2 command's files).

    The planners (pki, lifecycle) make it in memory; ops applies it in one fsio
    transaction. `private` names are keys, 0600 from their first byte. `replaces`
    lists existing files the change overwrites on purpose (a renewed certificate,
    crl.pem); any other existing file in `files` is a clash. `done` lists the
    certificates the change minted or revoked, for the command's summary.
    """

    manifest: Manifest
    files: dict[str, bytes]
    private: frozenset[str] = frozenset()
    replaces: frozenset[str] = frozenset()
    done: tuple[CertEntry, ...] = ()

    def all_files(self) -> dict[str, bytes]:
        """Every file including the manifest, which is written last."""
        return {**self.files, MANIFEST_NAME: dumps(self.manifest).encode()}


def fingerprint(cert: x509.Certificate) -> str:
    from cryptography.hazmat.primitives import hashes

    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def iso(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@functools.lru_cache(maxsize=4096)  # a big PKI's leaves share a few issuance times
def parse_iso(text: str) -> dt.datetime:
    """What `iso` wrote (loads checked the shape); slicing is ~10x cheaper than strptime on 10,000 entries."""
    if len(text) != 20 or text[4] != "-" or text[10] != "T" or text[19] != "Z":
        raise ValueError(f"not an ISO time: {text!r}")
    return dt.datetime(int(text[:4]), int(text[5:7]), int(text[8:10]), int(text[11:13]), int(text[14:16]),
                       int(text[17:19]), tzinfo=dt.timezone.utc)


def host_text(name: x509.GeneralName) -> str:
    """A SAN value as text (the reverse of `hostnames.parse_host`)."""
    return str(name.value)


def sans_of(cert: x509.Certificate) -> tuple[str, ...]:
    """The subjectAltName entries as text (DNS names and addresses), empty when there is none."""
    from cryptography import x509

    try:
        return tuple(host_text(n) for n in cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return ()


def entry_for(
    cert: x509.Certificate, *, name: str, role: str, issuer: str | None, file: str | None = None,
    key_file: str | None = None,
) -> CertEntry:
    """Describe a freshly minted certificate for the manifest."""
    from cryptography import x509

    cn_attrs = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return CertEntry(
        name=name, role=role, file=file or f"{name}.crt", key_file=key_file or f"{name}.key",
        cn=str(cn_attrs[0].value) if cn_attrs else "", sans=sans_of(cert), issuer=issuer,
        serial=format(cert.serial_number, "x"), sha256=fingerprint(cert),
        not_before=iso(cert.not_valid_before_utc), not_after=iso(cert.not_valid_after_utc),
    )


def checked_files(m: Manifest) -> list[str]:
    """The files a command checks against the manifest before trusting it: every certificate, the chain."""
    return [e.file for e in m.certificates.values()] + ([CHAIN_FILE] if m.mode == "ca" else [])


def _fields(obj: Any) -> dict[str, Any]:
    """A dataclass's fields, shallow: dataclasses.asdict deep-copies, which was most of the
    manifest's cost in a 1,000-name `issue` (vars() is the same dict for these plain dataclasses)."""
    return dict(vars(obj))


def dumps(m: Manifest) -> str:
    """Indented, one certificate per line: json's indent runs its pure-Python encoder, ~10x slower on
    10,000 entries than the C one used for each entry here."""
    data = _fields(m)
    data.pop("certificates")
    enc = json.JSONEncoder(sort_keys=True).encode
    body = ",\n".join(f"    {enc(k)}: {enc(_fields(v))}" for k, v in sorted(m.certificates.items()))
    head = json.dumps(data, indent=2, sort_keys=True)
    return f'{head[:-2]},\n  "certificates": {{\n{body}\n  }}\n}}\n'



def _need(data: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in data:
        raise StateError(f"{MANIFEST_NAME}: {where} is missing {key!r}; re-create it with pgkongtls init --force")
    value = data[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise StateError(f"{MANIFEST_NAME}: {where}.{key} has the wrong type; re-create it with pgkongtls init --force")
    return value


_HEX = re.compile(r"[0-9a-f]{1,40}")
#: What `fingerprint` writes: 32 upper-case hex bytes joined by ':'.
_SHA256 = re.compile(r"[0-9A-F]{2}(?::[0-9A-F]{2}){31}")
#: A certificate name (`--name`); an archived revoked entry is NAME@SERIAL.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
#: The CA levels, each under its own name.
CA_NAMES = ("root", "intermediate")
#: Text that render copies into config lines (hosts, the db user): what certs.validate_db_user allows.
_TOKEN = re.compile(r"[^\x00-\x20\x7f\"\\,#']{1,255}")
_TIME = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})Z")


#: Timestamps already found well formed: a big PKI's leaves share a few issuance times.
_GOOD_TIMES: set[str] = set()


def _well_formed(value: str | None, shape: re.Pattern[str], where: str) -> None:
    """Serials go into .bak file names and timestamps are parsed later: check them here, in one line."""
    if value is None or (shape is _TIME and value in _GOOD_TIMES):
        return
    found = shape.fullmatch(value)
    try:  # a real date (not 02-30); the constructor is ~20x cheaper than strptime on a 1,000-entry manifest
        if found is not None and shape is _TIME:
            y, mo, d, h, mi, sec = map(int, found.groups())
            dt.datetime(y, mo, d, h, mi, sec)
        ok = found is not None
    except ValueError:
        ok = False
    if not ok:
        raise StateError(f"{MANIFEST_NAME}: {where} {value!r} is malformed; re-create it with pgkongtls init --force")
    if shape is _TIME and len(_GOOD_TIMES) < 100_000:
        _GOOD_TIMES.add(value)


#: A plain file name inside the PKI directory: no '/', no leading or trailing '.', so never '..'.
_FILE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._@-]{0,253}[A-Za-z0-9_@-])?")


def _plain_name(value: str | None, where: str) -> None:
    """Every command joins these to the PKI directory: refuse anything that could leave it."""
    if value is not None and not _FILE.fullmatch(value):
        raise StateError(f"{MANIFEST_NAME}: {where} {value!r} is not a plain file name; restore the manifest")


def files_for(name: str, serial: str) -> tuple[str, str]:
    """The certificate and key file of an entry, by the naming rules init, issue and renew follow.

    NAME -> NAME.crt, NAME.key; an archived NAME@SERIAL (a revoked leaf kept for the CRL, an old CA
    kept through a renewal or rotation) -> NAME.crt.SERIAL.bak, NAME.key.SERIAL.bak (lifecycle's
    Plan.retire, rotate begin). The manifest cannot point an entry anywhere else, with one exception:
    `renew root|intermediate` keeps the key, so the old CA certificate names the live key.
    """
    base, _, archived = name.partition("@")
    if archived:
        return f"{base}.crt.{serial}.bak", f"{base}.key.{serial}.bak"
    return f"{base}.crt", f"{base}.key"


def _entry_rules(m_mode: str, entry: CertEntry, where: str) -> None:
    """What an entry may say without looking at its certificate: names, roles, issuers, file names, formats.

    Written for 10,000 entries: plain comparisons first, the message-building checks only on a mismatch.
    """
    base, at, archived = entry.name.partition("@")
    is_ca = base in CA_NAMES
    if (not NAME.fullmatch(base) or (at and archived != entry.serial) or (entry.role in CA_NAMES) != is_ca
            or (is_ca and entry.role != base) or not all(type(s) is str for s in entry.sans)):
        raise StateError(f"{MANIFEST_NAME}: {where} is inconsistent; re-create it with pgkongtls init --force")
    if not _HEX.fullmatch(entry.serial):
        _well_formed(entry.serial, _HEX, f"{where}.serial")
    if not _SHA256.fullmatch(entry.sha256):
        _well_formed(entry.sha256, _SHA256, f"{where}.sha256")
    crt, key = files_for(entry.name, entry.serial)
    if at and is_ca and entry.key_file == f"{base}.key":
        key = entry.key_file  # renew root|intermediate: same key, old certificate archived
    if entry.file != crt or entry.key_file != key:
        for field, want in (("file", crt), ("key_file", key)):
            _plain_name(getattr(entry, field), f"{where}.{field}")
            if getattr(entry, field) != want:  # one file, one entry: client's key_file is never root.key
                raise StateError(f"{MANIFEST_NAME}: {where}.{field} {getattr(entry, field)!r} is not {want}, the file "
                                 f"of {entry.name}; restore the manifest")
    issuer_base = (entry.issuer or "").partition("@")[0]
    if entry.issuer is not None if m_mode != "ca" or entry.role == "root" else (
            issuer_base != "root" if entry.role == "intermediate" else issuer_base not in CA_NAMES):
        raise StateError(f"{MANIFEST_NAME}: {where}.issuer {entry.issuer!r} is not one of this PKI's CAs; "
                         "restore the manifest")
    _well_formed(entry.not_before, _TIME, f"{where}.not_before")
    _well_formed(entry.not_after, _TIME, f"{where}.not_after")
    _well_formed(entry.revoked, _TIME, f"{where}.revoked")
    if entry.revocation_reason is not None and entry.revocation_reason not in REVOCATION_REASONS:
        raise StateError(f"{MANIFEST_NAME}: {where}.revocation_reason {entry.revocation_reason!r} is malformed; "
                         "re-create it with pgkongtls init --force")


#: An entry as `dumps` writes it for a leaf in service: every field present with its usual type.
_FAST_TYPES = (("name", str), ("role", str), ("file", str), ("key_file", str), ("cn", str), ("sans", list),
               ("issuer", str), ("serial", str), ("sha256", str), ("not_before", str), ("not_after", str),
               ("revoked", type(None)), ("revocation_reason", type(None)))


def loads(text: str) -> Manifest:
    """Parse and validate; every problem is one StateError line naming the field."""
    try:
        data = json.loads(text)
    except ValueError:
        raise StateError(f"{MANIFEST_NAME} is not valid JSON; re-create it with pgkongtls init --force") from None
    if not isinstance(data, dict):
        raise StateError(f"{MANIFEST_NAME} is not a JSON object; re-create it with pgkongtls init --force")
    if _need(data, "format", int, "manifest") != FORMAT:
        raise StateError(f"{MANIFEST_NAME} has format {data['format']}; this pgkongtls reads format {FORMAT}")
    certs: dict[str, CertEntry] = {}
    for name, raw in _need(data, "certificates", dict, "manifest").items():
        where = f"certificates.{name}"
        if not isinstance(raw, dict):
            raise StateError(f"{MANIFEST_NAME}: {where} is not an object; re-create it with pgkongtls init --force")
        if all(type(raw.get(k)) is t for k, t in _FAST_TYPES) and len(raw) == len(_FAST_TYPES):
            # the usual entry, already of the right types: one constructor call, no per-field checks
            entry = CertEntry(**{**raw, "sans": tuple(raw["sans"])})
        else:
            opt = (str, type(None))
            entry = CertEntry(
                name=_need(raw, "name", str, where), role=_need(raw, "role", str, where),
                file=_need(raw, "file", str, where), key_file=_need(raw, "key_file", str, where),
                cn=_need(raw, "cn", str, where),
                sans=tuple(_need(raw, "sans", list, where)), issuer=_need(raw, "issuer", opt, where),
                serial=_need(raw, "serial", str, where), sha256=_need(raw, "sha256", str, where),
                not_before=_need(raw, "not_before", str, where), not_after=_need(raw, "not_after", str, where),
                revoked=_need(raw, "revoked", opt, where),
                revocation_reason=_need(raw, "revocation_reason", opt, where),
            )
        if entry.role not in ROLES or entry.name != name:
            raise StateError(f"{MANIFEST_NAME}: {where} is inconsistent; re-create it with pgkongtls init --force")
        certs[name] = entry
    m = Manifest(
        mode=_need(data, "mode", str, "manifest"), chain=_need(data, "chain", (str, type(None)), "manifest"),
        key_type=_need(data, "key_type", str, "manifest"), db_user=_need(data, "db_user", str, "manifest"),
        hosts=tuple(_need(data, "hosts", list, "manifest")), bundle=_need(data, "bundle", bool, "manifest"),
        certificates=certs, crl_file=_need(data, "crl_file", (str, type(None)), "manifest"),
        crl_next_update=_need(data, "crl_next_update", (str, type(None)), "manifest"),
    )
    if not m.hosts:
        raise StateError(f"{MANIFEST_NAME}: manifest.hosts is empty; it needs the database host names from init --db-host")
    deploy = data.get("deploy", {})
    if (not isinstance(deploy, dict) or not set(deploy) <= set(DEPLOY_KEYS)
            or not all(isinstance(v, str) and v.startswith("/") and v.isprintable() for v in deploy.values())):
        raise StateError(f"{MANIFEST_NAME}: deploy is malformed; set it again with pgkongtls deploy-paths")
    phase = data.get("phase")
    if phase is not None and phase not in PHASES:
        raise StateError(f"{MANIFEST_NAME}: phase {phase!r} is unknown; restore the manifest")
    m = replace(m, deploy=dict(deploy), phase=phase)
    tokens = (*m.hosts, m.db_user)
    if not all(isinstance(h, str) and _TOKEN.fullmatch(h) for h in tokens) or m.key_type not in KEY_TYPES:
        raise StateError(f"{MANIFEST_NAME}: manifest.hosts or key_type is malformed; re-create it with pgkongtls init --force")
    _well_formed(m.crl_next_update, _TIME, "manifest.crl_next_update")
    _plain_name(m.crl_file, "crl_file")
    if m.crl_file not in (None, CRL_FILE):
        raise StateError(f"{MANIFEST_NAME}: crl_file {m.crl_file!r} is not {CRL_FILE}; restore the manifest")
    if m.mode not in MODES or (m.mode == "ca" and m.chain not in CHAINS):
        raise StateError(f"{MANIFEST_NAME}: unknown mode or chain; re-create it with pgkongtls init --force")
    needed = {"ca": ["root", "server", "client"] + (["intermediate"] if m.chain == "intermediate" else []),
              "self-signed": ["server", "client"]}[m.mode]
    missing = [n for n in needed if n not in certs]
    if missing:
        raise StateError(f"{MANIFEST_NAME}: certificate {missing[0]!r} is missing; re-create it with pgkongtls init --force")
    for name, entry in certs.items():
        _entry_rules(m.mode, entry, f"certificates.{name}")
        if entry.issuer is not None and (entry.issuer not in certs or certs[entry.issuer].role not in CA_NAMES):
            raise StateError(f"{MANIFEST_NAME}: certificates.{name}.issuer {entry.issuer!r} is not one of this "
                             "PKI's CAs; restore the manifest")
    return m
