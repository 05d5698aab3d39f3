"""`pgkongtls status`: every certificate and CRL with days left, for people, cron and monitoring.

Apart from cli_lifecycle (the writing commands) so each stays a readable size; the status itself
is computed by the library (lifecycle.compute_status via ops.status), and this module only prints it.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from pgkongtls import DEFAULT_WARN_DAYS, output
from pgkongtls.cli import main
from pgkongtls.cli_options import WARN_DAYS, dir_option

if TYPE_CHECKING:
    from pgkongtls.lifecycle import Notice, Status

#: `status` exit code when a certificate in service or the CRL has expired
#: (1 is any error, 2 is click's usage error).
EXIT_EXPIRED = 3
#: `status --fail-within` exit code when something in service expires within the window.
EXIT_DUE = 4
#: `status --format`: the first is the default.
STATUS_FORMATS = ("table", "json", "prometheus")


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
