"""The `pgkongtls` command line: parse options, call the library, print.

Thin on purpose: every decision lives in the library. stdout carries only
machine output (rendered config, --json); people read stderr. Library modules
are imported inside each command so `--help` and `render` start fast.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from pgkongtls import (
    DEFAULT_DAYS_INTERMEDIATE,
    DEFAULT_DAYS_LEAF,
    DEFAULT_DAYS_ROOT,
    DEFAULT_LOCK_WAIT,
    DEFAULT_SERVER_EKU,
    KEY_TYPES,
    SERVER_EKUS,
    __version__,
)
from pgkongtls.cli_options import DAYS
from pgkongtls.errors import PgkError, PgkWarning

if TYPE_CHECKING:
    from pgkongtls.manifest import Manifest



F = TypeVar("F", bound=Callable[..., Any])

#: Commands defined in other modules, imported only when one of them runs or help lists them,
#: so `init` and `render` don't pay for them.
LAZY_COMMANDS = {
    "issue": "cli_lifecycle", "renew": "cli_lifecycle", "revoke": "cli_lifecycle", "crl": "cli_lifecycle",
    "status": "cli_status", "verify": "cli_doctor", "probe": "cli_doctor",
    "bundle": "cli_deploy", "install": "cli_deploy", "deploy-paths": "cli_deploy",
    "export": "cli_export", "rotate": "cli_rotate", "prune": "cli_prune", "render": "cli_render",
}


class Cli(click.Group):
    """Turns every library error into one `Error: ...` line and a non-zero exit."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in LAZY_COMMANDS:
            import importlib

            importlib.import_module(f"pgkongtls.{LAZY_COMMANDS[cmd_name]}")  # registers it on `main`
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *LAZY_COMMANDS})

    def main(  # one signature for both of click's overloads
        self, args: Sequence[str] | None = None, prog_name: str | None = None, complete_var: str | None = None,
        standalone_mode: bool = True, **extra: Any,
    ) -> Any:
        """Usage errors are one line too: the problem, then where to read more (no usage dump)."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        _refuse_non_utf8(sys.argv[1:] if args is None else list(args))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("always", PgkWarning)
                warnings.showwarning = _show_warning
                rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:
            exc.show()  # no arguments at all: the help text is the answer
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            where = f"'{exc.ctx.command_path} --help'" if exc.ctx else "--help"
            _error_line(f"{exc.format_message()} See {where}.", exc.exit_code)
        except click.ClickException as exc:
            _error_line(exc.format_message(), exc.exit_code)
        except click.Abort as exc:
            if isinstance(exc.__context__, KeyboardInterrupt):  # Ctrl-C at a prompt
                _error_line(INTERRUPTED, EXIT_INTERRUPTED)
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        import os

        try:
            return super().invoke(ctx)
        except PgkError as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename else ""
            raise click.ClickException(f"{exc.strerror or exc}{where}") from None
        except KeyboardInterrupt:
            # Not a bug and not a usage error: the writers stage everything, so nothing was changed.
            raise click.ClickException(INTERRUPTED) from None
        except (click.ClickException, click.Abort, click.exceptions.Exit):
            raise
        except Exception as exc:  # never a traceback; PGKONGTLS_TRACEBACK=1 shows it for a bug report
            if os.environ.get("PGKONGTLS_TRACEBACK"):
                raise
            raise Bug(f"unexpected {type(exc).__name__}: {exc}; this is a pgkongtls bug, please "
                      "report it (PGKONGTLS_TRACEBACK=1 shows where)") from None


INTERRUPTED = "interrupted (Ctrl-C); nothing was changed"
#: 128 + SIGINT, what a shell reports for a program Ctrl-C stopped.
EXIT_INTERRUPTED = 130


class Bug(click.ClickException):
    """An exception no library code meant to raise; exit 70 is sysexits' EX_SOFTWARE."""

    exit_code = 70


def _error_line(message: str, exit_code: int) -> NoReturn:
    """The one `Error:` line, with any control character the message carries made visible."""
    from pgkongtls.errors import printable

    if message == INTERRUPTED:
        exit_code = EXIT_INTERRUPTED
    click.echo(f"Error: {printable(message)}", err=True)
    sys.exit(exit_code)


def _show_warning(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
    from pgkongtls.errors import printable

    click.echo(f"Warning: {printable(str(message))}", err=True)


def _refuse_non_utf8(args: list[str]) -> None:
    """Linux hands Python undecodable bytes as lone surrogates; they cannot go into a certificate or a config.
    NUL never reaches a C program's argv, and would end every path and name early."""
    from pgkongtls.errors import printable

    for arg in args:
        if isinstance(arg, str) and any("\udc80" <= c <= "\udcff" for c in arg):
            shown = arg.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            _error_line(f"argument '{printable(shown)}' is not valid UTF-8; pass UTF-8 text", 2)
        if isinstance(arg, str) and "\0" in arg:  # only a caller other than a shell can pass one
            _error_line(f"argument '{printable(arg)}' contains a NUL character", 2)


def fail(message: str) -> NoReturn:
    raise click.ClickException(message)


@click.group(cls=Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pgkongtls")
def main() -> None:
    """TLS and mutual TLS between Kong Gateway and PostgreSQL, in one command.

    \b
    Example:
      pgkongtls init --db-host db.internal --out pki
      pgkongtls render kong --dir pki > kong.conf.snippet
    """


def key_type_option() -> Callable[[F], F]:
    return click.option(
        "--key-type", type=click.Choice(KEY_TYPES), default="ecdsa-p256", show_default=True,
        help="Algorithm and size of every key.",
    )


def wait_option() -> Callable[[F], F]:
    """`--wait SECONDS` on every writing command; read back with `lock_wait()`."""
    def keep(ctx: click.Context, _param: click.Parameter, value: float) -> None:
        ctx.meta["pgkongtls.lock_wait"] = value

    return click.option("--wait", type=click.FloatRange(0, 3600), default=DEFAULT_LOCK_WAIT, show_default=True,
                        expose_value=False, callback=keep,
                        help="Seconds to wait while another pgkongtls run holds the PKI's lock.")


def lock_wait() -> float:
    return float(click.get_current_context().meta.get("pgkongtls.lock_wait", DEFAULT_LOCK_WAIT))


def print_manifest_json(m: Manifest) -> None:
    from pgkongtls.manifest import dumps

    click.echo(dumps(m), nl=False)


def print_summary(out: Path, m: Manifest, next_steps: list[str]) -> None:
    """What was written, for people, on stderr."""
    rows: list[tuple[str, str, str, str]] = []
    for e in m.certificates.values():
        rows.append((e.file, e.role, e.cn + (f"\nSAN: {', '.join(e.sans)}" if e.sans else ""), e.not_after[:10]))
        rows.append((e.key_file, "key (0600)", "", ""))
    if m.mode == "ca":
        rows.append(("chain.crt", "CA chain", "intermediate + root" if m.chain == "intermediate" else "root", ""))
    from pgkongtls import output

    output.table(f"PKI written to {out}", ("file", "role", "subject / SANs", "expires"), rows)
    output.hints(next_steps)


@main.command()
@click.option("--chain", type=click.Choice(["intermediate", "root"]), default="intermediate", show_default=True,
              help="root → intermediate → leaves, or root → leaves.")
@click.option("--out", "--dir", "out", type=click.Path(path_type=Path), default=Path("pki"), show_default=True,
              help="PKI directory to create (mode 0700).")
@click.option("--db-host", "db_hosts", multiple=True, default=("localhost",), show_default=True,
              help="DNS name or IP of the database; repeat for more. The first is also the CN.")
@click.option("--db-user", default="kong", show_default=True, help="PostgreSQL role; the client certificate's CN.")
@click.option("--root-cn", default=None, help="Root CA common name [default: 'pgkongtls root CA <random>'].")
@click.option("--intermediate-cn", default=None,
              help="Intermediate CA common name [default: 'pgkongtls intermediate CA <random>'].")
@key_type_option()
@click.option("--days-root", type=DAYS, default=DEFAULT_DAYS_ROOT, show_default=True, help="Root CA lifetime.")
@click.option("--days-intermediate", type=DAYS, default=DEFAULT_DAYS_INTERMEDIATE, show_default=True,
              help="Intermediate CA lifetime.")
@click.option("--days", type=DAYS, default=DEFAULT_DAYS_LEAF, show_default=True,
              help="Server and client certificate lifetime.")
@click.option("--bundle/--no-bundle", default=True, show_default=True,
              help="Append the intermediate to server.crt and client.crt.")
@click.option("--eku", type=click.Choice(SERVER_EKUS), default=DEFAULT_SERVER_EKU, show_default=True,
              help="Server certificate purposes; server,client only for probes that present it as a client (Bitnami).")
@click.option("--force", is_flag=True, help="Replace an existing PKI in --out.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest on stdout instead of the summary.")
@click.option("--ca-passphrase-file", "passphrase_file", type=click.Path(path_type=Path), default=None,
              help="Encrypt the CA keys with the passphrase in this file; leaf keys stay plain.")
@wait_option()
def init(chain: str, out: Path, db_hosts: tuple[str, ...], db_user: str, root_cn: str | None,
         intermediate_cn: str | None, key_type: str, days_root: int, days_intermediate: int, days: int,
         bundle: bool, eku: str, force: bool, as_json: bool, passphrase_file: Path | None) -> None:
    """Mint a root CA, an optional intermediate, a server and a client certificate.

    \b
    Example:
      pgkongtls init --chain intermediate --db-host db.internal --db-host 10.0.0.5 --out pki
    """
    from pgkongtls import fsio, ops_init
    from pgkongtls.pki import InitOptions

    opts = InitOptions(chain=chain, hosts=db_hosts, db_user=db_user, root_cn=root_cn,
                       intermediate_cn=intermediate_cn, key_type=key_type, days_root=days_root,
                       days_intermediate=days_intermediate, days=days, bundle=bundle,
                       server_eku=eku)
    m = ops_init.init(out, opts, force=force, ca_passphrase=fsio.read_passphrase(passphrase_file), lock_wait=lock_wait())
    if as_json:
        print_manifest_json(m)
    else:
        print_summary(out, m, [f"pgkongtls render all --dir {out} --write {out}-config"])


@main.command("self-signed")
@click.option("--test", "is_test", is_flag=True, help="Confirm that this pair is for testing only.")
@click.option("--out", "--dir", "out", type=click.Path(path_type=Path), default=Path("pki-test"), show_default=True,
              help="PKI directory to create (mode 0700).")
@click.option("--db-host", "db_hosts", multiple=True, default=("localhost",), show_default=True,
              help="DNS name or IP of the database; repeat for more. The first is also the CN.")
@click.option("--db-user", default="kong", show_default=True, help="PostgreSQL role; the client certificate's CN.")
@key_type_option()
@click.option("--days", type=DAYS, default=DEFAULT_DAYS_LEAF, show_default=True, help="Lifetime of both certificates.")
@click.option("--force", is_flag=True, help="Replace an existing PKI in --out.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest on stdout instead of the summary.")
@wait_option()
def self_signed(is_test: bool, out: Path, db_hosts: tuple[str, ...], db_user: str, key_type: str, days: int,
                force: bool, as_json: bool) -> None:
    """Make a self-signed server and client pair that trust each other directly (testing only).

    \b
    Example:
      pgkongtls self-signed --test --out pki-test
    """
    if not is_test:
        fail("self-signed certificates are for testing only; pass --test to confirm, or use pgkongtls init")
    from pgkongtls import ops_init
    from pgkongtls.pki import SelfSignedOptions

    opts = SelfSignedOptions(hosts=db_hosts, db_user=db_user, key_type=key_type, days=days)
    m = ops_init.self_signed(out, opts, force=force, lock_wait=lock_wait())
    if as_json:
        print_manifest_json(m)
    else:
        print_summary(out, m, [f"pgkongtls render all --dir {out} --write {out}-config"])


def run() -> None:
    """Console-script entry point."""
    main(prog_name="pgkongtls")


if __name__ == "__main__":
    run()
