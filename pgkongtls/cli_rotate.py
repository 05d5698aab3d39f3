"""CA commands: `renew root|intermediate` (its output; `renew` in cli_lifecycle hands CA names here) and `rotate`.

Thin like cli_lifecycle: parse, call pgkongtls.ops_ca, print on stderr.
"""

from __future__ import annotations

from pathlib import Path

import click

from pgkongtls.cli import lock_wait, main, stderr_console, wait_option
from pgkongtls.cli_lifecycle import dir_option, print_entries, print_next, redeploy

DIR_KEY = "pgkongtls.rotate_dir"


def renew_ca(pki_dir: Path, level: str, days: int | None, passphrase: bytes | None) -> None:
    """`renew root|intermediate`: the new certificate, what was checked, and when the old one can go."""
    from pgkongtls import ops_ca

    r = ops_ca.renew_ca(pki_dir, level, days=days, ca_passphrase=passphrase, lock_wait=lock_wait())
    print_entries(f"renewed in {pki_dir} (same key, subject and SKI)", r.change.done)
    console = stderr_console()
    console.print(f"the old {level} certificate (serial {r.old.serial[:16]}…) stays in chain.crt beside the new one; "
                  f"kept as {r.old.file}.{r.old.serial}.bak")
    console.print(f"checked: {len(r.checked)} certificate(s) in service verify with the new {level} certificate "
                  f"alone (strict RFC 5280){': ' + ', '.join(r.checked[:5]) if r.checked else ''}"
                  f"{' …' if len(r.checked) > 5 else ''}; no leaf needs re-issuing")
    print_next([redeploy(pki_dir, "postgres") + " (only chain.crt changes)",
                redeploy(pki_dir, "kong") + " (only the trust file changes; likewise for each node)",
                f"once every host has the new chain.crt, the old certificate can go: pgkongtls rotate --dir {pki_dir} finish"])


@main.group()
@dir_option()
@click.pass_context
def rotate(ctx: click.Context, pki_dir: Path) -> None:
    """Move the trust files from old CA certificates to new ones, in phases.

    After renew root|intermediate, the old CA certificate stays in chain.crt
    until rotate finish drops it.

    \b
    Example:
      pgkongtls renew --dir pki intermediate
      pgkongtls rotate --dir pki finish
    """
    ctx.meta[DIR_KEY] = pki_dir


def rotate_dir() -> Path:
    """The group's --dir (`rotate --dir PKI PHASE`, as the phases are spelled)."""
    return Path(click.get_current_context().meta[DIR_KEY])


@rotate.command("finish")
@wait_option()
def finish() -> None:
    """Drop the old CA certificates from the trust files (chain.crt); their .bak files stay.

    Run it once every host has the trust files of the current phase.

    \b
    Example:
      pgkongtls rotate --dir pki finish
    """
    from pgkongtls import ops_ca

    pki_dir = rotate_dir()
    ops_ca.finish(pki_dir, lock_wait=lock_wait())
    stderr_console().print(f"finished in {pki_dir}: chain.crt holds the current CA certificates only")
    print_next([redeploy(pki_dir, "postgres"), redeploy(pki_dir, "kong") + " (likewise for each node)"])
