"""`bundle` and `install`: from the PKI directory to the files on each host.

Plans come from the pure modules (`bundle`, `install`); this module looks up
the host's accounts, decides owners and modes by the rules in `consumers`, and
hands the writes to `fsio`, which applies them all or none.
"""

from __future__ import annotations

import grp
import hashlib
import json
import os
import posixpath
import pwd
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path

from pgkongtls import bundle as b
from pgkongtls import fsio
from pgkongtls import install as ins
from pgkongtls.consumers import KONG_APPLY, PG_KEY_GROUP, SSL_DIR_MODE, can_traverse
from pgkongtls.errors import InputError, StateError
from pgkongtls.manifest import MANIFEST_NAME, Manifest, dumps

#: In the ssl directory: what install wrote there last (name -> SHA-256), so it never rewrites another's file.
STATE_FILE = ".pgkongtls-installed.json"


def make_bundle(pki_dir: Path, host: str, out: Path, opts: b.Options, *, tar: Path | None = None,
                force: bool = False) -> b.Bundle:
    """Plan the bundle from the PKI and write it to `out` (and `tar`)."""
    m = fsio.load_manifest(pki_dir)
    plan = b.plan(host, m, fsio.reader(Path(pki_dir)), opts)
    if Path(os.path.abspath(out)) == Path(os.path.abspath(pki_dir)):
        raise InputError("--out is the PKI directory; a bundle goes into a directory of its own")
    files = {f.name: f.content for f in plan.files}
    files[b.DESCRIPTION] = b.describe(plan).encode()
    previous: frozenset[str] | None = None
    if Path(out).exists():
        old = fsio.read_text(Path(out) / b.DESCRIPTION) if Path(out).is_dir() else None
        if old is None:
            raise StateError(f"{out} exists and is not a bundle; choose another --out")
        if not force:
            raise StateError(f"{out} exists; pass --force to replace the bundle there")
        previous = frozenset(os.listdir(out))
    if tar is not None and Path(tar).exists():
        raise StateError(f"{tar} exists; remove it or choose another --tar")
    fsio.write_bundle(out, files, frozenset(f.name for f in plan.files if f.private), replace=previous)
    if tar is not None:
        fsio.write_new_private(tar, b.tar_bytes(plan, Path(os.path.abspath(out)).name))
    record = {host: plan.ssl_dir, **({f"{host}-conf": plan.config} if plan.config else {})}
    if any(m.deploy.get(k) != v for k, v in record.items()):
        set_deploy_paths(pki_dir, record)
    return plan


def set_deploy_paths(pki_dir: Path, paths: dict[str, str]) -> Manifest:
    """Record where each host keeps the files, so render and the hints need no --pg-dir/--ssl-dir."""
    for key, path in paths.items():
        (b.check_config if key.endswith("-conf") else b.check_ssl_dir)(path)
    with fsio.transaction(Path(pki_dir)) as tx:
        m = tx.manifest()
        tx.refuse_foreign(m)
        new = replace(m, deploy={**m.deploy, **{h: posixpath.normpath(p) for h, p in paths.items()}})
        if new != m:
            tx.commit({MANIFEST_NAME: dumps(new).encode()})
        return new


def load_bundle(directory: Path) -> b.Bundle:
    contents = fsio.read_bundle_dir(directory)
    text = contents.pop(b.DESCRIPTION, None)
    if text is None:
        raise StateError(f"{directory} has no {b.DESCRIPTION}; make it with pgkongtls bundle postgres|kong --out DIR")
    try:
        return b.parse(text.decode(), contents)
    except UnicodeDecodeError:
        raise StateError(f"{directory}/{b.DESCRIPTION} is not UTF-8; make the bundle again") from None


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int
    gids: frozenset[int]


def account(name: str, option: str) -> Account:
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        raise InputError(f"this host has no OS user {name!r}; pass {option} with the account the server runs as"
                         ) from None
    gids = {pw.pw_gid} | {g.gr_gid for g in grp.getgrall() if name in g.gr_mem}
    return Account(name, pw.pw_uid, pw.pw_gid, frozenset(gids))


def check_traversal(directory: Path, who: Account) -> None:
    """The server opens its files by path: every existing directory above them must let it through."""
    for d in [*reversed(directory.parents), directory]:
        st = d.stat() if d.exists() else None
        if st is not None and not can_traverse(stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, who_uid=who.uid,
                                               who_gids=who.gids):
            raise InputError(f"{who.name} cannot enter {d}, so the server cannot read its files; "
                             f"chmod o+x {d} (or choose another --ssl-dir)")


@dataclass
class Plan:
    """Everything one install would write, and what to tell the operator."""

    writes: list[fsio.HostWrite] = field(default_factory=list)
    dirs: list[fsio.HostDir] = field(default_factory=list)
    old: dict[Path, bytes | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    private: set[Path] = field(default_factory=set)

    def add(self, path: Path, data: bytes, owner: tuple[int, int, int], old: bytes | None) -> None:
        if old == data and path.exists() and fsio.file_owner(path) == owner:
            return
        self.writes.append(fsio.HostWrite(path, data, *owner))
        self.old[path] = old


def _ssl_files(plan: Plan, bun: b.Bundle, ssl_dir: Path, who: Account, *, key_group: bool) -> None:
    """The certificates and the key into ssl_dir, refusing to replace a file install did not write."""
    state_path = ssl_dir / STATE_FILE
    raw = fsio.read_text(state_path) if ssl_dir.exists() else None
    try:
        parsed = json.loads(raw) if raw else {}
    except ValueError:
        parsed = {}
    state: dict[str, str] = parsed if isinstance(parsed, dict) else {}  # damaged: nothing counts as ours
    missing = [d for d in [*reversed(ssl_dir.parents), ssl_dir] if not d.exists()]
    plan.dirs += [fsio.HostDir(d, 0, 0, SSL_DIR_MODE) for d in missing]  # like mkdir -p, root-owned
    new_state = dict(state)
    for f in bun.files:
        if f.destination is None:
            continue
        path = ssl_dir / f.name
        current = fsio.reader(ssl_dir)(f.name) if ssl_dir.exists() else None
        if current is not None and current != f.content and state.get(f.name) != hashlib.sha256(current).hexdigest():
            raise StateError(f"{path} exists and was not written by pgkongtls install; move it away or choose "
                             "another --ssl-dir")
        if f.private:
            uid, gid = (0, who.gid) if key_group else (who.uid, who.gid)
            mode = PG_KEY_GROUP[2] if key_group else f.mode
        else:
            uid, gid, mode = 0, 0, f.mode
        plan.add(path, f.content, (uid, gid, mode), current)
        if f.private:
            plan.private.add(path)
        new_state[f.name] = f.sha256
    text = (json.dumps(dict(sorted(new_state.items())), indent=2) + "\n").encode()
    plan.add(state_path, text, (0, 0, 0o644), raw.encode() if raw is not None else None)


def _ssl_dir(bun: b.Bundle, given: str | None) -> Path:
    if given is not None and posixpath.normpath(given) != bun.ssl_dir:
        raise InputError(f"this bundle's snippets point at {bun.ssl_dir}; make the bundle again with "
                         f"--ssl-dir {given}, or leave out --ssl-dir")
    return Path(bun.ssl_dir)


def _config(plan: Plan, path: Path, new: str, old: str | None) -> None:
    """A config file: keeps its owner and mode; a new one is root-owned 0644."""
    owner = fsio.file_owner(path) if old is not None else (0, 0, 0o644)
    plan.add(path, new.encode(), owner, old.encode() if old is not None else None)


def _snippet(bun: b.Bundle, kind: str) -> str:
    f = bun.file(kind)
    if f is None:
        raise StateError(f"the bundle has no {kind} snippet; make it with pgkongtls bundle {bun.host}")
    return f.content.decode()


def plan_postgres(bun: b.Bundle, conf_dir: Path, *, ssl_dir: str | None, os_user: str | None,
                  key_group: bool) -> Plan:
    if bun.host != "postgres":
        raise InputError("this is a Kong bundle; install it with --kong-conf PATH")
    who = account(os_user or bun.os_user, "--pg-os-user")
    target = _ssl_dir(bun, ssl_dir)
    check_traversal(target, who)
    paths = {n: Path(os.path.realpath(conf_dir / n)) for n in ("postgresql.conf", "pg_hba.conf", "pg_ident.conf")}
    texts = {n: fsio.read_text(p) for n, p in paths.items()}
    for n, t in texts.items():
        if t is None and n != "pg_ident.conf":
            raise InputError(f"{paths[n]} does not exist; pass --pg-conf-dir the directory that holds "
                             "postgresql.conf and pg_hba.conf (the data directory, or /etc/postgresql/15/main)")
    plan = Plan()
    _ssl_files(plan, bun, target, who, key_group=key_group)
    new_conf, rel = ins.pg_conf(texts["postgresql.conf"] or "")
    own = Path(os.path.realpath(conf_dir / rel))
    if not own.parent.is_dir():
        raise InputError(f"{own.parent} (include_dir) does not exist; create it or remove include_dir")
    old_own = fsio.read_text(own)
    if old_own is not None and not ins.is_owned(old_own):
        raise StateError(f"{own} exists and was not written by pgkongtls install; move it away and install again")
    _config(plan, paths["postgresql.conf"], new_conf, texts["postgresql.conf"])
    pg_owner = fsio.file_owner(paths["postgresql.conf"])
    plan.add(own, ins.owned_pg_conf(_snippet(bun, "postgresql.conf")).encode(), pg_owner,
             old_own.encode() if old_own is not None else None)
    hba = ins.pg_hba(texts["pg_hba.conf"] or "", _snippet(bun, "pg_hba.conf"))
    _config(plan, paths["pg_hba.conf"], hba, texts["pg_hba.conf"])
    above = ins.rules_above(hba, "pg_hba.conf")
    if above:
        plan.notes.append(f"warning: {len(above)} rule line(s) above the pgkongtls block in {paths['pg_hba.conf']} "
                          f"(first: {above[0]!r}); the first match wins, so move the block to the top")
    ident_new = ins.pg_ident(texts["pg_ident.conf"] or "", _snippet(bun, "pg_ident.conf"))
    ident_old = texts["pg_ident.conf"]
    owner = fsio.file_owner(paths["pg_ident.conf"]) if ident_old is not None else pg_owner
    plan.add(paths["pg_ident.conf"], ident_new.encode(), owner, ident_old.encode() if ident_old is not None else None)
    plan.notes.append("reload PostgreSQL to use them: pgkongtls install ... --reload, or SELECT pg_reload_conf();")
    return plan


def plan_kong(bun: b.Bundle, kong_conf: Path, *, ssl_dir: str | None, os_user: str | None) -> Plan:
    if bun.host != "kong":
        raise InputError("this is a PostgreSQL bundle; install it with --pg-conf-dir PATH")
    who = account(os_user or bun.os_user, "--kong-os-user")
    target = _ssl_dir(bun, ssl_dir)
    check_traversal(target, who)
    path = Path(os.path.realpath(kong_conf))
    if not path.parent.is_dir():
        raise InputError(f"{path.parent} does not exist; pass --kong-conf the kong.conf Kong reads")
    plan = Plan()
    _ssl_files(plan, bun, target, who, key_group=False)
    old = fsio.read_text(path)
    _config(plan, path, ins.kong_conf(old or "", _snippet(bun, "kong.conf")), old)
    plan.notes.append(f"Kong reads these only when it prepares its prefix: {KONG_APPLY}")
    return plan


def dry_run(plan: Plan) -> str:
    """The unified diff of every file the plan would change; a key's content is never shown."""
    out = []
    for w in plan.writes:
        old = plan.old[w.path]
        mode = f"{w.mode:04o} {w.uid}:{w.gid}"
        if w.path in plan.private:
            out.append(f"--- {'/dev/null' if old is None else w.path}\n+++ {w.path}\n"
                       f"@@ private key ({len(w.data)} bytes, mode {mode}), not shown @@\n")
            continue
        text = ins.diff(str(w.path), old.decode(errors="replace") if old is not None else None,
                        w.data.decode(errors="replace"))
        out.append(text or f"--- {w.path}\n+++ {w.path}\n@@ owner and mode become {mode} @@\n")
    return "".join(out)


def leaf_sha256(pem: bytes) -> str:
    """SHA-256 of the first certificate of a PEM file: what the server sends as its leaf."""
    import ssl

    text = pem.decode(errors="replace")
    first = text[text.find("-----BEGIN CERTIFICATE-----"):]
    first = first[:first.find("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")]
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(first)).hexdigest()


def apply(plan: Plan) -> list[Path]:
    fsio.install_files(plan.writes, plan.dirs)
    return [w.path for w in plan.writes]
