"""`verify` and `probe`: check files before a restart, and a live server after it.

Registered on the `main` group by importing this module from cli.py. Thin:
parse options, call pgkongtls.inputs/verify/probe, print (people on stderr, --json
on stdout). Library modules are imported inside each command for a fast start-up.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from pgkongtls import DEFAULT_WARN_DAYS, output
from pgkongtls.cli import main
from pgkongtls.cli_options import WARN_DAYS, dir_option, pick_dir
from pgkongtls.consumers import KONG_DEFAULT_OS_USER

if TYPE_CHECKING:
    from pgkongtls.probe import ProbeReport
    from pgkongtls.verify import Finding



def print_findings(findings: list[Finding], what: str) -> None:
    if not findings:
        output.line(f"verify: no problems found in {what}")
        return
    rows = [((f.severity, "red" if f.severity == "error" else "yellow"), f.id, f.file, f.message, f.fix) for f in findings]
    output.table(f"pgkongtls verify: {what}", ("severity", "id", "file", "finding", "fix"), rows, lines=True)
    errors = sum(f.severity == "error" for f in findings)
    output.line(f"{errors} error(s), {len(findings) - errors} warning(s)")


@main.command()
@click.argument("directory", required=False, type=click.Path(path_type=Path))
@dir_option(default=None)
@click.option("--postgresql-conf", type=click.Path(path_type=Path), default=None,
              help="postgresql.conf (or the included snippet): ssl_* files, key owner and mode.")
@click.option("--pg-hba", type=click.Path(path_type=Path), default=None,
              help="pg_hba.conf: the line that decides for Kong must check the client certificate.")
@click.option("--pg-ident", type=click.Path(path_type=Path), default=None,
              help="pg_ident.conf: the map must cover the client CN.")
@click.option("--kong-conf", type=click.Path(path_type=Path), default=None,
              help="kong.conf: pg_ssl_*, lua_ssl_trusted_certificate, lua_ssl_verify_depth.")
@click.option("--edition", type=click.Choice(["enterprise", "oss"]), default="enterprise", show_default=True,
              help="Kong edition: Enterprise-only keys are an error with oss.")
@click.option("--warn-days", type=WARN_DAYS, default=DEFAULT_WARN_DAYS, show_default=True,
              help="Warn about certificates that expire within this many days.")
@click.option("--pg-os-user", default="postgres", show_default=True,
              help="The OS account PostgreSQL runs as (owner rule for ssl_key_file).")
@click.option("--kong-os-user", default=KONG_DEFAULT_OS_USER, show_default=True,
              help="The OS account Kong's workers run as (nginx_user): it must read pg_ssl_cert_key.")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as a JSON list on stdout.")
def verify(directory: Path | None, pki_dir: Path | None, postgresql_conf: Path | None, pg_hba: Path | None, pg_ident: Path | None,
           kong_conf: Path | None, edition: str, warn_days: int, pg_os_user: str, kong_os_user: str,
           as_json: bool) -> None:
    """Check a PKI directory and the config files that use it; exit 1 on any error.

    DIRECTORY (or --dir DIRECTORY) is a pgkongtls directory, or one made by hand
    with the source document's file names (root.crt, intermediate.crt, server.crt,
    server.key, client.crt, client.key, chain.crt).

    \b
    Example:
      pgkongtls verify --dir pki
      pgkongtls verify --dir pki --postgresql-conf /etc/postgresql/15/main/conf.d/tls.conf \\
          --pg-hba /etc/postgresql/15/main/pg_hba.conf --kong-conf /etc/kong/kong.conf
      pgkongtls verify ./openssl-made-dir --json
    """
    from pgkongtls import inputs
    from pgkongtls import verify as v
    from pgkongtls.certs import utcnow

    directory = pick_dir(directory, pki_dir)
    data = inputs.gather(directory, postgresql_conf=postgresql_conf, pg_hba=pg_hba, pg_ident=pg_ident,
                         kong_conf=kong_conf, pg_os_user=pg_os_user, kong_os_user=kong_os_user)
    findings = v.run_checks(data, now=utcnow(), warn_days=warn_days, edition=edition)
    what = ", ".join(str(p) for p in (directory, postgresql_conf, pg_hba, pg_ident, kong_conf) if p is not None)
    if as_json:
        click.echo(json.dumps([f.as_dict() for f in findings], indent=2))
    else:
        print_findings(findings, what)
    if any(f.severity == "error" for f in findings):
        sys.exit(1)


def print_report(r: ProbeReport) -> None:
    if not r.ssl:
        output.line(f"probe {r.target}: TLS refused")
    else:
        output.line(f"probe {r.target}: {r.protocol}, {r.cipher}")
        rows = [(str(i), c.subject, c.issuer, ", ".join(c.sans), c.not_after, c.sha256[:23] + "…")
                for i, c in enumerate(r.presented)]
        output.table("certificates the server presented", ("#", "subject", "issuer", "SANs", "not after",
                                                           "SHA-256 (--json: full)"), rows, lines=True)
    for verdict in r.verdicts:
        mark = {True: ("PASS", "green"), False: ("FAIL", "red"), None: ("NOTE", "yellow")}[verdict.ok]
        output.line(f"{verdict.name}: {verdict.detail}", label=mark)


@main.command()
@click.argument("target")
@click.option("--hostaddr", default=None, metavar="ADDR",
              help="Connect to this IP address; TARGET's host stays the name that is checked (libpq's hostaddr).")
@click.option("--kong-conf", type=click.Path(path_type=Path), default=None,
              help="Judge as this Kong would: its trust list, depth, client certificate and pg_user.")
@click.option("--ca", type=click.Path(path_type=Path), default=None,
              help="Trust file (PEM) for the Kong and libpq verdicts.")
@click.option("--depth", type=click.IntRange(min=0), default=None,
              help="Verify depth for the Kong verdict [default: 1, Kong's lua_ssl_verify_depth default].")
@click.option("--cert", type=click.Path(path_type=Path), default=None, help="Client certificate to present.")
@click.option("--key", type=click.Path(path_type=Path), default=None, help="Its private key.")
@click.option("--db-user", "--user", "user", default=None,
              help="Send a StartupMessage as this PostgreSQL role and report the answer.")
@click.option("--database", default=None, help="Database for the StartupMessage [default: the user].")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=5.0, show_default=True,
              help="Seconds to wait for each step.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
def probe(target: str, hostaddr: str | None, kong_conf: Path | None, ca: Path | None, depth: int | None, cert: Path | None,
          key: Path | None, user: str | None, database: str | None, timeout: float, as_json: bool) -> None:
    """Connect to a PostgreSQL server: SSLRequest, TLS handshake, presented chain, and verdicts
    as Kong would judge it (trust file + depth, no host name) and as libpq verify-full would.

    Exit 1 when TLS is refused or any verdict fails.

    \b
    Example:
      pgkongtls probe db.internal:5432 --ca pki/chain.crt --depth 1
      pgkongtls probe 10.0.0.5 --ca pki/chain.crt --cert pki/client.crt --key pki/client.key --db-user kong
      pgkongtls probe db.internal --hostaddr 10.0.0.5 --ca pki/chain.crt
      pgkongtls probe db.internal --kong-conf /etc/kong/kong.conf --json
    """
    from pgkongtls import probe as p
    from pgkongtls import probe_options as po

    opts = po.options_from(kong_conf=kong_conf, ca=ca, depth=depth, cert=cert, key=key, user=user,
                           database=database, timeout=timeout)
    report = p.probe(po.parse_target(target, hostaddr=hostaddr), opts)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        print_report(report)
    if report.failed:
        sys.exit(1)
