"""Day 2 commands: `issue client|server`, `renew`, `revoke`, `crl`, `status`.

Registered on the `main` group by importing this module from cli.py. As thin as
cli.py: parse options, call pgkongtls.ops, print (people on stderr, --json on
stdout). Library modules are imported inside each command for a fast start-up.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from pgkongtls import DEFAULT_CRL_DAYS, DEFAULT_DAYS_LEAF, DEFAULT_SERVER_EKU, DEFAULT_WARN_DAYS, KEY_TYPES, SERVER_EKUS, output
from pgkongtls.cli import lock_wait, main, wait_option
from pgkongtls.cli_options import CRL_DAYS, DAYS, WARN_DAYS, dir_option, names_of, names_option, need_names
from pgkongtls.cli_prune import keep_backups_option
from pgkongtls.manifest import REVOCATION_REASONS

if TYPE_CHECKING:
    from pgkongtls.lifecycle import Notice, Status
    from pgkongtls.manifest import CertEntry, Change

F = TypeVar("F", bound=Callable[..., Any])
Decorator = Callable[[F], F]

#: Rows shown in a summary table; a fleet of 1,000 is summarised, not listed.
MAX_ROWS = 20
#: `status` exit code when a certificate in service or the CRL has expired
#: (1 is any error, 2 is click's usage error).
EXIT_EXPIRED = 3
#: `status --fail-within` exit code when something in service expires within the window.
EXIT_DUE = 4
#: `status --format`: the first is the default.
STATUS_FORMATS = ("table", "json", "prometheus")


def passphrase_option() -> Decorator[Any]:
    return click.option("--ca-passphrase-file", "passphrase_file", type=click.Path(path_type=Path), default=None,
                        help="File holding the passphrase of the CA keys (when init used --ca-passphrase-file).")


def crl_days_option() -> Decorator[Any]:
    return click.option("--crl-days", type=CRL_DAYS, default=DEFAULT_CRL_DAYS, show_default=True,
                        help="CRL lifetime (nextUpdate). PostgreSQL refuses every client certificate once it "
                             "passes, so keep it long and watch it with pgkongtls status.")


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


def print_next(steps: list[str]) -> None:
    """The `next:` hints of a day-2 command (cli_rotate's too): commands to paste, never wrapped."""
    output.hints(steps)


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
    print_next(steps)


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
    print_next([redeploy(pki_dir, "postgres", name).replace("the database host", "that server")])


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
    print_next(steps + ([f"… and {len(change.done) - MAX_ROWS} more, one per name"] if len(change.done) > MAX_ROWS else []))


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
    print_next([redeploy(pki_dir, "postgres", name) + " (it brings crl.pem and sets ssl_crl_file)" for name in servers])


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


@main.command()
@dir_option()
@click.option("--warn-days", type=WARN_DAYS, default=DEFAULT_WARN_DAYS, show_default=True,
              help="Warn when a certificate or the CRL's nextUpdate is this close.")
@click.option("--format", "output_format", type=click.Choice(STATUS_FORMATS), default=STATUS_FORMATS[0],
              show_default=True, help="table for people (stderr); json or prometheus (node-exporter textfile) on stdout.")
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option("--fail-within", default=None, metavar="DURATION",
              help=f"Exit {EXIT_DUE} when anything in service (CAs and CRLs too) expires within DURATION (30d, 12h, 2w).")
@click.pass_context
def status(ctx: click.Context, pki_dir: Path, warn_days: int, output_format: str, as_json: bool,
           fail_within: str | None) -> None:
    """Show every certificate and the CRL with days left; for people, cron and monitoring.

    \b
    Exit codes:
      0  nothing has expired (warnings are printed but do not fail)
      1  error: the PKI cannot be read, or a file differs from the manifest
      2  usage error
      3  a certificate in service, or the CRL, has expired
      4  something in service expires within --fail-within

    \b
    Example:
      pgkongtls status --dir pki
      pgkongtls status --dir pki --json --warn-days 45 | jq -r '.notices[].message'
      pgkongtls status --dir pki --fail-within 30d
      pgkongtls status --dir pki --format prometheus > pgkongtls.prom
    """
    from pgkongtls import lifecycle, ops
    from pgkongtls.durations import parse_duration

    if as_json and output_format not in ("table", "json"):
        raise click.UsageError(f"--json and --format {output_format} ask for two outputs; pass only one.")
    window = parse_duration(fail_within, "--fail-within") if fail_within is not None else None
    st = ops.status(pki_dir, warn_days=warn_days)
    if as_json or output_format == "json":
        click.echo(json.dumps(status_json(pki_dir, st), indent=2))
    elif output_format == "prometheus":
        from pgkongtls.metrics import render_prometheus

        click.echo(render_prometheus(st, str(pki_dir)), nl=False)
    else:
        print_status(pki_dir, st)
    due = lifecycle.due_within(st, window) if window is not None else []
    if due and not st.expired:
        output.line(f"expires within {fail_within}: {', '.join(due)}", label=("FAIL:", "bold red"))
    ctx.exit(status_exit_code(st) or (EXIT_DUE if due else 0))


def status_exit_code(st: Status) -> int:
    """What cron and monitoring look at: 3 once anything in service has expired, else 0."""
    return EXIT_EXPIRED if st.expired else 0


def notice_text(pki_dir: Path, n: Notice) -> str:
    """A notice with the command that fixes it."""
    from pgkongtls.lifecycle import Remedy

    fix = {
        Remedy.RENEW: f"pgkongtls renew --dir {pki_dir} {n.name}",
        Remedy.RENEW_CA: f"pgkongtls renew --dir {pki_dir} {n.name} (same key: only chain.crt changes on the hosts), "
                         f"or pgkongtls rotate --dir {pki_dir} begin (new keys)",
        Remedy.REISSUE: f"deploy chain.crt and crl.pem to every host, then: pgkongtls rotate --dir {pki_dir} reissue",
        Remedy.FINISH: f"once every host has this phase's files: pgkongtls rotate --dir {pki_dir} finish",
        Remedy.RESIGN_CRL: f"pgkongtls crl --dir {pki_dir}, copy {n.name} to the database and reload it",
    }[n.remedy]
    return f"{n.message}; {fix}"


def status_json(pki_dir: Path, st: Status) -> dict[str, Any]:
    """`status --json`: the rows, the notices worded as on the terminal, and the exit code."""
    return {
        "now": st.now, "warn_days": st.warn_days, "exit_code": status_exit_code(st),
        "certificates": [{**asdict(c), "sans": list(c.sans)} for c in st.certificates],
        "crl": None if st.crl is None else asdict(st.crl),
        "notices": [{"name": n.name, "severity": n.severity, "message": notice_text(pki_dir, n)} for n in st.notices],
        "expired": st.expired,
    }


#: Above this many certificates the table shows only the CAs and what is due.
TABLE_ROWS = 200


def print_status(pki_dir: Path, st: Status) -> None:
    """The status table and the warnings, on stderr."""
    colour = {"valid": "green", "expiring": "yellow", "expired": "bold red", "revoked": "dim", "superseded": "dim"}
    rows: list[tuple[output.Cell, ...]] = []
    shown = list(st.certificates)
    if len(shown) > TABLE_ROWS:  # a terminal table of 10,000 rows takes ~20 s to lay out, and nobody reads it
        shown = [c for c in shown if c.role in ("root", "intermediate") or c.state in ("expired", "expiring")][:TABLE_ROWS]
    for c in shown:
        who = c.cn + (f"\nSAN: {', '.join(c.sans)}" if c.sans else "")
        base, archived, _ = c.name.partition("@")  # a revoked certificate kept for the CRL: NAME@serial
        name = f"{base}@{c.serial[:8]}…" if archived else c.name
        rows.append((name, c.role, who, c.not_after[:10], str(c.days_left), (c.state, colour[c.state])))
    if st.crl is not None:
        rows.append((st.crl.file, "CRL", "nextUpdate", st.crl.next_update[:10], str(st.crl.days_left),
                     (st.crl.state, colour[st.crl.state])))
    output.table(f"{pki_dir} at {st.now} (serials, issuers: --json)", ("name", "role", "CN / SANs", "not after", "days", "state"),
                 rows, right=("days",), no_wrap=("name", "role", "not after", "days", "state"))
    if len(shown) < len(st.certificates):
        output.line(f"{len(st.certificates) - len(shown)} more certificates (valid or revoked) not shown; "
                    "pgkongtls status --json lists every one")
    for n in st.notices:
        label = ("EXPIRED:", "bold red") if n.severity == "expired" else ("warning:", "yellow")
        output.line(notice_text(pki_dir, n), label=label)
    if not st.notices:
        output.line(f"nothing expires within {st.warn_days} days")
