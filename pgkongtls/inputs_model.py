"""What `verify` reads, as plain data: the dataclasses inputs.py fills and the checks in verify/ consume.

Apart from the loaders (inputs.py) so each stays a readable size; nothing here reads a file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from pgkongtls.confparse import HbaLine, IdentLine, KongValue, Setting
from pgkongtls.consumers import KONG_DEFAULT_OS_USER
from pgkongtls.manifest import Manifest
from pgkongtls.pkiload import FileDamage

#: The source document's file names, by role (its procedure makes exactly these).
SOURCE_NAMES = ("root", "intermediate", "server", "client")
_MAX_INCLUDE_DEPTH = 10


@dataclass(frozen=True)
class Missing:
    """A file a config names that does not exist."""

    path: str


@dataclass(frozen=True)
class CertFile:
    """A PEM file of one or more certificates, in file order."""

    path: str
    certs: tuple[x509.Certificate, ...]
    real: str = ""


@dataclass(frozen=True)
class KeyFile:
    """A private key with the file's mode and owner; `key` is None when it is encrypted."""

    path: str
    key: PrivateKeyTypes | None
    encrypted: bool
    mode: int
    uid: int
    gid: int
    owner: str = ""
    real: str = ""
    #: Every directory above the real file, from / down: (path, mode, uid, gid), for the traversal rule.
    dirs: tuple[tuple[str, int, int, int], ...] = ()


@dataclass(frozen=True)
class CrlFile:
    """CRLs from one file (concatenated PEM) or one directory (ssl_crl_dir)."""

    path: str
    crls: tuple[x509.CertificateRevocationList, ...]


MaybeCert = CertFile | Missing
MaybeKey = KeyFile | Missing
MaybeCrl = CrlFile | Missing


@dataclass(frozen=True)
class PkiEntry:
    """One certificate of the directory with its role, key and manifest record (if any)."""

    name: str
    role: str
    cert: MaybeCert
    key: MaybeKey | None
    revoked: bool = False
    sha256: str | None = None
    #: Set when the manifest recorded another file (pkiload.check_recorded, as the day-2 commands check it).
    damage: FileDamage | None = None


@dataclass(frozen=True)
class PkiDir:
    """A pgkongtls directory (with manifest) or one laid out as the source document does."""

    path: str
    manifest: Manifest | None
    entries: tuple[PkiEntry, ...]
    chain: MaybeCert | None
    crl: MaybeCrl | None = None

    def role(self, role: str) -> list[PkiEntry]:
        return list(self._live_by_role.get(role, ()))

    @cached_property
    def _live_by_role(self) -> dict[str, tuple[PkiEntry, ...]]:
        """Live entries by role, indexed once: verify asks for the root and intermediates per leaf."""
        by: dict[str, list[PkiEntry]] = {}
        for e in self.entries:
            if not e.revoked:
                by.setdefault(e.role, []).append(e)
        return {r: tuple(es) for r, es in by.items()}


@dataclass(frozen=True)
class PgInput:
    """postgresql.conf's effective TLS settings and the files they name."""

    path: str
    settings: dict[str, Setting]
    cert: MaybeCert
    key: MaybeKey
    ca: MaybeCert | None
    crl: MaybeCrl | None
    crl_dir: MaybeCrl | None


@dataclass(frozen=True)
class TrustEntry:
    """One lua_ssl_trusted_certificate entry: a path, inline PEM, or `system` (expanded)."""

    entry: str
    loaded: MaybeCert | None


@dataclass(frozen=True)
class PathStat:
    """One step on the way to a file: what another OS user needs to traverse or read it."""

    path: str
    mode: int
    uid: int
    gid: int
    owner: str = ""
    group: str = ""




@dataclass(frozen=True)
class KongInput:
    """kong.conf's values and the files its pg_ssl_* and lua_ssl_* keys name."""

    path: str
    values: dict[str, KongValue]
    trust: tuple[TrustEntry, ...]
    cert: MaybeCert | None
    key: MaybeKey | None
    #: pg_ssl_cert / pg_ssl_cert_key -> the path to them (the Kong workers' user must traverse it and read them)
    access: dict[str, tuple[PathStat, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Account:
    """The operating-system account PostgreSQL runs as (for the key owner rule)."""

    name: str
    uid: int
    gids: frozenset[int]


@dataclass(frozen=True)
class VerifyInput:
    """Everything `verify` looks at."""

    pki: PkiDir | None = None
    pg: PgInput | None = None
    hba: tuple[str, tuple[HbaLine, ...]] | None = None
    ident: tuple[str, tuple[IdentLine, ...]] | None = None
    kong: KongInput | None = None
    pg_os_user: str = "postgres"
    pg_account: Account | None = None
    kong_os_user: str = KONG_DEFAULT_OS_USER
    kong_account: Account | None = None
