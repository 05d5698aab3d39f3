"""Durations on the command line (`--expiring-within 30d`, `--fail-within 12h`): written once, with a unit.

A bare number is refused: `30` could be seconds, hours or days, and a monitoring gate
that silently means hours where someone meant days fires a month late.
"""

from __future__ import annotations

import datetime as dt
import re

from pgkongtls.errors import InputError

#: The units a duration may carry, in the order the error message lists them.
UNITS: dict[str, dt.timedelta] = {"h": dt.timedelta(hours=1), "d": dt.timedelta(days=1), "w": dt.timedelta(weeks=1)}
_DURATION = re.compile(r"([0-9]{1,5})([a-z]*)")
_EXAMPLE = "30d (h hours, d days, w weeks)"


def parse_duration(text: str, option: str) -> dt.timedelta:
    """`30d`, `12h`, `2w` as a timedelta; anything else is one line naming `option` and the form it takes."""
    m = _DURATION.fullmatch(text.strip())
    if m is None or m.group(2) not in ("", *UNITS):
        raise InputError(f"invalid {option} {text!r}: use a number and a unit, like {_EXAMPLE}")
    if not m.group(2):
        raise InputError(f"{option} {text} has no unit; write {m.group(1)}d for days (or h hours, w weeks)")
    return int(m.group(1)) * UNITS[m.group(2)]
