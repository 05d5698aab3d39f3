"""`status`: every certificate's state and the CRL's, as data.

The library says what is due and which remedy applies (`Remedy`); the CLI
words the command line for it and picks the exit code cron and monitoring see.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from pgkongtls import DEFAULT_WARN_DAYS, MAX_DAYS, certs
from pgkongtls.lifecycle.base import LEAF_ROLES, check_days
from pgkongtls.manifest import ROLES, Manifest, iso, parse_iso


class Remedy(enum.Enum):
    """What fixes a notice; cli_lifecycle turns it into the command to run."""

    RENEW = "renew"  # a leaf: renew it
    RENEW_CA = "renew-ca"  # a CA: renew it with its own key (renew root|intermediate), or rotate to new keys
    REISSUE = "reissue"  # rotate begun: deploy the trust files, then re-issue the leaves from the new CAs
    FINISH = "finish"  # old CA certificates still trusted: drop them once every host has this phase's files
    RESIGN_CRL = "crl"  # the CRL: re-sign it and ship it to the database


@dataclass(frozen=True)
class CertStatus:
    """One row of `pgkongtls status`."""

    name: str
    role: str
    cn: str
    sans: tuple[str, ...]
    issuer: str | None
    serial: str
    not_after: str
    days_left: int
    state: str  # valid, expiring, expired, revoked, superseded (an old CA certificate still trusted)
    revoked: str | None = None
    revocation_reason: str | None = None


@dataclass(frozen=True)
class CrlStatus:
    """The CRL row: its nextUpdate is a deadline for the whole database."""

    file: str
    next_update: str
    days_left: int
    state: str  # valid, expiring, expired


@dataclass(frozen=True)
class Notice:
    """A warning (within --warn-days) or an expiry: what happened, and the remedy."""

    name: str
    severity: str  # warning, expired
    message: str
    remedy: Remedy


@dataclass(frozen=True)
class Status:
    """What `status` reports."""

    now: str
    warn_days: int
    certificates: tuple[CertStatus, ...]
    crl: CrlStatus | None
    notices: tuple[Notice, ...]
    #: (CA name, nextUpdate) of each CRL in the CRL file: every CA's is a deadline of its own.
    crl_levels: tuple[tuple[str, str], ...] = ()
    phase: str | None = None

    @property
    def expired(self) -> list[str]:
        """Names of what has expired while in service (certificates, the CRL)."""
        return [n.name for n in self.notices if n.severity == "expired"]


def due_within(st: Status, window: dt.timedelta) -> list[str]:
    """What is in service (CAs and CRLs included, revoked leaves not) and expires within `window`: cron's gate."""
    until = parse_iso(st.now) + window
    due = [c.name for c in st.certificates if c.state != "revoked" and parse_iso(c.not_after) <= until]
    return due + ([st.crl.file] if st.crl is not None and parse_iso(st.crl.next_update) <= until else [])


def _days_left(when: dt.datetime, now: dt.datetime) -> int:
    return int((when - now).total_seconds() // 86400)


def _state(when: dt.datetime, now: dt.datetime, warn: dt.timedelta) -> str:
    if when <= now:
        return "expired"
    return "expiring" if when - now <= warn else "valid"


def compute_status(m: Manifest, *, now: dt.datetime | None = None, warn_days: int = DEFAULT_WARN_DAYS,
                   crl_levels: tuple[tuple[str, str], ...] = ()) -> Status:
    """Every certificate's state plus the CRL's (`crl_levels`: each level's nextUpdate), with a notice for each that is due."""
    now = now or certs.utcnow()
    check_days(warn_days, "--warn-days", 0, MAX_DAYS)
    warn = dt.timedelta(days=warn_days)
    rows: list[CertStatus] = []
    notices: list[Notice] = []
    order = {r: i for i, r in enumerate(ROLES)}
    for e in sorted(m.certificates.values(), key=lambda e: (order[e.role], e.name)):
        when = parse_iso(e.not_after)
        superseded = "@" in e.name and e.role not in LEAF_ROLES  # an old CA certificate kept in the trust files
        state = "revoked" if e.revoked else "superseded" if superseded else _state(when, now, warn)
        left = _days_left(when, now)
        rows.append(CertStatus(e.name, e.role, e.cn, e.sans, e.issuer, e.serial, e.not_after, left, state,
                               e.revoked, e.revocation_reason))
        remedy = Remedy.RENEW if e.role in LEAF_ROLES else Remedy.RENEW_CA
        if superseded:
            continue  # the phase notice covers it
        if state == "expired":
            notices.append(Notice(e.name, "expired", f"{e.name} expired on {e.not_after[:10]}", remedy))
        elif state == "expiring":
            notices.append(Notice(e.name, "warning", f"{e.name} expires in {left} days ({e.not_after[:10]})", remedy))
    notices += _outlived(m)
    if m.phase is not None:
        old = ", ".join(sorted(e.name for e in m.certificates.values() if e.role not in LEAF_ROLES and "@" in e.name))
        what = {"renewed": f"the old CA certificates ({old}) are still in the trust files",
                "begun": f"old ({old}) and new CAs are both trusted; the leaves are still the old CAs'",
                "reissued": f"the leaves are the new CAs'; the old CAs ({old}) are still trusted"}[m.phase]
        notices.append(Notice(old, "warning", f"phase {m.phase}: {what}",
                              Remedy.REISSUE if m.phase == "begun" else Remedy.FINISH))
    crl: CrlStatus | None = None
    if m.crl_file and m.crl_next_update:
        when = parse_iso(m.crl_next_update)
        crl = CrlStatus(m.crl_file, m.crl_next_update, _days_left(when, now), _state(when, now, warn))
        if crl.state == "expired":
            notices.append(Notice(m.crl_file, "expired", f"{m.crl_file} nextUpdate passed on {m.crl_next_update[:10]}: "
                                  "PostgreSQL now refuses every client certificate", Remedy.RESIGN_CRL))
        elif crl.state == "expiring":
            notices.append(Notice(m.crl_file, "warning", f"{m.crl_file} nextUpdate is in {crl.days_left} days "
                                  f"({m.crl_next_update[:10]}): then PostgreSQL refuses every client certificate",
                                  Remedy.RESIGN_CRL))
    return Status(iso(now), warn_days, tuple(rows), crl, tuple(notices), crl_levels, m.phase)


def _outlived(m: Manifest) -> list[Notice]:
    """A CA that expires before a certificate it issued: from that day the certificate stops verifying."""
    out: list[Notice] = []
    for level in ("root", "intermediate"):
        ca = m.certificates.get(level)
        if ca is None:
            continue
        later = sorted(e.name for e in m.certificates.values() if e.issuer == level and not e.revoked
                       and "@" not in e.name and parse_iso(e.not_after) > parse_iso(ca.not_after))
        if later:
            out.append(Notice(level, "warning", f"the {level} CA expires on {ca.not_after[:10]}, before "
                              f"{', '.join(later[:3])}{' …' if len(later) > 3 else ''} it issued", Remedy.RENEW_CA))
    return out
