"""CA commands: `renew root|intermediate` (its output; `renew` in cli_lifecycle hands CA names here) and `rotate`.

Thin like cli_lifecycle: parse, call pgkongtls.ops_ca, print on stderr.
"""

from __future__ import annotations

from pathlib import Path

import click

from pgkongtls import KEY_TYPES, output
from pgkongtls.cli import lock_wait, main, wait_option
from pgkongtls.cli_lifecycle import print_entries, redeploy
from pgkongtls.cli_options import crl_days_option, dir_option, passphrase_option

DIR_KEY = "pgkongtls.rotate_dir"


def renew_ca(pki_dir: Path, level: str, days: int | None, passphrase: bytes | None) -> None:
    """`renew root|intermediate`: the new certificate, what was checked, and when the old one can go."""
    from pgkongtls import ops_ca

    r = ops_ca.renew_ca(pki_dir, level, days=days, ca_passphrase=passphrase, lock_wait=lock_wait())
    print_entries(f"renewed in {pki_dir} (same key, subject and SKI)", r.change.done)
    output.line(f"the old {level} certificate (serial {r.old.serial[:16]}…) stays in chain.crt beside the new one; "
                  f"kept as {r.old.file}.{r.old.serial}.bak")
    output.line(f"checked: {len(r.checked)} certificate(s) in service verify with the new {level} certificate "
                  f"alone (strict RFC 5280){': ' + ', '.join(r.checked[:5]) if r.checked else ''}"
                  f"{' …' if len(r.checked) > 5 else ''}; no leaf needs re-issuing")
    output.hints([redeploy(pki_dir, "postgres") + " (only chain.crt changes)",
                redeploy(pki_dir, "kong") + " (only the trust file changes; likewise for each node)",
                f"once every host has the new chain.crt, the old certificate can go: pgkongtls rotate --dir {pki_dir} finish"])


@main.group()
@dir_option()
@click.pass_context
def rotate(ctx: click.Context, pki_dir: Path) -> None:
    """Rotate to new CA keys in three phases, deploying after each: begin, reissue, finish.

    For a compromised CA key, a change of key type, or a root near its end.
    Each phase is one atomic write; a phase run out of order is refused.
    After renew root|intermediate, finish drops the old CA certificate.

    \b
    Example:
      pgkongtls rotate --dir pki begin --key-type ecdsa-p384
      pgkongtls rotate --dir pki reissue
      pgkongtls rotate --dir pki finish
    """
    ctx.meta[DIR_KEY] = pki_dir


def rotate_dir() -> Path:
    """The group's --dir (`rotate --dir PKI PHASE`, as the phases are spelled)."""
    return Path(click.get_current_context().meta[DIR_KEY])


def _deploy_all(pki_dir: Path, why: str) -> list[str]:
    return [redeploy(pki_dir, "postgres") + f" ({why})", redeploy(pki_dir, "kong") + f" ({why}; likewise for each node)"]


@rotate.command("begin")
@click.option("--key-type", type=click.Choice(KEY_TYPES), default=None,
              help="Key algorithm of the new CAs and, after reissue, of every leaf [default: the PKI's].")
@passphrase_option()
@crl_days_option()
@wait_option()
def begin(key_type: str | None, passphrase_file: Path | None, crl_days: int) -> None:
    """Phase 1: mint the new root (and intermediate); trust old and new CAs.

    chain.crt then holds both, and crl.pem a CRL from every CA level of both.
    The old CA files stay as .bak (keys 0600). Deploy to every host, then reissue.

    \b
    Example:
      pgkongtls rotate --dir pki begin
    """
    from pgkongtls import fsio, ops_ca

    pki_dir = rotate_dir()
    change = ops_ca.begin(pki_dir, key_type=key_type, ca_passphrase=fsio.read_passphrase(passphrase_file),
                          crl_days=crl_days, lock_wait=lock_wait())
    print_entries(f"rotation begun in {pki_dir}: new CAs, old ones still trusted", change.done)
    output.hints([*_deploy_all(pki_dir, "chain.crt trusts old and new CAs; crl.pem has a CRL from each"),
                f"pgkongtls rotate --dir {pki_dir} reissue, once every host has the new chain.crt and crl.pem"])


@rotate.command("reissue")
@passphrase_option()
@wait_option()
def reissue(passphrase_file: Path | None) -> None:
    """Phase 2: re-issue every server and client certificate from the new CA.

    Same names, subjects, SANs and file names, new keys; the old files stay as .bak.

    \b
    Example:
      pgkongtls rotate --dir pki reissue
    """
    from pgkongtls import fsio, ops_ca

    pki_dir = rotate_dir()
    change = ops_ca.reissue(pki_dir, ca_passphrase=fsio.read_passphrase(passphrase_file), lock_wait=lock_wait())
    print_entries(f"re-issued in {pki_dir} from the new CA", change.done)
    others = [e.name for e in change.done if e.name not in ("server", "client")]
    output.hints([*_deploy_all(pki_dir, "the re-issued certificates"),
                *([f"likewise with --server/--client for {', '.join(others[:5])}{' …' if len(others) > 5 else ''}"]
                  if others else []),
                f"pgkongtls rotate --dir {pki_dir} finish, once every host has its re-issued certificate"])


@rotate.command("finish")
@passphrase_option()
@crl_days_option()
@wait_option()
def finish(passphrase_file: Path | None, crl_days: int) -> None:
    """Phase 3: drop the old CAs from chain.crt and crl.pem; their .bak files stay as the archive.

    Run it once every host has the files of the current phase. It also ends
    a renew root|intermediate (the old certificate leaves chain.crt).

    \b
    Example:
      pgkongtls rotate --dir pki finish
    """
    from pgkongtls import fsio, ops_ca

    pki_dir = rotate_dir()
    ops_ca.finish(pki_dir, ca_passphrase=fsio.read_passphrase(passphrase_file), crl_days=crl_days,
                  lock_wait=lock_wait())
    output.line(f"finished in {pki_dir}: chain.crt (and crl.pem) hold the current CAs only")
    output.hints([redeploy(pki_dir, "postgres"), redeploy(pki_dir, "kong") + " (likewise for each node)"])
