"""`pgkongtls render TARGET`: print or write the config snippets that fit the PKI.

Apart from cli.py (init and the group itself) so that `init` loads none of the renderers'
options and each CLI module stays a readable size. The snippets themselves are the pure
renderers' (render, render_hba, render_clients, render_k8s, render_topology).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from pgkongtls import K8S_TARGETS
from pgkongtls.cli import fail, main
from pgkongtls.cli_options import PORT, dir_option
from pgkongtls.cli_topology import TARGETS as TOPOLOGY_TARGETS
from pgkongtls.cli_topology import topology_options
from pgkongtls.consumers import KONG_DEFAULT_OS_USER, KONG_PG_SSL_VERSIONS, PG_DEFAULT_PORT, PG_MIN_TLS, TLS_PROFILES

RENDER_TARGETS = ("postgres", "hba", "ident", "kong", "kong-env", "libpq", "jdbc", "kubernetes", "all",
                  *TOPOLOGY_TARGETS)


@main.command()
@click.argument("target", type=click.Choice(RENDER_TARGETS), metavar="TARGET")
@dir_option()
@click.option("--pg-dir", default=None, help="Where the files live on the database host [default: the recorded "
              "deploy path (bundle --ssl-dir, deploy-paths), else /etc/postgresql/pgkongtls; never the PKI].")
@click.option("--kong-dir", default=None,
              help="Where the files live on the Kong host [default: the recorded deploy path, else --dir, absolute].")
@click.option("--edition", type=click.Choice(["enterprise", "oss"]), default="enterprise", show_default=True,
              help="Kong edition: only Enterprise can present a client certificate.")
@click.option("--auth", type=click.Choice(["cert", "verify-full", "scram"]), default=None,
              help="pg_hba method [default: cert; scram with --edition oss].")
@click.option("--database", default="all", show_default=True, help="pg_hba database column.")
@click.option("--db-user", "--user", "user", default=None,
              help="PostgreSQL role: pg_hba user column, libpq/jdbc user [default: the PKI's db user].")
@click.option("--address", default="all", show_default=True, help="pg_hba address column.")
@click.option("--reject-plaintext/--allow-plaintext", default=True, show_default=True,
              help="Add 'hostnossl all all all reject'.")
@click.option("--tls-profile", type=click.Choice(TLS_PROFILES), default="intermediate", show_default=True,
              help="Mozilla TLS profile for both ends: modern = TLS 1.3 only (ECDSA, leaves <= 90 days); "
                   "legacy = PostgreSQL's default ciphers.")
@click.option("--min-tls", type=click.Choice(PG_MIN_TLS), default=None,
              help="ssl_min_protocol_version [default: TLSv1.2; TLSv1.3 with --tls-profile modern].")
@click.option("--pg-ssl-version", type=click.Choice(KONG_PG_SSL_VERSIONS), default=None,
              help="Kong Enterprise pg_ssl_version [default: the one --min-tls needs]; never below --min-tls.")
@click.option("--system/--no-system", default=True, show_default=True,
              help="Keep 'system,' (the OS bundle) in lua_ssl_trusted_certificate; --no-system trusts only this PKI.")
@click.option("--kong-os-user", default=KONG_DEFAULT_OS_USER, show_default=True,
              help="The user Kong's workers run as (nginx_user): who must be able to read client.key.")
@click.option("--server", "server_name", default="server", show_default=True, help="Server certificate name.")
@click.option("--client", "client_name", default="client", show_default=True, help="Client certificate name.")
@click.option("--db-host", "--host", "host", default=None, help="libpq / kong --connection host [default: --server's first SAN]; "
              "must be in its certificate.")
@click.option("--connection", is_flag=True, help="kong: also pg_host, pg_port, pg_user, pg_database "
              "(pg_ro_host: --ro-server).")
@click.option("--port", type=PORT, default=PG_DEFAULT_PORT, show_default=True, help="libpq/jdbc port.")
@click.option("--url", is_flag=True, help="libpq: a postgresql:// URL (node-postgres) instead of keywords.")
@click.option("--for", "k8s_for", type=click.Choice(K8S_TARGETS), default=None,
              help="kubernetes: whose Secret shapes to write.")
@click.option("--namespace", default="default", show_default=True, help="kubernetes: metadata.namespace.")
@click.option("--prefix", "--name", "k8s_prefix", default="pgkongtls", show_default=True,
              help="kubernetes: object name prefix.")
@click.option("--with-keys", is_flag=True, help="kubernetes: put private keys into the Secrets (never elsewhere).")
@click.option("--include-ca-key", is_flag=True, help="kubernetes: hand the issuing CA key over (cert-manager, CloudNativePG).")
@click.option("--write", "write_dir", type=click.Path(path_type=Path), default=None,
              help="Write snippet file(s) into this directory instead of printing.")
@click.option("--force", is_flag=True, help="Let --write replace existing files.")
@topology_options
def render(target: str, pki_dir: Path, pg_dir: str | None, kong_dir: str | None, edition: str, auth: str | None,
           database: str, user: str | None, address: str, reject_plaintext: bool, tls_profile: str,
           min_tls: str | None, pg_ssl_version: str | None, system: bool, kong_os_user: str, server_name: str,
           client_name: str, host: str | None, port: int, url: bool, k8s_for: str | None, namespace: str,
           k8s_prefix: str, with_keys: bool, include_ca_key: bool, write_dir: Path | None, force: bool,
           connection: bool, **topo: Any) -> None:
    """Print the postgresql.conf, pg_hba.conf, pg_ident.conf or kong.conf snippet that fits the PKI.

    TARGET is one of: postgres, hba, ident, kong, kong-env, libpq, all, standby, pgbouncer, patroni.

    \b
    Example:
      pgkongtls render postgres --dir pki --pg-dir /etc/postgresql/ssl > conf.d/pgkongtls.conf
      pgkongtls render hba --dir pki --auth cert >> pg_hba.conf
      pgkongtls render kong --dir pki --kong-dir /etc/kong/ssl >> kong.conf
      pgkongtls render kong --dir pki --connection --ro-server replica-1
      pgkongtls render libpq --dir pki --url --port 5432
      pgkongtls render jdbc --dir pki --kong-dir /etc/app/ssl
      pgkongtls render kubernetes --dir pki --for kong-helm --namespace kong --with-keys
      pgkongtls render all --dir pki --write out/

    \b
    More than one database (README, "Topologies"): standby, pgbouncer, patroni, and
      pgkongtls render hba --dir pki --replication replicator >> pg_hba.conf
      pgkongtls render standby --dir pki --client replicator --primary db-1.internal --server db-2
      pgkongtls render pgbouncer --dir pki --server pgbouncer --client pgbouncer-up
      pgkongtls render kong --dir pki --via pgbouncer --ro-server db-2
      pgkongtls render patroni --dir pki --node db-1 --replication replicator --ctl-client patroni
    """
    from pgkongtls import fsio
    from pgkongtls import render as r
    from pgkongtls import render_clients as rc
    from pgkongtls import render_k8s as rk

    m = fsio.load_manifest(pki_dir)
    db_name = None if database == "all" else database
    here = str(pki_dir.resolve())
    files = r.Files(pg_dir=pg_dir or m.deploy_dir("postgres"), kong_dir=kong_dir or m.deploy.get("kong") or here,
                    server=server_name, client=client_name)
    chosen_auth = auth or r.default_auth(edition)
    kong: dict[str, Any] = {"edition": edition, "pg_ssl_version": pg_ssl_version, "system": system,
                            "min_tls": min_tls, "tls_profile": tls_profile, "os_user": kong_os_user}
    from pgkongtls.cli_topology import check_options, render_target

    check_options(target, topo)
    if target in TOPOLOGY_TARGETS:
        source = click.get_current_context().get_parameter_source("client_name")
        from pgkongtls.tlspolicy import resolve

        out = render_target(target, m, files, auth=auth, user=user, min_tls=resolve(tls_profile, min_tls).min_tls,
                            edition=edition,
                            client_given=source is not click.core.ParameterSource.DEFAULT, **topo)
    elif target == "all":
        if write_dir is None:
            fail("render all writes one file per snippet; pass --write DIR")
        out = r.render_all(m, files, auth=chosen_auth, database=database, user=user, address=address,
                           reject_plaintext=reject_plaintext, host=host, **kong)
    else:
        renderers = {
            "postgres": lambda: r.render_postgres(m, files, min_tls=min_tls, tls_profile=tls_profile),
            "hba": lambda: r.render_hba(m, auth=chosen_auth, edition=edition, database=database, user=user,
                                        address=address, reject_plaintext=reject_plaintext,
                                        replication=topo["replication"]),
            "ident": lambda: r.render_ident(m, user=user, replication=topo["replication"]),
            "kong": lambda: r.render_kong(m, files, via=topo["via"], ro_server=topo["ro_server"], **kong) + (
                r.render_kong_connection(m, server=server_name, host=host, port=port, user=user, database=db_name,
                                         via=topo["via"]) if connection else ""),
            "kong-env": lambda: r.render_kong_env(m, files, via=topo["via"], ro_server=topo["ro_server"], **kong),
            "libpq": lambda: (rc.render_libpq_url(m, files, host=host, user=user, port=port, database=db_name)
                              if url else r.render_libpq(m, files, host=host, user=user)),
            "kubernetes": lambda: rk.render_kubernetes(m, fsio.reader(pki_dir), rk.K8sOptions(
                target=k8s_for or "", namespace=namespace, prefix=k8s_prefix, with_keys=with_keys,
                include_ca_key=include_ca_key, edition=edition, pg_ssl_version=pg_ssl_version, system=system,
                min_tls=min_tls, tls_profile=tls_profile, os_user=kong_os_user, server=server_name,
                client=client_name)),
            "jdbc": lambda: rc.render_jdbc(m, files, host=host, user=user, port=port, database=db_name,
                                            pki_dir=str(pki_dir)),
        }
        out = {r.ALL_FILES[target]: renderers[target]()}
    if target in ("hba", "all"):
        for warning in r.hba_warnings(chosen_auth, edition):
            click.echo(f"warning: {warning}", err=True)
    if write_dir is None:
        click.echo("".join(out.values()), nl=False)
        return
    fsio.write_outputs(write_dir, out, overwrite=force)
    from pgkongtls import output

    for name in out:
        output.line(f"wrote {write_dir / name}")
