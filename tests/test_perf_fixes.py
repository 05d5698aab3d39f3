"""The speed fixes from issue 7, each pinned to the behaviour it must keep.

- certs.generate_keys: RSA keys made on parallel threads are all there, all distinct.
- manifest.dumps without dataclasses.asdict: the same text as before.
- fsio: above SYNCFS_ABOVE files, one syncfs instead of an fsync per file; every file still lands.
"""

from __future__ import annotations

import dataclasses
import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pgkongtls import certs, fsio
from pgkongtls.errors import InputError
from pgkongtls.manifest import CertEntry, Manifest, dumps


def test_parallel_rsa_keys_are_the_requested_count_size_and_all_distinct() -> None:
    keys = certs.generate_keys("rsa-2048", 5)
    assert len(keys) == 5
    assert all(isinstance(k, rsa.RSAPrivateKey) and k.key_size == 2048 for k in keys)
    assert len({k.private_numbers().p for k in keys}) == 5


def test_ecdsa_keys_are_the_requested_count_and_curve() -> None:
    keys = certs.generate_keys("ecdsa-p384", 3)
    assert [k.curve.name for k in keys if isinstance(k, ec.EllipticCurvePrivateKey)] == ["secp384r1"] * 3


def test_unknown_key_type_is_refused_before_any_thread_starts() -> None:
    with pytest.raises(InputError, match=r"unknown key type 'rsa-1024'; use one of ecdsa-p256, "):
        certs.generate_keys("rsa-1024", 4)


def test_manifest_json_is_the_dataclass_fields_one_certificate_per_line() -> None:
    """dumps builds its dict by hand and encodes each entry with json's C encoder (fast); the data must stay
    what asdict gave, the top level indented and each certificate on a line of its own, keys sorted."""
    m = Manifest(mode="ca", chain="root", key_type="ecdsa-p256", db_user="kong", hosts=("db", "10.0.0.5"),
                 bundle=True, crl_file="crl.pem", crl_next_update="2030-01-01T00:00:00Z")
    entry = CertEntry(name="c1", role="client", file="c1.crt", key_file="c1.key", cn="kong", sans=("a", "b"),
                      issuer="root", serial="1f", sha256="AB", not_before="2026-01-01T00:00:00Z",
                      not_after="2027-01-01T00:00:00Z", revoked="2026-06-01T00:00:00Z",
                      revocation_reason="keyCompromise")
    m = m.with_cert(entry)
    reference = json.loads(json.dumps(dataclasses.asdict(m)))  # tuples as lists, as JSON has them
    text = dumps(m)
    assert json.loads(text) == reference
    lines = text.splitlines()
    assert lines[0] == "{" and '  "bundle": true,' in lines and lines[-1] == "}"
    assert f'    "c1": {json.dumps(reference["certificates"]["c1"], sort_keys=True)}' in lines


def test_a_commit_above_the_syncfs_threshold_writes_every_file_with_its_mode(tmp_path: Path) -> None:
    count = fsio.SYNCFS_ABOVE * 2
    files = {f"n{i}.crt": f"cert {i}\n".encode() for i in range(count)}
    files |= {f"n{i}.key": f"key {i}\n".encode() for i in range(count)}
    private = frozenset(n for n in files if n.endswith(".key"))
    with fsio.transaction(tmp_path / "pki", create=True) as tx:
        tx.commit(files, private=private)
    pki = tmp_path / "pki"
    assert {p.name: p.read_bytes() for p in pki.iterdir()} == files
    assert {p.name for p in pki.iterdir() if stat.S_IMODE(p.stat().st_mode) == 0o600} == private
    assert all(stat.S_IMODE((pki / n).stat().st_mode) == 0o644 for n in files if n not in private)
