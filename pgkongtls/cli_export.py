"""`pgkongtls export`: a key for drivers that cannot read PEM (pgjdbc)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from pgkongtls.cli import fail, main
from pgkongtls.cli_options import dir_option
from pgkongtls.export import FORMATS


@main.command("export")
@click.argument("name")
@dir_option()
@click.option("--format", "fmt", type=click.Choice(FORMATS), required=True,
              help="pk8: PKCS#8 DER (pgjdbc sslkey=….pk8); p12: PKCS#12 with the alias 'user' (sslkey=….p12).")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="File to write (0600) [default: stdout, when it is not a terminal].")
@click.option("--password-file", type=click.Path(path_type=Path), default=None,
              help="Encrypt with this password (required for p12; pgjdbc's sslpassword=).")
@click.option("--force", is_flag=True, help="Let --out replace an existing file.")
def export(name: str, pki_dir: Path, fmt: str, out: Path | None, password_file: Path | None, force: bool) -> None:
    """Export one client or server key for a driver that cannot read PEM keys.

    \b
    Example:
      pgkongtls export --dir pki client --format pk8 --out client.pk8
      pgkongtls export --dir pki client --format p12 --password-file pw.txt --out client.p12
    """
    from pgkongtls import fsio
    from pgkongtls.export import export_key

    m = fsio.load_manifest(pki_dir)
    entry = m.certificates.get(name)
    if entry is None:
        fail(f"{pki_dir} has no certificate named {name!r}; see pgkongtls status --dir {pki_dir}")
    if out is None and sys.stdout.isatty():
        fail("the key is binary; pass --out FILE (or redirect stdout)")
    read = fsio.reader(pki_dir)
    key_pem, cert_pem = read(entry.key_file), read(entry.file)
    if key_pem is None or cert_pem is None:
        fail(f"{pki_dir / (entry.key_file if key_pem is None else entry.file)} is missing; restore the file pgkongtls wrote")
    password = fsio.read_passphrase(password_file, option="--password-file", noun="password")
    result = export_key(name=name, role=entry.role, key_pem=key_pem, cert_pem=cert_pem, fmt=fmt, password=password)
    if out is None:
        sys.stdout.buffer.write(result.data)
        sys.stdout.buffer.flush()
        return
    fsio.write_secret(out, result.data, overwrite=force)
    click.echo(f"wrote {out} ({fmt}{', encrypted' if result.encrypted else ''}, 0600)", err=True)
