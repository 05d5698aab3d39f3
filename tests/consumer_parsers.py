"""Parsers that read config text the way its consumers do, independent of pgkongtls' own.

Used by the render and hostile-input tests to check what PostgreSQL, Kong, a
Docker env file and libpq would actually see in a rendered snippet.
"""

from __future__ import annotations

import re


def lines(text: str) -> list[str]:
    """Split as PostgreSQL and Kong do: on '\\n' only (str.splitlines would also split on U+2028...)."""
    return text.split("\n")


_PG = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_.]*)\s*=?\s*('(?:[^'\\]|''|\\.)*'|[^\s#']+)\s*(#.*)?")
_PG_ESC = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def pg_settings(text: str) -> list[tuple[str, str]]:
    """postgresql.conf (guc-file.l): name [=] value; '' and backslash escapes inside quotes."""
    out = []
    for line in lines(text):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        mt = _PG.fullmatch(line)
        assert mt, f"PostgreSQL would not parse {line!r}"
        value = mt.group(2)
        if value.startswith("'"):
            value = re.sub(r"\\([0-7]{1,3}|.)", lambda e: chr(int(e.group(1), 8)) if e.group(1)[0] in "01234567"
                           else _PG_ESC.get(e.group(1), e.group(1)), value[1:-1].replace("''", "'"))
        out.append((mt.group(1), value))
    return out


Token = tuple[str, bool]  # (text, was quoted)


def hba_records(text: str) -> list[list[list[Token]]]:
    """pg_hba.conf / pg_ident.conf (hba.c next_token): blank-separated fields, ',' lists, "quotes", '#'."""
    records = []
    for line in lines(text):
        fields: list[list[Token]] = []
        field: list[Token] = []
        buf, quoted, have, in_quote = "", False, False, False
        for ch in line:
            if in_quote:
                if ch == '"':
                    in_quote = False
                else:
                    buf += ch
                continue
            if ch == '"':
                in_quote, quoted, have = True, True, True
            elif ch == "#":
                break
            elif ch in " \t\r":
                if have:
                    field.append((buf, quoted))
                    fields.append(field)
                    field, buf, quoted, have = [], "", False, False
            elif ch == ",":
                field.append((buf, quoted))
                buf, quoted, have = "", False, False
            else:
                buf, have = buf + ch, True
        assert not in_quote, f"unterminated quote in {line!r}"
        if have:
            field.append((buf, quoted))
        if field:
            fields.append(field)
        if fields:
            records.append(fields)
    return records


def literal(field: list[Token], value: str, *, keywords: tuple[str, ...] = ("all",)) -> bool:
    """Does this pg_hba/pg_ident field match exactly the one name `value`, nothing more?"""
    if len(field) != 1:
        return False
    text, quoted = field[0]
    if text != value:
        return False
    return quoted or not (text in keywords or text[:1] in ("+", "@", "/"))


def keyword(field: list[Token], word: str) -> bool:
    return field == [(word, False)]


def kong_settings(text: str) -> list[tuple[str, str]]:
    """kong.conf (Kong's conf_loader on penlight): key = value, '#' comments, trimmed, '\\' continues a line."""
    out = []
    for line in lines(text):
        body = line.split("#", 1)[0].strip()
        if not body:
            continue
        key, sep, value = body.partition("=")
        assert sep, f"Kong would not parse {line!r}"
        assert not value.endswith("\\"), f"penlight would join the next line to {line!r}"
        out.append((key.strip(), value.strip()))
    return out


def env_settings(text: str) -> list[tuple[str, str]]:
    """A Docker --env-file: KEY=VALUE per line, the value verbatim, '#' lines are comments."""
    out = []
    for line in lines(text):
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Z_][A-Z0-9_]*", key), f"not an env line: {line!r}"
        out.append((key, value))
    return out


def conninfo(text: str) -> list[tuple[str, str]]:
    """A libpq keyword/value string (conninfo_parse): key=value, '...' with \\ escapes, blanks between."""
    body = [line for line in lines(text) if line and not line.startswith("#")]
    assert len(body) == 1, body
    s, i, out = body[0], 0, []
    while i < len(s):
        if s[i].isspace():
            i += 1
            continue
        eq = s.index("=", i)
        key, i, value = s[i:eq].strip(), eq + 1, ""
        if i < len(s) and s[i] == "'":
            i += 1
            while s[i] != "'":
                if s[i] == "\\":
                    i += 1
                value, i = value + s[i], i + 1
            i += 1
        else:
            while i < len(s) and not s[i].isspace():
                if s[i] == "\\":
                    i += 1
                value, i = value + s[i], i + 1
        out.append((key, value))
    return out
