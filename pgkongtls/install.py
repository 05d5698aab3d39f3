"""Edit a host's config files for a bundle: pure functions, old text in, new text out.

Everything pgkongtls adds sits between `# BEGIN pgkongtls <file>` and
`# END pgkongtls <file>` lines, so a second install replaces the block in place
and never duplicates it, and lines outside the markers are kept byte for byte
(kong.conf's own copies of the keys pgkongtls manages are the one exception:
they move into the block as comments, since Kong would otherwise read two values).
"""

from __future__ import annotations

import difflib
import re

from pgkongtls.errors import InputError

#: The file PostgreSQL includes; pgkongtls rewrites it whole, so its first line says so.
PG_CONF_NAME = "pgkongtls.conf"
OWNED_HEADER = "# managed by pgkongtls install: rewritten on every install, edit the bundle instead"
REPLACED = "# replaced by pgkongtls: "

_PG_SETTING = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(?:=\s*|\s+)(.*)")
_KONG_SETTING = re.compile(r"\s*([a-z_][a-z0-9_]*)\s*=")


def begin(what: str) -> str:
    return f"# BEGIN pgkongtls {what}: managed by pgkongtls install, edits inside are replaced"


def end(what: str) -> str:
    return f"# END pgkongtls {what}"


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def find_block(text: str, what: str) -> tuple[int, int] | None:
    """(first, last) line index of the block, or None; a damaged or doubled block is an error."""
    lines = [ln.rstrip("\r\n") for ln in _lines(text)]
    starts = [i for i, ln in enumerate(lines) if ln.startswith(f"# BEGIN pgkongtls {what}:")]
    ends = [i for i, ln in enumerate(lines) if ln == end(what)]
    if not starts and not ends:
        return None
    if len(starts) != 1 or len(ends) != 1 or ends[0] < starts[0]:
        raise InputError(f"{what} has a damaged or doubled pgkongtls block (line {(starts + ends)[0] + 1}); "
                         "remove the BEGIN/END pgkongtls lines and what is between them, then install again")
    return starts[0], ends[0]


def _block(what: str, body: str) -> list[str]:
    return [begin(what) + "\n", *[ln if ln.endswith("\n") else ln + "\n" for ln in _lines(body)], end(what) + "\n"]


def set_block(text: str, what: str, body: str, *, top: bool) -> str:
    """Replace the block in place, or add it at the top (pg_hba: first match wins) or the end."""
    lines = _lines(text)
    found = find_block(text, what)
    block = _block(what, body)
    if found is not None:
        first, last = found
        return "".join(lines[:first] + block + lines[last + 1:])
    if top:
        return "".join(block + lines)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return "".join(lines + block)


def block_body(text: str, what: str) -> str | None:
    found = find_block(text, what)
    if found is None:
        return None
    return "".join(_lines(text)[found[0] + 1:found[1]])


def pg_hba(text: str, snippet: str) -> str:
    return set_block(text, "pg_hba.conf", snippet, top=True)


def rules_above(text: str, what: str) -> list[str]:
    """pg_hba rule lines above our block: with first match wins, one of them may take Kong's connections."""
    found = find_block(text, what)
    if found is None:
        return []
    return [ln.strip() for ln in _lines(text)[:found[0]] if ln.strip() and not ln.lstrip().startswith("#")]


def pg_ident(text: str, snippet: str) -> str:
    return set_block(text, "pg_ident.conf", snippet, top=False)


def _unquote(value: str) -> str:
    value = value.split("#", 1)[0].strip() if not value.startswith("'") else value
    m = re.match(r"'((?:[^']|'')*)'", value)
    return m.group(1).replace("''", "'") if m else value


def _settings(text: str) -> list[tuple[int, str, str]]:
    """(line index, name, value) of postgresql.conf settings outside our block."""
    found = find_block(text, "postgresql.conf")
    out = []
    for i, line in enumerate(_lines(text)):
        if found and found[0] <= i <= found[1]:
            continue
        m = _PG_SETTING.match(line)
        if m and not line.lstrip().startswith("#"):
            out.append((i, m.group(1).lower(), _unquote(m.group(2).strip())))
    return out


def pg_setting(text: str, name: str) -> str | None:
    """The last value postgresql.conf gives `name` (later lines win), None when unset."""
    values = [v for _i, k, v in _settings(text) if k == name]
    return values[-1] if values else None


def pg_conf(text: str) -> tuple[str, str]:
    """(new postgresql.conf, where pgkongtls.conf goes relative to the config directory).

    With `include_dir` set and no ssl_* setting after it, the file goes into that directory and
    postgresql.conf is not touched; otherwise one include line in a block at the end, where it wins.
    """
    settings = _settings(text)
    dirs = [(i, v) for i, k, v in settings if k == "include_dir"]
    if dirs and find_block(text, "postgresql.conf") is None:
        line, directory = dirs[-1]
        if not any(k.startswith("ssl") and i > line for i, k, _ in settings) and not directory.startswith("/"):
            return text, f"{directory.rstrip('/')}/{PG_CONF_NAME}"
    return set_block(text, "postgresql.conf", f"include '{PG_CONF_NAME}'", top=False), PG_CONF_NAME


def owned_pg_conf(snippet: str) -> str:
    return f"{OWNED_HEADER}\n{snippet}"


def is_owned(text: str) -> bool:
    return text.startswith(OWNED_HEADER + "\n")


def kong_keys(snippet: str) -> list[str]:
    """The keys a kong.conf snippet sets, in order."""
    return [m.group(1) for ln in _lines(snippet) if (m := _KONG_SETTING.match(ln)) and not ln.lstrip().startswith("#")]


def kong_conf(text: str, snippet: str) -> str:
    """Set the snippet's keys inside a block: in place of the first line that set one of them
    (an existing `pg_ssl = off`), the others moved into the block as comments, never duplicated."""
    keys = set(kong_keys(snippet))
    lines = _lines(text)
    found = find_block(text, "kong.conf")
    old = block_body(text, "kong.conf") or ""
    replaced = [ln for ln in _lines(old) if ln.startswith(REPLACED)]
    keep: list[str] = []
    at: int | None = None
    for i, line in enumerate(lines):
        inside = found is not None and found[0] <= i <= found[1]
        m = _KONG_SETTING.match(line)
        if inside:
            if i == found[0]:  # type: ignore[index]
                at = len(keep)
            continue
        if m and m.group(1) in keys and not line.lstrip().startswith("#"):
            replaced.append(REPLACED + line.rstrip("\r\n") + "\n")
            at = len(keep) if at is None else at
            continue
        keep.append(line)
    if keep and not keep[-1].endswith("\n"):
        keep[-1] += "\n"
    block = _block("kong.conf", snippet + "".join(replaced))
    at = len(keep) if at is None else at
    return "".join(keep[:at] + block + keep[at:])


def diff(path: str, old: str | None, new: str) -> str:
    """A unified diff for --dry-run ('' when nothing changes)."""
    if old == new:
        return ""
    return "".join(difflib.unified_diff(_lines(old or ""), _lines(new), fromfile="/dev/null" if old is None else path,
                                        tofile=path))
