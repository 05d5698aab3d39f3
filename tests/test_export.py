"""export (library): the formats pgjdbc reads, checked with openssl; CA keys never leave."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from pgkongtls import ops
from pgkongtls.errors import InputError
from pgkongtls.export import P12_FRIENDLY_NAME, P12_KDF_ROUNDS, export_key
from pgkongtls.pki import InitOptions


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    out = tmp_path / "pki"
    ops.init(out, InitOptions(hosts=("db.internal",)), now=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
    return out


def _files(pki: Path, name: str) -> dict[str, bytes]:
    return {"key_pem": (pki / f"{name}.key").read_bytes(), "cert_pem": (pki / f"{name}.crt").read_bytes()}


def test_pk8_is_the_same_key_as_der_pkcs8(pki: Path, tmp_path: Path) -> None:
    out = export_key(name="client", role="client", fmt="pk8", password=None, **_files(pki, "client"))
    original = serialization.load_pem_private_key((pki / "client.key").read_bytes(), None)
    again = serialization.load_der_private_key(out.data, None)
    assert again.private_numbers() == original.private_numbers()  # type: ignore[union-attr]
    (tmp_path / "k.pk8").write_bytes(out.data)
    parsed = subprocess.run(["openssl", "asn1parse", "-inform", "DER", "-in", str(tmp_path / "k.pk8")],
                            capture_output=True, text=True, check=True).stdout
    assert "id-ecPublicKey" in parsed and not out.encrypted


def test_p12_uses_the_modern_profile_and_the_alias_user(pki: Path, tmp_path: Path) -> None:
    out = export_key(name="client", role="client", fmt="p12", password=b"pw", **_files(pki, "client"))
    (tmp_path / "c.p12").write_bytes(out.data)
    info = subprocess.run(["openssl", "pkcs12", "-in", str(tmp_path / "c.p12"), "-passin", "pass:pw", "-info",
                           "-nodes"], capture_output=True, text=True, check=True)
    text = info.stdout + info.stderr
    assert f"PBES2, PBKDF2, AES-256-CBC, Iteration {P12_KDF_ROUNDS}, PRF hmacWithSHA256" in text
    assert f"friendlyName: {P12_FRIENDLY_NAME.decode()}" in text
    assert "MAC: sha256" in text and text.count("BEGIN CERTIFICATE") == 2  # leaf + intermediate


def test_p12_without_password_is_refused(pki: Path) -> None:
    with pytest.raises(InputError, match="^--format p12 needs --password-file"):
        export_key(name="client", role="client", fmt="p12", password=None, **_files(pki, "client"))


@pytest.mark.parametrize("role", ["root", "intermediate"])
def test_ca_keys_never_leave(pki: Path, role: str) -> None:
    with pytest.raises(InputError, match=f"^{role} is a CA: export takes a client or server name"):
        export_key(name=role, role=role, fmt="pk8", password=None, **_files(pki, role))
