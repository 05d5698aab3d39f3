"""One vocabulary for every command: option types and names shared by all of them.

An option that means the same thing in two commands is declared here once, so its
name, its aliases and its validation cannot drift apart (a `--warn-days -3` is
click's usage error, exit 2, wherever it is given). Imported by the cli*.py
modules only; no library module may import it (pyproject.toml contracts).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from pgkongtls import DEFAULT_CRL_DAYS, DEFAULT_KEEP_BACKUPS, MAX_CRL_DAYS, MAX_DAYS

F = TypeVar("F", bound=Callable[..., Any])



class Whole(click.IntRange):
    """An integer in a range; named 'integer' so 'soon' reads "is not a valid integer", not "integer range"."""

    name = "integer"


#: Certificate lifetimes, CRL lifetimes and warning windows, as click checks them before any work.
DAYS = Whole(1, MAX_DAYS)
CRL_DAYS = Whole(1, MAX_CRL_DAYS)
WARN_DAYS = Whole(0, MAX_DAYS)
PORT = Whole(1, 65535)
PKI_DIR_HELP = "The PKI directory made by pgkongtls init."


def dir_option(default: Path | None = Path("pki")) -> Callable[[F], F]:
    """`--dir DIR`, the PKI directory, in every command that reads or writes one."""
    return click.option("--dir", "pki_dir", type=click.Path(path_type=Path), default=default,
                        show_default=default is not None, help=PKI_DIR_HELP)


def names_option(help_text: str = "Same as a NAME argument; repeat it for more.") -> Callable[[F], F]:
    """`--name NAME` (repeatable), accepted wherever certificate names are positional, so both forms work."""
    return click.option("--name", "name_options", multiple=True, metavar="NAME", help=help_text)


def names_of(positional: tuple[str, ...], options: tuple[str, ...]) -> list[str]:
    """NAME arguments and --name options together, in the order given (arguments first)."""
    return [*positional, *options]


def pick_dir(positional: Path | None, option: Path | None) -> Path | None:
    """`verify DIR` and `verify --dir DIR` are the same; both at once must agree."""
    if positional is not None and option is not None and positional != option:
        raise click.UsageError(f"DIRECTORY {positional} and --dir {option} differ; pass one of them.")
    return positional if positional is not None else option


def need_names(names: list[str], command: str) -> list[str]:
    if not names:
        raise click.UsageError(f"{command} needs at least one certificate NAME (or --name NAME).")
    return names


def passphrase_option() -> Callable[[F], F]:
    return click.option("--ca-passphrase-file", "passphrase_file", type=click.Path(path_type=Path), default=None,
                        help="File holding the passphrase of the CA keys (when init used --ca-passphrase-file).")


def crl_days_option() -> Callable[[F], F]:
    return click.option("--crl-days", type=CRL_DAYS, default=DEFAULT_CRL_DAYS, show_default=True,
                        help="CRL lifetime (nextUpdate). PostgreSQL refuses every client certificate once it "
                             "passes, so keep it long and watch it with pgkongtls status.")


def keep_backups_option() -> Callable[[F], F]:
    return click.option("--keep-backups", type=Whole(0, None), default=DEFAULT_KEEP_BACKUPS, show_default=True, metavar="N",
                        help="Archived NAME.crt.<serial>.bak kept per certificate whatever their state; older "
                             "ones are removed once expired (never while still valid or on a CRL).")
