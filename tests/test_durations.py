"""durations.parse_duration: the one parser behind --expiring-within and --fail-within."""

from __future__ import annotations

import datetime as dt

import pytest

from pgkongtls.durations import parse_duration
from pgkongtls.errors import InputError


@pytest.mark.parametrize(("text", "delta"), [
    ("30d", dt.timedelta(days=30)), ("12h", dt.timedelta(hours=12)), ("2w", dt.timedelta(weeks=2)),
    (" 1d ", dt.timedelta(days=1)), ("0h", dt.timedelta(0)),
])
def test_a_number_and_a_unit(text: str, delta: dt.timedelta) -> None:
    assert parse_duration(text, "--fail-within") == delta


@pytest.mark.parametrize("text", ["7", "30", "0"])
def test_a_bare_number_is_refused_with_the_unit_to_add(text: str) -> None:
    with pytest.raises(InputError) as e:
        parse_duration(text, "--fail-within")
    assert str(e.value) == f"--fail-within {text} has no unit; write {text}d for days (or h hours, w weeks)"


@pytest.mark.parametrize("text", ["30x", "-1d", "", "d", "1.5d", "30dd", "30 d", "123456d"])
def test_anything_else_is_refused_naming_the_option(text: str) -> None:
    with pytest.raises(InputError) as e:
        parse_duration(text, "--expiring-within")
    assert str(e.value) == f"invalid --expiring-within {text!r}: use a number and a unit, like 30d (h hours, d days, w weeks)"
