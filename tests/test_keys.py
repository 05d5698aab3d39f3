"""certs.generate_keys: RSA keys made on parallel threads are all there, all distinct."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pgkongtls import certs
from pgkongtls.errors import InputError


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
