"""What a check returns: a Finding with a severity, and the set of files already checked.

Severity: an `error` breaks PostgreSQL, libpq `verify-full`, Kong, or a
strict client (Python 3.13's ssl, asyncpg); a `warning` is a departure from
the RFC 5280 profile that those still accept, or a risk that is not a failure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    """One problem: what, how bad, where, and the one-line fix."""

    id: str
    severity: str
    file: str
    message: str
    fix: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class Seen:
    """Real paths already checked, so a file reached twice (DIR and a config) is reported once."""

    paths: set[str]

    def first(self, real: str) -> bool:
        if real and real in self.paths:
            return False
        self.paths.add(real)
        return True


def settle(findings: Iterable[Finding]) -> list[Finding]:
    """Duplicates removed (the same file reached by two inputs), errors first, otherwise in check order."""
    unique: dict[tuple[str, str, str], Finding] = {}
    for f in findings:
        unique.setdefault((f.id, f.file, f.message), f)
    return sorted(unique.values(), key=lambda f: f.severity != ERROR)
