"""Day 2 planning: issue more leaves, renew them, revoke them with CRLs, report status.

Pure like pki.py: a manifest, the CA material and a `Reader` go in, a
`manifest.Change` (the new manifest plus the files to write) comes out, and
ops.py applies it in one fsio transaction. Nothing here writes; every read goes
through the injected `Reader` (a function from file name to bytes or None), so
tests run the planners on a dict and move the clock with `now`
(tests/test_lifecycle.py, "an injected reader").

One module per command: `base` (input checks, CA material), `issue`, `renew`,
`revoke` (and the CRLs), `status`. The names below are the package's API.
"""

from pgkongtls import DEFAULT_CRL_DAYS, DEFAULT_WARN_DAYS
from pgkongtls.lifecycle.base import (
    CA_LEVELS,
    LEAF_ROLES,
    RESERVED_NAMES,
    Ca,
    LeafRequest,
    Progress,
    Reader,
    check_days,
    client_cn,
    load_ca,
    load_key,
    lookup,
    validate_name,
    verify_files,
)
from pgkongtls.lifecycle.coverage import plan_revoke_old, sharing_key
from pgkongtls.lifecycle.issue import plan_issue
from pgkongtls.lifecycle.prune import Pruned, check_keep, plan_prune
from pgkongtls.lifecycle.renew import plan_renew, select_expiring
from pgkongtls.lifecycle.revoke import REASONS, build_crls, crl_levels, load_crls, plan_crl, plan_revoke, previous_crl_number
from pgkongtls.lifecycle.status import CertStatus, CrlStatus, Notice, Remedy, Status, compute_status, due_within
from pgkongtls.manifest import CRL_FILE, Change, Manifest

__all__ = [
    "CA_LEVELS", "CRL_FILE", "DEFAULT_CRL_DAYS", "DEFAULT_WARN_DAYS", "LEAF_ROLES", "REASONS", "RESERVED_NAMES",
    "Ca", "CertStatus", "Change", "CrlStatus", "LeafRequest", "Manifest", "Notice", "Progress", "Reader", "Remedy", "Status",
    "build_crls", "check_days", "client_cn", "compute_status", "crl_levels", "due_within", "load_ca", "load_crls",
    "load_key", "lookup", "plan_crl", "plan_issue", "plan_renew", "plan_revoke", "plan_revoke_old", "previous_crl_number",
    "select_expiring", "sharing_key", "Pruned", "check_keep", "plan_prune",
    "validate_name", "verify_files",
]
