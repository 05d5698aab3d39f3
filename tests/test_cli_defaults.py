"""Every CLI default is the library's, and one option name means one default in every command.

Walks the whole click tree (lazy commands included), so a new option with a literal default
fails here until it is tied to the constant it must equal.
"""

from __future__ import annotations

from pathlib import Path

import click

from pgkongtls import (
    DEFAULT_CRL_DAYS,
    DEFAULT_DAYS_INTERMEDIATE,
    DEFAULT_DAYS_LEAF,
    DEFAULT_DAYS_ROOT,
    DEFAULT_KEEP_BACKUPS,
    DEFAULT_LOCK_WAIT,
    DEFAULT_SERVER_EKU,
    DEFAULT_WARN_DAYS,
    KEY_TYPES,
    certs,
    cli_status,
    consumers,
    manifest,
)

from .clirun import command_at
from .test_help import ALL

#: option name -> the value every command's default must equal (the library's, where it has one).
EXPECTED: dict[str, object] = {
    "days": DEFAULT_DAYS_LEAF, "days_root": DEFAULT_DAYS_ROOT, "days_intermediate": DEFAULT_DAYS_INTERMEDIATE,
    "crl_days": DEFAULT_CRL_DAYS, "warn_days": DEFAULT_WARN_DAYS, "wait": DEFAULT_LOCK_WAIT,
    "keep_backups": DEFAULT_KEEP_BACKUPS,
    "key_type": certs.DEFAULT_KEY_TYPE, "db_user": consumers.KONG_DEFAULT_USER,
    "kong_os_user": consumers.KONG_DEFAULT_OS_USER, "tls_profile": consumers.DEFAULT_TLS_PROFILE,
    "port": consumers.PG_DEFAULT_PORT, "chain": manifest.CHAINS[0], "reason": manifest.REVOCATION_REASONS[0],
    "eku": DEFAULT_SERVER_EKU,
    # pgkongtls's own conventions, the same in every command that has the option:
    "pki_dir": Path("pki"), "db_hosts": ("localhost",), "edition": "enterprise", "server_name": "server",
    "client_name": "client", "pg_os_user": "postgres", "database": "all", "address": "all",
    "namespace": "default", "k8s_prefix": "pgkongtls", "timeout": 5.0,
    "output_format": cli_status.STATUS_FORMATS[0],
}
#: Defaults that differ on purpose between commands, by (command, option).
PER_COMMAND: dict[tuple[str, str], object] = {
    ("init", "out"): Path("pki"), ("self-signed", "out"): Path("pki-test"),
}


def _options() -> list[tuple[str, click.Option]]:
    out = []
    for path in ALL:
        cmd = command_at(path)
        out += [(" ".join(path), p) for p in cmd.params
                if isinstance(p, click.Option) and not p.is_flag and p.default not in (None, ())
                and not isinstance(p.type, click.types.UnprocessedParamType) and p.name != "help"
                and repr(p.default) != "Sentinel.UNSET"]
    return out


def test_every_default_is_the_librarys_and_the_same_across_commands() -> None:
    wrong = []
    for where, opt in _options():
        assert opt.name is not None
        want = PER_COMMAND.get((where, opt.name), EXPECTED.get(opt.name, "<not tied to a constant>"))
        if opt.default != want:
            wrong.append(f"{where} --{opt.name}: {opt.default!r}, expected {want!r}")
    assert wrong == []


def test_choice_lists_are_the_librarys() -> None:
    choices = {(where, o.name): tuple(o.type.choices) for where, o in _options()  # type: ignore[attr-defined]
               if isinstance(o.type, click.Choice)}
    for (where, name), values in choices.items():
        if name == "key_type":
            assert values == KEY_TYPES, where
        if name == "reason":
            assert values == manifest.REVOCATION_REASONS, where
        if name == "tls_profile":
            assert values == consumers.TLS_PROFILES, where
        if name == "chain":
            assert values == manifest.CHAINS, where
