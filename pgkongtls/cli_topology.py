"""`render` options and targets for more than one database: standby, pgbouncer, patroni, --via, --ro-server.

Kept out of cli.py so the `render` command there only gains one decorator and one
dispatch line. As thin as cli.py: parse, call pgkongtls.render_topology, return text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from pgkongtls.manifest import Manifest
    from pgkongtls.render import Files

#: `render TARGET` names this module handles, and the file each one's `--write` writes.
TARGETS = {"standby": "standby.conf.snippet", "pgbouncer": "pgbouncer.ini.snippet", "patroni": "patroni.yml.snippet"}

#: Which targets each extra option applies to; anywhere else it is an error, not silently ignored.
APPLIES = {
    "replication": ("hba", "ident", "patroni"), "primary": ("standby",), "node": ("patroni",),
    "ctl_client": ("patroni",), "upstream": ("pgbouncer",), "via": ("kong", "kong-env"),
    "ro_server": ("kong", "kong-env"),
}


def topology_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The extra `render` options; they reach the command as keyword arguments."""
    for deco in reversed([
        click.option("--replication", default=None, metavar="USER",
                     help="hba/ident/patroni: admit streaming replication as USER with the client certificate "
                          "named USER (or whose CN is USER); it is then never mapped to Kong's role."),
        click.option("--primary", default=None, metavar="HOST[:PORT]", help="standby: the primary to stream from."),
        click.option("--node", default=None, metavar="NAME", help="patroni: this node's server certificate name."),
        click.option("--ctl-client", default=None, metavar="NAME",
                     help="patroni: client certificate for patronictl and node-to-node REST calls "
                          "(turns on restapi verify_client: required)."),
        click.option("--upstream", default=None, metavar="HOST[:PORT]",
                     help="pgbouncer: the PostgreSQL server behind the pooler [default: the first --db-host]."),
        click.option("--via", default=None, metavar="NAME",
                     help="kong: connect through the pooler whose server certificate is NAME (pg_host, pg_port)."),
        click.option("--ro-server", default=None, metavar="NAME",
                     help="kong: the read replica whose server certificate is NAME (pg_ro_host)."),
    ]):
        f = deco(f)
    return f


def check_options(target: str, topo: dict[str, Any]) -> None:
    from pgkongtls.errors import InputError

    for name, targets in APPLIES.items():
        if topo.get(name) is not None and target not in targets:
            raise InputError(f"--{name.replace('_', '-')} applies to render {' / '.join(targets)}, not {target}")


def render_target(target: str, m: Manifest, files: Files, *, auth: str | None, user: str | None, min_tls: str,
                  edition: str, client_given: bool, **topo: Any) -> dict[str, str]:
    """{file name: text} for a target in TARGETS."""
    from dataclasses import replace

    from pgkongtls import render as r
    from pgkongtls import render_topology as t
    from pgkongtls.errors import InputError

    if target == "standby":
        if not topo["primary"]:
            raise InputError("render standby needs --primary HOST[:PORT] (the server to stream from)")
        if not client_given:
            raise InputError("render standby needs --client NAME (the replication identity, e.g. replicator)")
        text = t.render_standby(m, files, client=files.client, primary=topo["primary"], min_tls=min_tls, user=user)
    elif target == "pgbouncer":
        text = t.render_pgbouncer(m, files, upstream=topo["upstream"], auth=auth or "cert", user=user,
                                  min_tls=min_tls)
    else:
        if not topo["node"]:
            raise InputError("render patroni needs --node NAME (this node's server certificate)")
        node_files = replace(files, server=topo["node"])
        text = t.render_patroni(m, node_files, replication=topo["replication"] or "replicator",
                                ctl_client=topo["ctl_client"], min_tls=min_tls, auth=auth or r.default_auth(edition),
                                user=user)
    return {TARGETS[target]: text}
