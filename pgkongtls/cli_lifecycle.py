"""Day 2 commands: `issue client|server`, `renew`, `revoke`, `crl`, `status`.

Registered on the `main` group by importing this module from cli.py. As thin as
cli.py: parse options, call pgkongtls.ops, print (people on stderr, --json on
stdout). Library modules are imported inside each command for a fast start-up.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from pgkongtls import DEFAULT_DAYS_LEAF, DEFAULT_SERVER_EKU, KEY_TYPES, SERVER_EKUS, output
from pgkongtls.cli import lock_wait, main, wait_option
from pgkongtls.cli_options import (
    DAYS,
    crl_days_option,
    dir_option,
    keep_backups_option,
    names_of,
    names_option,
    need_names,
    passphrase_option,
)
from pgkongtls.manifest import REVOCATION_REASONS

if TYPE_CHECKING:
    from pgkongtls.manifest import CertEntry, Change

F = TypeVar("F", bound=Callable[..., Any])
Decorator = Callable[[F], F]

#: Rows shown in a summary table; a fleet of 1,000 is summarised, not listed.
MAX_ROWS = 20


def print_entries(title: str, entries: tuple[CertEntry, ...]) -> None:
    """A short table of what a command did (the first MAX_ROWS rows), on stderr."""
    rows = [(e.name, e.role, e.cn + (f"\nSAN: {', '.join(e.sans)}" if e.sans else ""), e.serial[:16] + "…",
             e.not_after[:10]) for e in entries[:MAX_ROWS]]
    if len(entries) > MAX_ROWS:
        rows.append((f"… {len(entries) - MAX_ROWS} more", "", "", "", ""))
    output.table(title, ("name", "role", "subject / SANs", "serial", "expires"), rows)


#: What the printed bundle command is followed by (bundle prints the install command itself).
THEN_DB = "then, on the database host, the pgkongtls install command it prints"
THEN_KONG = "then, on that Kong node, the pgkongtls install command it prints (it ends with kong restart)"


def redeploy(pki_dir: Path, host: str, name: str | None = None) -> str:
    from pgkongtls.bundle import bundle_command

    return f"{bundle_command(str(pki_dir), host, name)}; {THEN_DB if host == 'postgres' else THEN_KONG}"


@main.group()
def issue() -> None:
    """Issue more certificates from the PKI's CA (the intermediate, or the root with --chain root).

    \b
    Example:
      pgkongtls issue client --dir pki kong-node-1 kong-node-2 --cn '{name}'
      pgkongtls issue server --dir pki replica-1 --db-host replica1.internal
    """


def _issue_common(f: F) -> F:
    for deco in reversed([
        dir_option(),
        click.option("--days", type=DAYS, default=DEFAULT_DAYS_LEAF, show_default=True, help="Certificate lifetime."),
        click.option("--key-type", type=click.Choice(KEY_TYPES), default=None,
                     help="Key algorithm [default: the PKI's, from init]."),
        click.option("--force", is_flag=True, help="Replace a certificate of that name (the old files are kept as .bak)."),
        passphrase_option(),
        wait_option(),
    ]):
        f = deco(f)
    return f


@issue.command("client")
@click.argument("names", nargs=-1, metavar="NAME...")
@names_option()
@click.option("--cn", default=None,
              help="Common name, which PostgreSQL maps to the role [default: the db user]; "
                   "'{name}' is replaced by each NAME.")
@_issue_common
def issue_client(names: tuple[str, ...], name_options: tuple[str, ...], cn: str | None, pki_dir: Path, days: int,
                 key_type: str | None, force: bool, passphrase_file: Path | None) -> None:
    """Issue client certificates, e.g. one identity per Kong node.

    Each NAME is a file name stem (NAME.crt, NAME.key); give many to issue them
    in one go. When the CNs differ from the db user, render ident and render hba
    map them to it (one regular expression when they share a prefix and end in a number).

    \b
    Example:
      pgkongtls issue client --dir pki kong-node-1 kong-node-2 kong-node-3 --cn '{name}'
      pgkongtls render ident --dir pki >> pg_ident.conf
      pgkongtls render hba --dir pki --auth cert >> pg_hba.conf
    """
    from pgkongtls import fsio, ops
    from pgkongtls.lifecycle import LeafRequest

    wanted = need_names(names_of(names, name_options), "issue client")
    with output.progress("issue") as report:
        change = ops.issue(pki_dir, [LeafRequest(name=n, role="client", cn=cn) for n in wanted], days=days,
                           key_type=key_type, force=force, ca_passphrase=fsio.read_passphrase(passphrase_file),
                           lock_wait=lock_wait(), progress=report)
    print_entries(f"issued in {pki_dir}", change.done)
    steps = []
    if any(e.cn != change.manifest.db_user for e in change.done):  # pg_hba.conf and pg_ident.conf must map them
        steps.append(redeploy(pki_dir, "postgres"))
    first = change.done[0].name
    steps.append(redeploy(pki_dir, "kong", first) + ("" if len(change.done) == 1 else
                                                    " (likewise with --client for each other name)"))
    output.hints(steps)


@issue.command("server")
@click.argument("names", nargs=-1, metavar="NAME")
@names_option("Same as the NAME argument.")
@click.option("--db-host", "db_hosts", multiple=True, required=True,
              help="DNS name or IP of this server; repeat for more. The first is also the CN.")
@click.option("--cn", default=None, help="Common name [default: the first --db-host].")
@click.option("--eku", type=click.Choice(SERVER_EKUS), default=DEFAULT_SERVER_EKU, show_default=True,
              help="Purposes; server,client only for probes that present the server certificate as a client (Bitnami).")
@_issue_common
def issue_server(names: tuple[str, ...], name_options: tuple[str, ...], db_hosts: tuple[str, ...], cn: str | None,
                 eku: str, pki_dir: Path, days: int, key_type: str | None, force: bool,
                 passphrase_file: Path | None) -> None:
    """Issue another server certificate, e.g. for a read replica (Kong's pg_ro_* settings).

    NAME is the file name stem (NAME.crt, NAME.key), e.g. replica-1.

    \b
    Example:
      pgkongtls issue server --dir pki replica-1 --db-host replica1.internal --db-host 10.0.0.6
      pgkongtls render postgres --dir pki --server replica-1 > replica1.conf
      pgkongtls issue server --dir pki --name pg-bitnami --db-host pg.db.svc --eku server,client
    """
    from pgkongtls import fsio, ops
    from pgkongtls.certs import server_also_client
    from pgkongtls.lifecycle import LeafRequest

    given = need_names(names_of(names, name_options), "issue server")
    if len(given) > 1:
        raise click.UsageError(f"issue server makes one certificate per run (its --db-host are its own); got {len(given)} names.")
    name = given[0]
    req = LeafRequest(name=name, role="server", cn=cn, hosts=db_hosts, also_client=server_also_client(eku))
    change = ops.issue(pki_dir, [req], days=days,
                       key_type=key_type, force=force, ca_passphrase=fsio.read_passphrase(passphrase_file), lock_wait=lock_wait())
    print_entries(f"issued in {pki_dir}", change.done)
    output.hints([redeploy(pki_dir, "postgres", name).replace("the database host", "that server")])


@main.command()
@click.argument("names", nargs=-1, metavar="[NAME]...")
@names_option()
@dir_option()
@click.option("--expiring-within", default=None, metavar="WINDOW",
              help="Renew every server and client certificate that expires within WINDOW (30d, 12h, 2w).")
@click.option("--reuse-key", is_flag=True, help="Keep each key instead of making a new one.")
@click.option("--days", type=DAYS, default=None,
              help="New lifetime [default: the old certificate's lifetime, within the CA's].")
@click.option("--revoke-old", is_flag=True,
              help="Revoke the replaced certificates (reason superseded) and re-sign the CRLs; needs every CA key.")
@crl_days_option()
@keep_backups_option()
@passphrase_option()
@wait_option()
def renew(names: tuple[str, ...], name_options: tuple[str, ...], pki_dir: Path, expiring_within: str | None,
          reuse_key: bool, days: int | None, revoke_old: bool, crl_days: int, keep_backups: int,
          passphrase_file: Path | None) -> None:
    """Re-issue certificates with the same subject, SANs and file names, and fresh validity.

    The old files are kept as NAME.crt.<serial>.bak and NAME.key.<serial>.bak,
    and stay valid until their notAfter unless --revoke-old puts them on the CRL;
    past --keep-backups per name, expired ones are removed (see pgkongtls prune).
    The rendered configs stay valid: copy the new files and reload.

    `renew intermediate` and `renew root` re-sign a CA's certificate with the
    same key (both need the root key): every leaf keeps verifying, and only
    chain.crt changes on the hosts.

    \b
    Example:
      pgkongtls renew --dir pki server
      pgkongtls renew --dir pki --expiring-within 30d
      pgkongtls renew --dir pki client --revoke-old
      pgkongtls renew --dir pki intermediate
    """
    from pgkongtls import fsio, ops
    from pgkongtls.durations import parse_duration
    from pgkongtls.lifecycle import CA_LEVELS

    given = names_of(names, name_options)
    if len(given) == 1 and given[0] in CA_LEVELS and expiring_within is None and not reuse_key and not revoke_old:
        from pgkongtls.cli_rotate import renew_ca

        return renew_ca(pki_dir, given[0], days, fsio.read_passphrase(passphrase_file))
    window = parse_duration(expiring_within, "--expiring-within") if expiring_within is not None else None
    with output.progress("renew") as report:
        change = ops.renew(pki_dir, given, expiring_within=window, reuse_key=reuse_key, days=days,
                           ca_passphrase=fsio.read_passphrase(passphrase_file), lock_wait=lock_wait(),
                           revoke_old=revoke_old, crl_days=crl_days, keep_backups=keep_backups, progress=report)
    if change is None:
        output.line(f"nothing expires within {expiring_within}; nothing renewed")
        return
    print_entries(f"renewed in {pki_dir}", change.done)
    if revoke_old:
        _print_crl(pki_dir, change, hints=False)  # the redeploy hints below bring crl.pem too
    steps = [redeploy(pki_dir, "postgres" if e.role == "server" else "kong", e.name) for e in change.done[:MAX_ROWS]]
    if revoke_old and all(e.role != "server" for e in change.done):
        steps.insert(0, redeploy(pki_dir, "postgres") + " (it brings crl.pem)")
    output.hints(steps + ([f"… and {len(change.done) - MAX_ROWS} more, one per name"] if len(change.done) > MAX_ROWS else []))


@main.command()
@click.argument("names", nargs=-1, metavar="NAME...")
@names_option()
@dir_option()
@click.option("--reason", type=click.Choice(REVOCATION_REASONS), default="unspecified", show_default=True,
              help="CRL reason code.")
@crl_days_option()
@passphrase_option()
@wait_option()
def revoke(names: tuple[str, ...], name_options: tuple[str, ...], pki_dir: Path, reason: str, crl_days: int,
           passphrase_file: Path | None) -> None:
    """Revoke certificates: mark them in the manifest and write crl.pem (a CRL from every CA level).

    PostgreSQL checks a CRL for every CA level once one is loaded, so crl.pem
    always holds the intermediate's and the root's. render postgres then adds
    ssl_crl_file.

    \b
    Example:
      pgkongtls revoke --dir pki kong-node-2 --reason keyCompromise
      pgkongtls bundle postgres --dir pki --out pki-db-bundle --force   # now with crl.pem, ssl_crl_file
      pgkongtls install pki-db-bundle --pg-conf-dir /etc/postgresql/15/main --reload   # on the database host
    """
    from pgkongtls import fsio, ops

    given = need_names(names_of(names, name_options), "revoke")
    change = ops.revoke(pki_dir, given, reason=reason, crl_days=crl_days,
                        ca_passphrase=fsio.read_passphrase(passphrase_file), lock_wait=lock_wait())
    print_entries(f"revoked in {pki_dir}", change.done)
    also = [e.name for e in change.done if e.name not in given]
    if also:
        output.line(f"revoked as well, same key: {', '.join(also)}")
    _print_crl(pki_dir, change)
    for e in change.done:
        if e.role == "server":
            output.line(
                f"note: Kong never checks a CRL for the database's certificate (libpq only with sslcrl=); "
                f"replace {e.name} on the database host: pgkongtls renew --dir {pki_dir} {e.name}")


def _print_crl(pki_dir: Path, change: Change, *, hints: bool = True) -> None:
    m = change.manifest
    levels = "intermediate and root" if m.chain == "intermediate" else "root"
    output.line(f"wrote {pki_dir / (m.crl_file or '')}: CRLs of the {levels} CA, next update {m.crl_next_update}")
    if not hints:
        return
    servers = [e.name for e in m.by_role("server") if not e.revoked]
    output.hints([redeploy(pki_dir, "postgres", name) + " (it brings crl.pem and sets ssl_crl_file)" for name in servers])


@main.command()
@dir_option()
@crl_days_option()
@passphrase_option()
@wait_option()
def crl(pki_dir: Path, crl_days: int, passphrase_file: Path | None) -> None:
    """Re-sign the CRLs (a fresh nextUpdate) without revoking anything.

    Run it before the CRL's nextUpdate (pgkongtls status warns), copy crl.pem
    to the database host and reload PostgreSQL.

    \b
    Example:
      pgkongtls crl --dir pki --crl-days 90
    """
    from pgkongtls import fsio, ops

    change = ops.refresh_crl(pki_dir, crl_days=crl_days, ca_passphrase=fsio.read_passphrase(passphrase_file),
                             lock_wait=lock_wait())
    _print_crl(pki_dir, change)
