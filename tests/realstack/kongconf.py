"""kong.conf as Kong's conf loader reads it, for the Kong-equivalent client (no servers here).

`translate()` turns kong.conf text into what Kong derives for its PostgreSQL connection:
the defaults of the keys it has, the Enterprise-only keys dropped for open-source Kong,
Enterprise's cert/key checks, and the combined trust file as Kong's prefix handler writes it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from pgkongtls.consumers import SYSTEM_BUNDLES as SYSTEM_BUNDLES  # patched by tests for a stand-in bundle

#: Kong's defaults for the keys this client reads (FACTS.md, "Kong").
DEFAULTS = {
    "pg_host": "127.0.0.1",
    "pg_ssl": "off",
    "pg_ssl_required": "off",
    "pg_ssl_verify": "off",
    "pg_ssl_version": "tlsv1_2",
    "lua_ssl_trusted_certificate": "system",
    "lua_ssl_verify_depth": "1",
    "lua_ssl_protocols": "TLSv1.2 TLSv1.3",
}
ENTERPRISE_ONLY = ("pg_ssl_required", "pg_ssl_version", "pg_ssl_cert", "pg_ssl_cert_key")
#: Kong Enterprise's allowed pg_ssl_version values (its conf loader refuses others).
PG_SSL_VERSIONS = ("tlsv1_2", "tlsv1_3", "any")
#: The LuaSec protocol at start-up when pg_ssl_version does not exist (open-source Kong): pgmoon
#: passes none, and LuaSec 1.2 refuses nil, so Kong's own LuaSec must default it; "any" is assumed.
OSS_STARTUP_PROTOCOL = "any"


class KongConfError(ValueError):
    """kong.conf text Kong itself would refuse (same wording where Kong has one)."""


def parse_kong_conf(text: str) -> dict[str, str]:
    """`key = value` lines; `#` starts a comment unless escaped as `\\#` (Kong's conf_loader)."""
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise KongConfError(f"not a 'key = value' line: {raw!r}")
        value = re.sub(r"\s*(?<!\\)#.*$", "", value).replace("\\#", "#").strip()
        out[key.strip().lower()] = value
    return out


def replace_setting(text: str, key: str, value: str) -> str:
    """kong.conf text with the one `key = ...` line changed to `key = value` (it must be there)."""
    lines = text.splitlines(keepends=True)
    hits = [i for i, ln in enumerate(lines) if re.match(rf"\s*{re.escape(key)}\s*=", ln)]
    if len(hits) != 1:
        raise KongConfError(f"{key} appears {len(hits)} times in the kong.conf text, expected once")
    lines[hits[0]] = f"{key} = {value}\n"
    return "".join(lines)


def _bool(conf: dict[str, str], key: str) -> bool:
    value = conf[key].lower()
    if value in ("on", "true"):
        return True
    if value in ("off", "false"):
        return False
    raise KongConfError(f"{key} must be a boolean (on/off/true/false), got {conf[key]!r}")


@dataclass(frozen=True)
class KongSettings:
    """What Kong derives from kong.conf for its PostgreSQL connection."""

    pg_host: str
    pg_ssl: bool
    pg_ssl_required: bool
    pg_ssl_verify: bool
    pg_ssl_cert: str | None
    pg_ssl_cert_key: str | None
    pg_ssl_version: str       # the LuaSec protocol of the start-up connection
    trusted_pem: str          # the combined lua_ssl_trusted_certificate file's contents
    verify_depth: int
    protocols: str


def combine_trusted(value: str) -> str:
    """lua_ssl_trusted_certificate as Kong's prefix_handler combines it: each entry (`system` as the
    first system bundle found, a path's contents, or PEM text) followed by "\n"."""
    parts: list[str] = []
    for entry in (e.strip() for e in value.split(",")):
        if not entry:
            continue
        if entry == "system":
            found = next((p for p in SYSTEM_BUNDLES if os.path.exists(p)), None)
            if found:  # Kong silently drops `system` when no bundle exists
                parts.append(Path(found).read_text())
        elif entry.startswith("-----BEGIN"):
            parts.append(entry)
        elif os.path.exists(entry):
            parts.append(Path(entry).read_text())
        else:
            raise KongConfError(f"lua_ssl_trusted_certificate: no such file at {entry}")
    return "".join(p + "\n" for p in parts)


def translate(text: str, *, edition: str = "enterprise") -> KongSettings:
    """kong.conf text -> the settings Kong's nginx and pgmoon would use.

    Open-source Kong does not know the Enterprise-only keys and ignores them, so
    with `edition="oss"` they are dropped before anything reads them.
    """
    if edition not in ("enterprise", "oss"):
        raise ValueError(f"unknown edition {edition!r}")
    given = parse_kong_conf(text)
    if edition == "oss":
        given = {k: v for k, v in given.items() if k not in ENTERPRISE_ONLY}
    conf = {**DEFAULTS, **given}
    cert, key = conf.get("pg_ssl_cert"), conf.get("pg_ssl_cert_key")
    pg_ssl = _bool(conf, "pg_ssl")
    if pg_ssl and edition == "enterprise":
        if cert and not key:
            raise KongConfError("pg_ssl_cert_key must be specified")
        if key and not cert:
            raise KongConfError("pg_ssl_cert must be specified")
        for k, path in (("pg_ssl_cert", cert), ("pg_ssl_cert_key", key)):
            if path and not os.path.exists(path):
                raise KongConfError(f"{k}: no such file at {path}")
    version = conf["pg_ssl_version"] if edition == "enterprise" else OSS_STARTUP_PROTOCOL
    if version not in PG_SSL_VERSIONS:
        raise KongConfError(f"pg_ssl_version has an invalid value: {version!r}, expected one of "
                            f"{', '.join(PG_SSL_VERSIONS)}")
    depth = conf["lua_ssl_verify_depth"]
    if not depth.isdigit():
        raise KongConfError(f"lua_ssl_verify_depth must be a non-negative integer, got {depth!r}")
    return KongSettings(
        pg_host=conf["pg_host"], pg_ssl=pg_ssl, pg_ssl_required=_bool(conf, "pg_ssl_required"),
        pg_ssl_verify=_bool(conf, "pg_ssl_verify"), pg_ssl_cert=cert or None, pg_ssl_cert_key=key or None,
        pg_ssl_version=version, trusted_pem=combine_trusted(conf["lua_ssl_trusted_certificate"]), verify_depth=int(depth),
        protocols=" ".join(conf["lua_ssl_protocols"].split()),
    )
