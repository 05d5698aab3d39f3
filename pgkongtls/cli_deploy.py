"""`bundle postgres|kong` and `install`: what one host needs, and putting it in place there.

Registered on the `main` group by importing this module from cli.py (lazily).
Thin: parse options, call pgkongtls.deploy / pgreload, print (people on stderr,
--dry-run's diff on stdout).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from pgkongtls import output
from pgkongtls.cli import fail, main
from pgkongtls.cli_options import dir_option
from pgkongtls.consumers import PG_MIN_TLS


def _plain(lines: list[str]) -> None:
    for line in lines:
        output.line(line)


@main.group()
def bundle() -> None:
    """Collect what one host needs from the PKI into a directory to copy there (never a CA key).

    \b
    Example:
      pgkongtls bundle postgres --dir pki --out db-bundle --ssl-dir /etc/postgresql/pgkongtls
      pgkongtls bundle kong --dir pki --out kong-bundle --client kong-node-1 --tar kong-bundle.tar
    """


def _bundle_options(f: Any) -> Any:
    for deco in reversed([
        dir_option(),
        click.option("--out", type=click.Path(path_type=Path), required=True,
                     help="Bundle directory to create (mode 0700, keys 0600)."),
        click.option("--ssl-dir", default=None,
                     help="Where the files go on the host [default: /etc/postgresql/pgkongtls or /etc/kong/pgkongtls]."),
        click.option("--edition", type=click.Choice(["enterprise", "oss"]), default="enterprise", show_default=True,
                     help="Kong edition: only Enterprise presents a client certificate."),
        click.option("--tar", type=click.Path(path_type=Path), default=None,
                     help="Also write the bundle as one tar archive (mode 0600)."),
        click.option("--force", is_flag=True, help="Replace a bundle pgkongtls wrote in --out before."),
    ]):
        f = deco(f)
    return f


def _made(host: str, out: Path, plan: Any, tar: Path | None) -> None:
    from pgkongtls import bundle as b

    lines = [f"bundle for the {host} host written to {out}" + (f" and {tar}" if tar else "")]
    for f in plan.files:
        where = f.destination or b.SNIPPET_TARGET[f.kind]
        lines.append(f"  {f.name:24} -> {where}  ({f.owner}:{f.group} {f.mode:04o})")
    option = "--pg-conf-dir" if host == "postgres" else "--kong-conf"
    default = "/etc/postgresql/15/main" if host == "postgres" else "/etc/kong/kong.conf"
    conf = "" if plan.config else f" {option} {default}"
    conf += " --reload" if host == "postgres" else ""
    after = "" if host == "postgres" else " && kong restart"
    lines += [f"next: copy it to the host: scp -rp {out} HOST:",
              f"next: on that host: pgkongtls install {out.name}{conf}{after}"]
    _plain(lines)


@bundle.command("postgres")
@_bundle_options
@click.option("--server", "server_name", default="server", show_default=True, help="Server certificate name.")
@click.option("--auth", type=click.Choice(["cert", "verify-full", "scram"]), default=None,
              help="pg_hba method [default: cert; scram with --edition oss].")
@click.option("--min-tls", type=click.Choice(PG_MIN_TLS), default=None,
              help="ssl_min_protocol_version [default: as render postgres].")
@click.option("--pg-conf-dir", default=None,
              help="The host's postgresql.conf directory, recorded so install needs no --pg-conf-dir.")
def bundle_postgres(pki_dir: Path, out: Path, ssl_dir: str | None, edition: str, tar: Path | None, force: bool,
                    server_name: str, auth: str | None, min_tls: str | None, pg_conf_dir: str | None) -> None:
    """The database host's bundle: server certificate and key, ssl_ca_file, CRL, and config snippets.

    \b
    Example:
      pgkongtls bundle postgres --dir pki --out db-bundle --server replica-1
    """
    from pgkongtls import bundle as b
    from pgkongtls import deploy

    opts = b.Options(ssl_dir=ssl_dir, server=server_name, edition=edition, auth=auth, min_tls=min_tls,
                     config=pg_conf_dir)
    _made("postgres", out, deploy.make_bundle(pki_dir, "postgres", out, opts, tar=tar, force=force), tar)


@bundle.command("kong")
@_bundle_options
@click.option("--client", "client_name", default="client", show_default=True, help="Client certificate name.")
@click.option("--kong-conf", default=None, help="The host's kong.conf, recorded so install needs no --kong-conf.")
def bundle_kong(pki_dir: Path, out: Path, ssl_dir: str | None, edition: str, tar: Path | None, force: bool,
                client_name: str, kong_conf: str | None) -> None:
    """The Kong host's bundle: client certificate and key, the trust file, and kong.conf keys.

    \b
    Example:
      pgkongtls bundle kong --dir pki --out kong-bundle --client kong-node-1 --ssl-dir /etc/kong/pgkongtls
    """
    from pgkongtls import bundle as b
    from pgkongtls import deploy

    opts = b.Options(ssl_dir=ssl_dir, client=client_name, edition=edition, config=kong_conf)
    _made("kong", out, deploy.make_bundle(pki_dir, "kong", out, opts, tar=tar, force=force), tar)


@main.command()
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--pg-conf-dir", type=click.Path(path_type=Path), default=None,
              help="Directory of postgresql.conf, pg_hba.conf, pg_ident.conf (data dir, or /etc/postgresql/15/main).")
@click.option("--kong-conf", type=click.Path(path_type=Path), default=None, help="The kong.conf Kong reads.")
@click.option("--ssl-dir", default=None, help="Where the files go [default: the bundle's --ssl-dir; must match it].")
@click.option("--pg-os-user", default=None, help="The OS account PostgreSQL runs as [default: postgres].")
@click.option("--kong-os-user", default=None, help="Kong's nginx_user, which reads the key [default: kong].")
@click.option("--key-group", is_flag=True, help="Key root:<pg-os-user> 0640 instead of <pg-os-user> 0600.")
@click.option("--reload", "do_reload", is_flag=True, help="Reload PostgreSQL and report what it refused.")
@click.option("--pg-log", type=click.Path(path_type=Path), default=None,
              help="PostgreSQL's log, read after --reload [default: the collector's file, or Debian's].")
@click.option("--dry-run", is_flag=True, help="Print the diff of every file it would change; change nothing.")
def install(directory: Path, pg_conf_dir: Path | None, kong_conf: Path | None, ssl_dir: str | None,
            pg_os_user: str | None, kong_os_user: str | None, key_group: bool, do_reload: bool,
            pg_log: Path | None, dry_run: bool) -> None:
    """Put a bundle in place on this host, idempotently: files, owners, modes and marked config blocks.

    \b
    Example:
      pgkongtls install db-bundle --pg-conf-dir /etc/postgresql/15/main --reload
      pgkongtls install kong-bundle --kong-conf /etc/kong/kong.conf
    """
    from pgkongtls import deploy

    if pg_conf_dir is not None and kong_conf is not None:
        fail("pass --pg-conf-dir PATH for a PostgreSQL bundle or --kong-conf PATH for a Kong bundle, not both")
    bun = deploy.load_bundle(directory)
    if pg_conf_dir is None and kong_conf is None:
        if bun.config is None:
            option = "--pg-conf-dir PATH" if bun.host == "postgres" else "--kong-conf PATH"
            fail(f"this bundle does not know the {bun.host} config; pass {option}")
        pg_conf_dir, kong_conf = (Path(bun.config), None) if bun.host == "postgres" else (None, Path(bun.config))
    if pg_conf_dir is not None:
        plan = deploy.plan_postgres(bun, pg_conf_dir, ssl_dir=ssl_dir, os_user=pg_os_user, key_group=key_group)
    else:
        if key_group or do_reload:
            fail("--key-group and --reload are for a PostgreSQL bundle (--pg-conf-dir)")
        assert kong_conf is not None
        plan = deploy.plan_kong(bun, kong_conf, ssl_dir=ssl_dir, os_user=kong_os_user)
    if dry_run:
        click.echo(deploy.dry_run(plan), nl=False)
        _plain([f"dry run: {len(plan.writes)} file(s) would change, nothing written"])
        return
    changed = deploy.apply(plan)
    _plain([f"installed: {p}" for p in changed] + ([] if changed else ["nothing to change: already installed"])
           + [n if n.startswith("warning: ") else f"next: {n}" for n in plan.notes
              if not (do_reload and n.startswith("reload"))])
    if do_reload:
        assert pg_conf_dir is not None
        from pgkongtls import pgreload

        cert = bun.file("certificate")
        errors = pgreload.reload(pg_conf_dir, pg_os_user or bun.os_user, pg_log=pg_log,
                                 server_cert_sha256=deploy.leaf_sha256(cert.content) if cert else None)
        for line in errors:
            click.echo(f"Error: {line}", err=True)
        if errors:
            sys.exit(1)
        _plain(["reloaded: PostgreSQL took the new files"])


@main.command("deploy-paths")
@dir_option()
@click.option("--pg-dir", "--postgres", "pg_path", default=None,
              help="Directory of the files on the database host (render --pg-dir, bundle postgres --ssl-dir).")
@click.option("--kong-dir", "--kong", "kong_path", default=None,
              help="Directory of the files on the Kong host (render --kong-dir, bundle kong --ssl-dir).")
@click.option("--pg-conf-dir", default=None, help="Directory of postgresql.conf on the database host.")
@click.option("--kong-conf", default=None, help="kong.conf on the Kong host.")
def deploy_paths(pki_dir: Path, pg_path: str | None, kong_path: str | None, pg_conf_dir: str | None,
                 kong_conf: str | None) -> None:
    """Record (or print) where each host keeps its files; render, bundle and the hints use them.

    \b
    Example:
      pgkongtls deploy-paths --dir pki --pg-dir /etc/postgresql/15/main/tls --pg-conf-dir /etc/postgresql/15/main
    """
    from pgkongtls import deploy, fsio

    given = (("postgres", pg_path), ("kong", kong_path), ("postgres-conf", pg_conf_dir), ("kong-conf", kong_conf))
    updates = {k: p for k, p in given if p is not None}
    m = deploy.set_deploy_paths(pki_dir, updates) if updates else fsio.load_manifest(pki_dir)
    for host in ("postgres", "kong"):
        click.echo(f"{host} {m.deploy_dir(host)}" + ("" if host in m.deploy else " (default)"))
    for key in ("postgres-conf", "kong-conf"):
        if key in m.deploy:
            click.echo(f"{key} {m.deploy[key]}")
