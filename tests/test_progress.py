"""The library's progress callback: told (done, total) after each certificate, and optional."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pgkongtls import ops
from pgkongtls.lifecycle import LeafRequest
from pgkongtls.pki import InitOptions

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)


def test_issue_reports_each_certificate_of_the_total(tmp_path: Path) -> None:
    ops.init(tmp_path / "p", InitOptions(), now=T0)
    seen: list[tuple[int, int]] = []
    change = ops.issue(tmp_path / "p", [LeafRequest(name=f"n{i}", role="client", cn=None) for i in range(3)], now=T0,
                       progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 3), (2, 3), (3, 3)] and len(change.done) == 3


def test_renew_expiring_within_reports_against_what_is_due(tmp_path: Path) -> None:
    ops.init(tmp_path / "p", InitOptions(), now=T0)
    seen: list[tuple[int, int]] = []
    change = ops.renew(tmp_path / "p", [], expiring_within=dt.timedelta(days=30), now=T0 + dt.timedelta(days=360),
                       progress=lambda done, total: seen.append((done, total)))
    assert change is not None and [e.name for e in change.done] == ["client", "server"]
    assert seen == [(1, 2), (2, 2)]


def test_renew_counts_a_name_given_twice_once(tmp_path: Path) -> None:
    ops.init(tmp_path / "p", InitOptions(), now=T0)
    seen: list[tuple[int, int]] = []
    ops.renew(tmp_path / "p", ["server", "server"], now=T0, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 1)]


def test_without_a_callback_nothing_is_reported_and_nothing_breaks(tmp_path: Path) -> None:
    ops.init(tmp_path / "p", InitOptions(), now=T0)
    change = ops.issue(tmp_path / "p", [LeafRequest(name="n", role="client", cn=None)], now=T0)
    assert [e.name for e in change.done] == ["n"]
