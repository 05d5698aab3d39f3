"""Parsers for the config files pgkongtls renders and `verify` reads back.

Pure functions over text, written to read files the way their owners do:
postgresql.conf like PostgreSQL's guc-file lexer, pg_hba.conf / pg_ident.conf
like hba.c's tokenizer, kong.conf like Kong's conf_loader. Each parsed item
keeps its line number so a finding can point at it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pgkongtls.errors import InputError


@dataclass(frozen=True)
class Setting:
    """One `name = value` line of postgresql.conf (names are case-insensitive, kept lower)."""

    name: str
    value: str
    line: int


def _lines(text: str) -> list[str]:
    """Lines as PostgreSQL and Kong see them: split on \\n only. str.splitlines() also breaks at
    \\f, \\v, \\x1c-\\x1e, \\x85, U+2028/9, so a `#\\f` comment could show a line the server never reads."""
    return text.split("\n")


#: guc-file.l's whitespace; a form feed or vertical tab is a syntax error to PostgreSQL, not a blank.
_PG_BLANKS = " \t\r"
#: Lua's %s, which Kong's conf_loader trims with (Python's strip() would trim \x1c-\x1f and U+00A0 too).
_KONG_BLANKS = " \t\n\v\f\r"

_PG_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_PG_UNQUOTED = re.compile(r"[^\s#'=]+")
_PG_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def _pg_string(text: str, start: int, where: str) -> tuple[str, int]:
    """A single-quoted postgresql.conf value from `start` (the quote); returns (value, end)."""
    out: list[str] = []
    i = start + 1
    while i < len(text):
        c = text[i]
        if c == "'":
            if i + 1 < len(text) and text[i + 1] == "'":
                out.append("'")
                i += 2
                continue
            return "".join(out), i + 1
        if c == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            octal = re.match(r"[0-7]{1,3}", text[i + 1:])
            if octal:
                out.append(chr(int(octal.group(), 8)))
                i += 1 + len(octal.group())
                continue
            out.append(_PG_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(c)
        i += 1
    raise InputError(f"{where}: unterminated quoted string")


def parse_pg_conf(text: str, *, source: str = "postgresql.conf") -> list[Setting]:
    """Every setting in file order (later ones win, as in PostgreSQL); include lines are settings too."""
    settings: list[Setting] = []
    for lineno, raw in enumerate(_lines(text), 1):
        where = f"{source} line {lineno}"
        line = raw.strip(_PG_BLANKS)
        if not line or line.startswith("#"):
            continue
        name = _PG_NAME.match(line)
        if not name:
            raise InputError(f"{where}: syntax error near {line[:20]!r}")
        rest = line[name.end():].lstrip(_PG_BLANKS)
        if rest.startswith("="):
            rest = rest[1:].lstrip(_PG_BLANKS)
        if rest.startswith("'"):
            value, end = _pg_string(rest, 0, where)
        else:
            bare = _PG_UNQUOTED.match(rest)
            if not bare:
                raise InputError(f"{where}: {name.group()} has no value")
            value, end = bare.group(), bare.end()
        tail = rest[end:].strip(_PG_BLANKS)
        if tail and not tail.startswith("#"):
            raise InputError(f"{where}: syntax error near {tail[:20]!r}")
        settings.append(Setting(name=name.group().lower(), value=value, line=lineno))
    return settings


@dataclass(frozen=True)
class Token:
    """One pg_hba.conf / pg_ident.conf token; `quoted` tokens are never keywords like `all`."""

    text: str
    quoted: bool = False


@dataclass(frozen=True)
class HbaLine:
    """One pg_hba.conf record. `databases`/`users` are comma lists; `options` are name=value."""

    line: int
    type: str
    databases: tuple[Token, ...]
    users: tuple[Token, ...]
    address: str | None
    method: str
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class IdentLine:
    """One pg_ident.conf record: map name, system user (regex when it starts with '/'), role."""

    line: int
    map: str
    system: Token
    role: Token


def _hba_fields(text: str, source: str) -> list[tuple[int, list[list[Token]]]]:
    """Split into logical lines of fields; each field is a comma list of tokens (hba.c next_field_expand)."""
    out: list[tuple[int, list[list[Token]]]] = []
    pending = ""
    start = 0
    for lineno, raw in enumerate(_lines(text), 1):
        raw = raw.rstrip("\r")  # tokenize_auth_file strips a trailing CR before looking for a backslash
        if not pending:
            start = lineno
        if raw.endswith("\\") and not _in_comment(raw):
            pending += raw[:-1]
            continue
        line, pending = pending + raw, ""
        fields = _tokenize(line, f"{source} line {start}")
        if fields:
            out.append((start, fields))
    return out


def _in_comment(raw: str) -> bool:
    quoted = False
    for c in raw:
        if c == '"':
            quoted = not quoted
        elif c == "#" and not quoted:
            return True
    return False


def _tokenize(line: str, where: str) -> list[list[Token]]:
    fields: list[list[Token]] = []
    i, n = 0, len(line)
    while i < n:
        while i < n and line[i] in " \t\r":
            i += 1
        if i >= n or line[i] == "#":
            break
        field_tokens: list[Token] = []
        while True:
            buf: list[str] = []
            quoted = was_quoted = False
            while i < n:
                c = line[i]
                if c == '"':
                    if quoted and i + 1 < n and line[i + 1] == '"':
                        buf.append('"')
                        i += 2
                        continue
                    quoted = not quoted
                    was_quoted = True
                    i += 1
                    continue
                if not quoted and (c in " \t\r#" or c == ","):
                    break
                buf.append(c)
                i += 1
            if quoted:
                raise InputError(f"{where}: unterminated quoted string")
            field_tokens.append(Token("".join(buf), was_quoted))
            if i < n and line[i] == ",":
                i += 1
                continue
            break
        fields.append(field_tokens)
    return fields


_HBA_TYPES = ("local", "host", "hostssl", "hostnossl", "hostgssenc", "hostnogssenc")


def parse_hba(text: str, *, source: str = "pg_hba.conf") -> list[HbaLine]:
    """The records of a pg_hba.conf, with a one-line error for a record PostgreSQL would reject."""
    lines: list[HbaLine] = []
    for lineno, fields in _hba_fields(text, source):
        where = f"{source} line {lineno}"
        words = [f[0].text if len(f) == 1 else ",".join(t.text for t in f) for f in fields]
        if words[0].startswith("include"):
            continue
        kind = words[0]
        if kind not in _HBA_TYPES:
            raise InputError(f"{where}: unknown connection type {kind!r}")
        need = 4 if kind == "local" else 5
        if len(fields) < need:
            raise InputError(f"{where}: too few fields for a {kind} record")
        pos = 3
        address: str | None = None
        if kind != "local":
            address = words[3]
            pos = 4
            if "/" not in address and re.fullmatch(r"[0-9.]+|[0-9A-Fa-f:]+:[0-9A-Fa-f:.]*", address):
                if len(fields) < 6:
                    raise InputError(f"{where}: an IP address needs a mask or a /prefix")
                address = f"{address} {words[4]}"
                pos = 5
        options: dict[str, str] = {}
        for word in words[pos + 1:]:
            key, eq, value = word.partition("=")
            if not eq:
                raise InputError(f"{where}: authentication option {word!r} is not name=value")
            options[key] = value
        lines.append(HbaLine(line=lineno, type=kind, databases=tuple(fields[1]), users=tuple(fields[2]),
                             address=address, method=words[pos], options=options))
    return lines


def parse_ident(text: str, *, source: str = "pg_ident.conf") -> list[IdentLine]:
    """The records of a pg_ident.conf."""
    out: list[IdentLine] = []
    for lineno, fields in _hba_fields(text, source):
        if fields[0][0].text.startswith("include"):
            continue
        if len(fields) != 3 or any(len(f) != 1 for f in fields):
            raise InputError(f"{source} line {lineno}: a map line is MAPNAME SYSTEM-USERNAME PG-USERNAME")
        out.append(IdentLine(line=lineno, map=fields[0][0].text, system=fields[1][0], role=fields[2][0]))
    return out


@dataclass(frozen=True)
class KongValue:
    """A kong.conf value after Kong's comment stripping, with its line."""

    value: str
    line: int


_KONG_COMMENT = re.compile(r"\s*(?<!\\)#.*$")


def parse_kong_conf(text: str, *, source: str = "kong.conf") -> dict[str, KongValue]:
    """`key = value` lines as Kong reads them: `#` starts a comment, `\\#` is a literal `#`.

    Quotes are not removed, as in Kong: `pg_ssl_cert = '/x'` names a file `'/x'`.
    """
    out: dict[str, KongValue] = {}
    for lineno, raw in enumerate(_lines(text), 1):
        line = raw.strip(_KONG_BLANKS)
        if not line or line[0] in "#;":
            continue
        key, eq, value = line.partition("=")
        if not eq or not key.strip():
            raise InputError(f"{source} line {lineno}: expected key = value")
        value = _KONG_COMMENT.sub("", value).replace("\\#", "#").strip(_KONG_BLANKS)
        out[key.strip(_KONG_BLANKS).lower()] = KongValue(value=value, line=lineno)
    return out


def kong_list(value: str) -> list[str]:
    """A comma-separated kong.conf list (lua_ssl_trusted_certificate), entries trimmed."""
    return [v.strip() for v in value.split(",") if v.strip()]


def kong_bool(value: str) -> bool | None:
    """Kong's booleans: on/true and off/false; None for anything else."""
    low = value.strip().lower()
    if low in ("on", "true"):
        return True
    if low in ("off", "false"):
        return False
    return None
