"""Library tests for the batch self-check (lifecycle.check.LeafChecker): the chain is verified once per
run, and every leaf against its issuing CA, so a bad leaf anywhere in a batch still stops the run."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from pgkongtls import certs, lifecycle, ops
from pgkongtls.certs import Issued, SelfCheckError
from pgkongtls.lifecycle import LeafRequest
from pgkongtls.lifecycle import check as check_mod
from pgkongtls.pki import InitOptions

from .test_fsio import snapshot

NOW = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.timezone.utc)
NAMES = [f"n{i}" for i in range(5)]
BAD = "n3"  # after leaves of the same kind, so only the per-leaf check can catch it


def clients(names: list[str]) -> list[LeafRequest]:
    return [LeafRequest(name=n, role="client", cn="{name}") for n in names]


def make_pki(d: Path) -> Path:
    ops.init(d, InitOptions(db_user="kong"), now=NOW)
    return d


def issuer_of(d: Path) -> Issued:
    key = load_pem_private_key((d / "intermediate.key").read_bytes(), password=None)
    assert isinstance(key, certs.PrivateKey)
    return Issued(cert=x509.load_pem_x509_certificate((d / "intermediate.crt").read_bytes()), key=key)


def bad_at(monkeypatch: pytest.MonkeyPatch, make_bad: Callable[..., Issued]) -> None:
    """Mint BAD with `make_bad` instead of the client builder; every other leaf as usual."""
    real = certs.make_client

    def make_client(*, cn: str, **kw: object) -> Issued:
        return make_bad(cn=cn, **kw) if cn == BAD else real(cn=cn, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(certs, "make_client", make_client)


def test_a_batch_stops_at_a_leaf_signed_by_another_ca(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = make_pki(tmp_path / "pki")
    other = issuer_of(make_pki(tmp_path / "other"))
    real = certs.make_client
    bad_at(monkeypatch, lambda *, issuer, **kw: real(issuer=other, **kw))
    before = snapshot(d)
    with pytest.raises(SelfCheckError, match="self-check failed, this is a pgkongtls bug"):
        ops.issue(d, clients(NAMES), now=NOW)
    assert snapshot(d) == before


def test_a_batch_stops_at_a_leaf_with_the_server_eku(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = make_pki(tmp_path / "pki")
    bad_at(monkeypatch, lambda *, cn, **kw: certs.make_server(hosts=["db.internal"], cn=cn, **kw))
    before = snapshot(d)
    with pytest.raises(SelfCheckError, match="required EKU not found"):
        ops.issue(d, clients(NAMES), now=NOW)
    assert snapshot(d) == before


def test_a_batch_of_good_leaves_passes_the_check(tmp_path: Path) -> None:
    d = make_pki(tmp_path / "pki")
    change = ops.issue(d, clients(NAMES), now=NOW)
    assert [e.name for e in change.done] == NAMES


def test_the_chain_is_checked_once_per_kind_not_per_leaf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = make_pki(tmp_path / "pki")
    calls: list[bool] = []
    real = check_mod.self_check

    def counted(**kw: object) -> None:
        calls.append(kw["server"] is not None)
        real(**kw)  # type: ignore[arg-type]

    monkeypatch.setattr(check_mod, "self_check", counted)
    servers = [LeafRequest(name=f"s{i}", role="server", cn=None, hosts=(f"db{i}.internal",)) for i in range(3)]
    ops.issue(d, [*clients(NAMES), *servers], now=NOW)
    assert calls == [False, True]


def key_of(path: Path) -> certs.PrivateKey:
    key = load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, certs.PrivateKey)
    return key


def resign(c: x509.Certificate, by: x509.Certificate, key: certs.PrivateKey,
           extra: x509.ExtensionType | None = None) -> x509.Certificate:
    """`c` again, signed with `key` as `by`, with one more (critical) extension."""
    b = (x509.CertificateBuilder().issuer_name(by.subject).subject_name(c.subject).public_key(c.public_key())
         .serial_number(c.serial_number).not_valid_before(c.not_valid_before_utc).not_valid_after(c.not_valid_after_utc))
    for e in c.extensions:
        b = b.add_extension(e.value, e.critical)
    if extra is not None:
        b = b.add_extension(extra, critical=True)
    return b.sign(key, certs._hash_for(key))


@pytest.mark.parametrize("constrained", [True, False])
def test_a_root_name_constraint_is_applied_to_every_leaf(tmp_path: Path, constrained: bool) -> None:
    """The issuer alone cannot apply the root's name constraints, so such a chain is checked in full per leaf."""
    d = make_pki(tmp_path / "pki")
    root, root_key = x509.load_pem_x509_certificate((d / "root.crt").read_bytes()), key_of(d / "root.key")
    if constrained:
        nc = x509.NameConstraints(permitted_subtrees=[x509.DNSName("internal")], excluded_subtrees=None)
        root = resign(root, root, root_key, nc)
    issuing = issuer_of(d)
    inter = resign(issuing.cert, root, root_key)
    checker = check_mod.LeafChecker(lifecycle.Ca(certs={"root": root, "intermediate": inter}, keys={},
                                                 issuing="intermediate"), NOW)
    signer = Issued(cert=inter, key=issuing.key)
    for host in ("db1.internal", "db.example.com"):
        leaf = certs.make_server(hosts=[host], key=certs.generate_key("ecdsa-p256"), issuer=signer, days=30, now=NOW)
        if constrained and host == "db.example.com":
            with pytest.raises(SelfCheckError, match="self-check failed"):
                checker.check(leaf.cert, server=True, client=False, host=host)
        else:
            checker.check(leaf.cert, server=True, client=False, host=host)
