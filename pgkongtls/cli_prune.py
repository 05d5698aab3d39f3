"""`pgkongtls prune`: remove archived certificates and keys nobody can need any more.

Thin like cli_lifecycle: parse, call pgkongtls.ops.prune, print (the removed file names on stdout,
one a line, for scripts; the summary on stderr).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from pgkongtls import output
from pgkongtls.cli import lock_wait, main, wait_option
from pgkongtls.cli_options import dir_option, keep_backups_option

F = TypeVar("F", bound=Callable[..., Any])


@main.command()
@dir_option()
@keep_backups_option()
@wait_option()
def prune(pki_dir: Path, keep_backups: int) -> None:
    """Remove expired archived certificates and keys (NAME.crt.<serial>.bak) past the newest N per name.

    An archived certificate that has not expired stays: unrevoked it may still be in service (and
    revoke --reason keyCompromise must find it), revoked it is still on a CRL PostgreSQL needs.
    renew prunes the names it renews the same way.

    \b
    Example:
      pgkongtls prune --dir pki
      pgkongtls prune --dir pki --keep-backups 0
    """
    from pgkongtls import ops

    pruned = ops.prune(pki_dir, keep_backups=keep_backups, lock_wait=lock_wait())
    for name in pruned.removed:
        click.echo(name)
    kept = f"; kept {len(pruned.kept_valid)} older, not expired yet" if pruned.kept_valid else ""
    output.line(f"removed {len(pruned.removed)} archived files from {pki_dir}{kept}")
