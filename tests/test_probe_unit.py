"""Library tests for probe's pure parts; the network parts run against real servers in tests/realstack."""

from __future__ import annotations

import pytest

from pgkongtls.errors import InputError
from pgkongtls.probe import ProbeReport, Verdict
from pgkongtls.probe_options import Target, parse_target


@pytest.mark.parametrize(("text", "host", "port", "shown"), [
    ("db.internal", "db.internal", 5432, "db.internal:5432"), ("10.0.0.5:6432", "10.0.0.5", 6432, "10.0.0.5:6432"),
    ("[::1]:5433", "::1", 5433, "[::1]:5433"), ("[::1]", "::1", 5432, "[::1]:5432"), ("::1", "::1", 5432, "[::1]:5432"),
])
def test_parse_target(text: str, host: str, port: int, shown: str) -> None:
    t = parse_target(text)
    assert t == Target(host, port) and str(t) == shown


@pytest.mark.parametrize("text", ["db:0", "db:65536", ":5432", "db:", "[::1]x"])
def test_parse_target_refuses(text: str) -> None:
    with pytest.raises(InputError, match="invalid target"):
        parse_target(text)


def test_report_fails_on_refused_tls_or_a_failed_verdict_but_not_on_a_note() -> None:
    assert ProbeReport(target="t", ssl=False).failed
    assert ProbeReport(target="t", ssl=True, verdicts=(Verdict("kong", False, "x"),)).failed
    assert not ProbeReport(target="t", ssl=True, verdicts=(Verdict("auth", None, "password asked"),)).failed
