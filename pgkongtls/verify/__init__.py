"""`pgkongtls verify`: find the file mismatches that make a restart or a connection fail.

Pure checks over what `inputs.gather` loaded, one module per kind of file:

- `findings`: Finding, the severities, and the set of files already checked;
- `chain`: chains as OpenSSL builds them, certificate helpers, chain order and CRLs;
- `profile`: one certificate and its key (strict role profile, dates, key match, encryption);
- `pkidir`: the PKI directory and its manifest's CRL;
- `postgres`: postgresql.conf and its files, pg_hba.conf and pg_ident.conf;
- `kong`: kong.conf and its files, and the policy Kong's two connection paths expose;
- `runner`: `run_checks`, every check the inputs allow.

What PostgreSQL, libpq, Kong and OpenSSL do is in `pgkongtls.consumers`; the
checks only apply it. Callers import from here; the names below are the API.
"""

from __future__ import annotations

from pgkongtls.verify.chain import (
    ChainResult,
    check_chain_order,
    check_crls,
    check_leaf_chain,
    name_of,
    openssl_verify,
)
from pgkongtls.verify.findings import ERROR, WARNING, Finding, Seen
from pgkongtls.verify.kong import check_kong, check_kong_policy
from pgkongtls.verify.pkidir import check_dir_key_mode, check_pki
from pgkongtls.verify.postgres import check_hba, check_pg, check_pg_key_mode
from pgkongtls.verify.profile import check_key_pair, check_profile, check_validity
from pgkongtls.verify.runner import run_checks

_Seen = Seen  # the name tests/test_verify.py uses

__all__ = [
    "ERROR", "WARNING", "ChainResult", "Finding", "Seen", "check_chain_order", "check_crls", "check_dir_key_mode",
    "check_hba", "check_key_pair", "check_kong", "check_kong_policy", "check_leaf_chain", "check_pg",
    "check_pg_key_mode", "check_pki", "check_profile", "check_validity", "name_of", "openssl_verify", "run_checks",
]
