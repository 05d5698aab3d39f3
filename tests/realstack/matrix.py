"""The one-screen summary of the real-stack matrix: case, client, expected, result.

Tests call the `record` fixture with what they expected and what they saw;
the verdict of each row is the outcome of the test that recorded it, so a row
says PASS only when every assertion of its test held.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: Short column names for the PKI labels the positive matrix uses.
SHORT = {"intermediate": "int", "root": "root", "self-signed": "self", "ecdsa-p256": "ec", "rsa-2048": "rsa"}


def _short(observed: str) -> str:
    """One line, without libpq's 'connection to server at ... failed:' preamble."""
    text = " ".join(observed.split())
    return re.sub(r'^connection failed: connection to server at "[^"]*", port \d+ failed: ', "", text)


@dataclass(frozen=True)
class Row:
    nodeid: str
    case: str
    client: str
    expected: str
    observed: str
    column: str  # a PKI label: rows recorded under several labels form the grid ("" for single cases)


@dataclass
class Matrix:
    rows: list[Row] = field(default_factory=list)
    outcomes: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)

    def record(self, nodeid: str, *, case: str, client: str, expected: str, observed: str, column: str = "") -> None:
        self.rows.append(Row(nodeid, case, client, expected, _short(observed), column))

    def outcome(self, nodeid: str, phase: str, outcome: str) -> None:
        """Keep the worst outcome seen over setup, call and teardown."""
        rank = {"passed": 0, "skipped": 1, "failed": 2}
        if rank[outcome] >= rank.get(self.outcomes.get(nodeid, "passed"), 0):
            self.outcomes[nodeid] = outcome

    def _verdict(self, row: Row) -> str:
        return {"passed": "PASS", "failed": "FAIL", "skipped": "skip"}.get(self.outcomes.get(row.nodeid, ""), "?")

    def lines(self, width: int = 120) -> list[str]:
        """The grid of positive cases (one column per PKI) and the list of single cases."""
        if not self.rows:
            return []
        out: list[str] = []
        spread: dict[tuple[str, str, str], set[str]] = {}
        for r in self.rows:
            spread.setdefault((r.case, r.client, r.expected), set()).add(r.column)
        in_grid = {k for k, cols in spread.items() if len(cols - {""}) > 1}  # one row, several PKIs
        grid = [r for r in self.rows if (r.case, r.client, r.expected) in in_grid]
        single = [r if not r.column else Row(r.nodeid, f"{r.case} [{r.column}]", r.client, r.expected, r.observed, "")
                  for r in self.rows if (r.case, r.client, r.expected) not in in_grid]
        if grid:
            cols = list(dict.fromkeys(r.column for r in grid))
            names = ["/".join(SHORT.get(p, p) for p in c.split("/")) for c in cols]
            keys = list(dict.fromkeys((r.case, r.client, r.expected) for r in grid))
            cells: dict[tuple[str, str, str, str], str] = {}
            for r in grid:
                k = (r.case, r.client, r.expected, r.column)
                cells[k] = "FAIL" if cells.get(k) == "FAIL" else self._verdict(r)
            cw, lw, ew = (max(len(k[i]) for k in keys) for i in range(3))
            out.append(f"{'case':<{cw}}  {'client':<{lw}}  {'expected':<{ew}}  " + " ".join(f"{n:>9}" for n in names))
            for k in keys:
                out.append(f"{k[0]:<{cw}}  {k[1]:<{lw}}  {k[2]:<{ew}}  "
                           + " ".join(f"{cells.get((*k, c), '-'):>9}" for c in cols))
        if single:
            out.append("")
            cw, lw, ew = (max(len(getattr(r, a)) for r in single) for a in ("case", "client", "expected"))
            out.append(f"{'case':<{cw}}  {'client':<{lw}}  {'expected':<{ew}}  result")
            for r in single:
                verdict = self._verdict(r)
                out.append(f"{r.case:<{cw}}  {r.client:<{lw}}  {r.expected:<{ew}}  {verdict}")
                if verdict != "PASS":
                    out.append(f"    got: {r.observed[: max(width - 9, 20)]}")
        if self.versions:
            out.append("")
            out.append("Verified against:")
            out += [f"  {k}: {v}" for k, v in self.versions.items()]
        return out
