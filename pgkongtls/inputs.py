"""Loaders for `verify`: read a PKI directory and the config files into plain data.

All of verify's reading happens here, so the checks in `verify.py` stay pure
functions over these dataclasses. Certificates, keys and CRLs are parsed by
pkiload, the reader the day-2 commands use too: a file that cannot be parsed at
all (empty, DER where PEM is expected, truncated, a key where a certificate
belongs) is the same one line in `verify` as in `status`. A file that a config
names but that does not exist is a `Missing` value, and a certificate file that
is not what the manifest recorded carries its `damage`; the checks report both
as findings.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from pgkongtls import confparse, fsio, pkiload
from pgkongtls.confparse import HbaLine, IdentLine, Setting
from pgkongtls.consumers import KONG_DEFAULT_OS_USER, PG_DEFAULT_FILES, SYSTEM_BUNDLES
from pgkongtls.errors import InputError, StateError
from pgkongtls.inputs_model import (
    _MAX_INCLUDE_DEPTH,
    SOURCE_NAMES,
    Account,
    CertFile,
    CrlFile,
    KeyFile,
    KongInput,
    MaybeCert,
    MaybeCrl,
    MaybeKey,
    Missing,
    PathStat,
    PgInput,
    PkiDir,
    PkiEntry,
    TrustEntry,
    VerifyInput,
)
from pgkongtls.manifest import CHAIN_FILE, MANIFEST_NAME, CertEntry, Manifest
from pgkongtls.pkiload import FileDamage


def path_chain(path: str) -> tuple[PathStat, ...]:
    """Every directory from / down to `path` (symlinks resolved), then `path` itself; empty when it is missing."""
    real = Path(os.path.realpath(path))
    out: list[PathStat] = []
    try:
        for p in (*reversed(real.parents), real):
            st = os.stat(p)
            out.append(PathStat(str(p), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, _owner_name(st.st_uid),
                                _group_name(st.st_gid)))
    except OSError:
        return ()
    return tuple(out)


def _read(path: Path) -> bytes:
    return _read_stat(path)[0]


def _read_stat(path: Path) -> tuple[bytes, os.stat_result]:
    """Only a regular file, and at most fsio.MAX_READ of it: a key linked to /dev/zero or a FIFO is refused."""
    try:
        return fsio.read_regular(path)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None


def load_cert_file(path: Path, *, shown: str | None = None) -> CertFile:
    where = shown or str(path)
    return CertFile(path=where, certs=pkiload.parse_certs(_read(path), where), real=os.path.realpath(path))


@dataclass
class StatMemo:
    """Directory stats and owner names already looked up in one load: a PKI's 10,000 keys share one
    directory, whose parents were stat()ed (and owner looked up) once per key."""

    dirs: dict[Path, tuple[str, int, int, int]] = field(default_factory=dict)
    owners: dict[int, str] = field(default_factory=dict)

    def dir(self, d: Path) -> tuple[str, int, int, int]:
        if d not in self.dirs:
            s = d.stat()
            self.dirs[d] = (str(d), stat.S_IMODE(s.st_mode), s.st_uid, s.st_gid)
        return self.dirs[d]

    def owner(self, uid: int) -> str:
        if uid not in self.owners:
            self.owners[uid] = _owner_name(uid)
        return self.owners[uid]


def load_key_file(path: Path, *, shown: str | None = None, memo: StatMemo | None = None) -> KeyFile:
    """A PEM private key plus the mode and owner PostgreSQL's key rule looks at."""
    memo = memo or StatMemo()
    where = shown or str(path)
    data, st = _read_stat(path)
    loaded = pkiload.parse_key(data, where)
    key: PrivateKeyTypes | None = loaded.key
    encrypted = loaded.encrypted
    real = os.path.realpath(path)
    dirs = tuple(memo.dir(d) for d in reversed(Path(real).parents))
    return KeyFile(path=where, key=key, encrypted=encrypted, mode=stat.S_IMODE(st.st_mode), uid=st.st_uid,
                   gid=st.st_gid, owner=memo.owner(st.st_uid), real=real, dirs=dirs)


def load_crl_file(path: Path, *, shown: str | None = None) -> CrlFile:
    where = shown or str(path)
    return CrlFile(path=where, crls=pkiload.parse_crls(_read(path), where))


def load_crl_dir(path: Path) -> CrlFile:
    """ssl_crl_dir: every CRL file in the directory (PostgreSQL looks them up by hashed name)."""
    crls: list[x509.CertificateRevocationList] = []
    for entry in sorted(path.iterdir()):
        if entry.is_file():
            crls.extend(pkiload.parse_crls(_read(entry), str(entry)))
    return CrlFile(path=str(path), crls=tuple(crls))


def _maybe_cert(path: Path, shown: str) -> MaybeCert:
    return load_cert_file(path, shown=shown) if path.exists() else Missing(shown)


def _maybe_key(path: Path, shown: str, memo: StatMemo | None = None) -> MaybeKey:
    return load_key_file(path, shown=shown, memo=memo) if path.exists() else Missing(shown)


def load_pki_dir(directory: Path) -> PkiDir:
    """A pgkongtls directory by its manifest, or a hand-made one by the source document's names,
    read under the shared lock so a writer's commit is seen whole or not at all."""
    if not directory.is_dir():
        return _load_pki_dir(directory)
    with fsio.shared_lock(directory):
        return _load_pki_dir(directory)


def _load_pki_dir(directory: Path) -> PkiDir:
    base = str(directory)
    if not directory.exists():
        raise StateError(f"{directory} does not exist; pass the PKI directory")
    if not directory.is_dir():
        raise StateError(f"{directory} is not a directory; pass the PKI directory")
    if (directory / MANIFEST_NAME).exists():
        m = fsio.load_manifest(directory, check=False)  # each damaged file becomes a finding below
        found: list[PkiEntry] = []
        memo = StatMemo()
        for e in m.certificates.values():
            cert = _maybe_cert(directory / e.file, os.path.join(base, e.file))
            found.append(PkiEntry(
                name=e.name, role=e.role, cert=cert,
                key=_maybe_key(directory / e.key_file, os.path.join(base, e.key_file), memo),
                revoked=e.revoked is not None, sha256=e.sha256, damage=_damage(m, e, cert),
            ))
        chain = _maybe_cert(directory / CHAIN_FILE, os.path.join(base, CHAIN_FILE)) if m.mode == "ca" else None
        crl = _maybe_crl(directory / m.crl_file, os.path.join(base, m.crl_file)) if m.crl_file else None
        return PkiDir(path=base, manifest=m, entries=tuple(found), chain=chain, crl=crl)
    present = [n for n in SOURCE_NAMES if (directory / f"{n}.crt").exists()]
    if not present:
        raise StateError(
            f"{directory} holds neither {MANIFEST_NAME} nor the source document's files "
            "(root.crt, server.crt, client.crt, ...); pass a PKI directory"
        )
    entries = tuple(
        PkiEntry(
            name=n, role=n, cert=load_cert_file(directory / f"{n}.crt", shown=os.path.join(base, f"{n}.crt")),
            key=_maybe_key(directory / f"{n}.key", os.path.join(base, f"{n}.key")),
        )
        for n in present
    )
    chain_path = directory / CHAIN_FILE
    chain = load_cert_file(chain_path, shown=os.path.join(base, CHAIN_FILE)) if chain_path.exists() else None
    return PkiDir(path=base, manifest=None, entries=entries, chain=chain)


def _damage(m: Manifest, e: CertEntry, cert: MaybeCert) -> FileDamage | None:
    """What `status` and `issue` would refuse this file for, if anything (the same check, the same words)."""
    if isinstance(cert, Missing):
        return None
    try:
        pkiload.check_recorded(m, e, cert.certs, cert.path)
    except FileDamage as exc:
        return exc
    return None


def _maybe_crl(path: Path, shown: str) -> MaybeCrl:
    return load_crl_file(path, shown=shown) if path.exists() else Missing(shown)


def _pg_settings(path: Path, depth: int, into: dict[str, Setting]) -> None:
    if depth > _MAX_INCLUDE_DEPTH:
        raise InputError(f"{path}: includes nested more than {_MAX_INCLUDE_DEPTH} deep")
    text = _text(path)
    for s in confparse.parse_pg_conf(text, source=str(path)):
        if s.name in ("include", "include_if_exists", "include_dir"):
            target = path.parent / s.value
            if s.name == "include_dir":
                if target.is_dir():
                    for f in sorted(target.glob("*.conf")):
                        if not f.name.startswith("."):
                            _pg_settings(f, depth + 1, into)
            elif target.exists() or s.name == "include":
                _pg_settings(target, depth + 1, into)
            continue
        into[s.name] = s


def _text(path: Path) -> str:
    try:
        return _read(path).decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text; pass the config file itself") from None


def load_pg(path: Path) -> PgInput:
    """Effective settings (includes followed, last one wins); relative file names are taken from the
    config file's own directory (the data directory in a stock install)."""
    settings: dict[str, Setting] = {}
    _pg_settings(path, 0, settings)
    base = path.parent

    def named(name: str) -> tuple[Path, str] | None:
        value = settings[name].value if name in settings else PG_DEFAULT_FILES.get(name, "")
        if not value:
            return None
        p = Path(value) if value.startswith("/") else base / value
        return p, value if value.startswith("/") else str(p)

    cert_ref, key_ref = named("ssl_cert_file"), named("ssl_key_file")
    assert cert_ref and key_ref  # both have defaults
    ca_ref, crl_ref, crl_dir_ref = named("ssl_ca_file"), named("ssl_crl_file"), named("ssl_crl_dir")
    return PgInput(
        path=str(path), settings=settings,
        cert=_maybe_cert(*cert_ref), key=_maybe_key(*key_ref),
        ca=_maybe_cert(*ca_ref) if ca_ref else None,
        crl=_maybe_crl(*crl_ref) if crl_ref else None,
        crl_dir=(load_crl_dir(crl_dir_ref[0]) if crl_dir_ref[0].is_dir() else Missing(crl_dir_ref[1]))
        if crl_dir_ref else None,
    )


def load_hba(path: Path) -> tuple[str, tuple[HbaLine, ...]]:
    return str(path), tuple(confparse.parse_hba(_text(path), source=str(path)))


def load_ident(path: Path) -> tuple[str, tuple[IdentLine, ...]]:
    return str(path), tuple(confparse.parse_ident(_text(path), source=str(path)))


def system_bundle() -> str | None:
    """The file Kong substitutes for `system`, or None (Kong then drops the entry silently)."""
    return next((p for p in SYSTEM_BUNDLES if os.path.isfile(p)), None)


def load_kong(path: Path) -> KongInput:
    """kong.conf, with lua_ssl_trusted_certificate expanded as Kong does (system, paths, inline PEM)."""
    values = confparse.parse_kong_conf(_text(path), source=str(path))
    trust: list[TrustEntry] = []
    raw = values["lua_ssl_trusted_certificate"].value if "lua_ssl_trusted_certificate" in values else "system"
    for entry in confparse.kong_list(raw):
        if entry == "system":
            bundle = system_bundle()
            with warnings.catch_warnings():  # OS bundles hold old roots that cryptography frowns upon
                warnings.simplefilter("ignore")
                trust.append(TrustEntry(entry, load_cert_file(Path(bundle)) if bundle else None))
        elif entry.startswith("-----BEGIN"):
            trust.append(TrustEntry("inline PEM", CertFile("inline PEM", pkiload.parse_certs(entry.encode(), "inline PEM"))))
        else:
            trust.append(TrustEntry(entry, _maybe_cert(Path(entry), entry)))

    def ref(key: str) -> str | None:
        v = values.get(key)
        return v.value if v and v.value and v.value != "NONE" else None

    cert, key = ref("pg_ssl_cert"), ref("pg_ssl_cert_key")
    return KongInput(
        path=str(path), values=values, trust=tuple(trust),
        cert=_maybe_cert(Path(cert), cert) if cert else None,
        key=_maybe_key(Path(key), key) if key else None,
        access={k: path_chain(p) for k, p in (("pg_ssl_cert", cert), ("pg_ssl_cert_key", key)) if p},
    )


def account(name: str) -> Account | None:
    """uid and groups of an OS user, or None when this host has no such user."""
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        return None
    gids = {pw.pw_gid} | {g.gr_gid for g in grp.getgrall() if name in g.gr_mem}
    return Account(name=name, uid=pw.pw_uid, gids=frozenset(gids))


def _owner_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def gather(
    directory: Path | None, *, postgresql_conf: Path | None = None, pg_hba: Path | None = None,
    pg_ident: Path | None = None, kong_conf: Path | None = None, pg_os_user: str = "postgres",
    kong_os_user: str = KONG_DEFAULT_OS_USER,
) -> VerifyInput:
    """Read everything one `verify` run looks at."""
    if directory is None and not any((postgresql_conf, pg_hba, pg_ident, kong_conf)):
        raise InputError("nothing to verify; pass a PKI directory and/or --postgresql-conf, --pg-hba, --kong-conf")
    for p in (postgresql_conf, pg_hba, pg_ident, kong_conf):
        if p is not None and not p.exists():
            raise InputError(f"{p} does not exist; pass the path of the config file")
    return VerifyInput(
        pki=load_pki_dir(directory) if directory is not None else None,
        pg=load_pg(postgresql_conf) if postgresql_conf else None,
        hba=load_hba(pg_hba) if pg_hba else None,
        ident=load_ident(pg_ident) if pg_ident else None,
        kong=load_kong(kong_conf) if kong_conf else None,
        pg_os_user=pg_os_user,
        pg_account=account(pg_os_user),
        kong_os_user=kong_os_user,
        kong_account=account(kong_os_user) if kong_conf else None,
    )
