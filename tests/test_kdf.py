"""Encrypted CA keys: PBES2 with PBKDF2-HMAC-SHA256 at 600,000 iterations (it was 2,048), read back by
openssl and by pgkongtls; a passphrase file others can read gets one Warning line."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from pgkongtls.cli import main
from pgkongtls.lifecycle import load_key
from pgkongtls.pki import InitOptions, plan_init

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)
PHRASE = b"correct horse battery staple"


@pytest.fixture(scope="module")
def ca_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes]]:
    tmp = tmp_path_factory.mktemp("kdf")
    (tmp / "phrase").write_bytes(PHRASE + b"\n")
    files = plan_init(InitOptions(key_type="ecdsa-p256"), now=NOW, ca_passphrase=PHRASE).files
    keys = {name: files[name] for name in ("root.key", "intermediate.key")}
    for name, data in keys.items():
        (tmp / name).write_bytes(data)
    return tmp, keys


def asn1(path: Path) -> str:
    return subprocess.run(["openssl", "asn1parse", "-in", str(path)], capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("name", ["root.key", "intermediate.key"])
def test_the_kdf_is_pbkdf2_sha256_at_600000_iterations_with_aes256(ca_keys: tuple[Path, dict[str, bytes]],
                                                                    name: str) -> None:
    from pgkongtls.keywrap import PBKDF2_ITERATIONS

    tmp, _ = ca_keys
    dump = asn1(tmp / name)
    objects = re.findall(r"OBJECT\s+:(\S+)", dump)
    assert objects == ["PBES2", "PBKDF2", "hmacWithSHA256", "aes-256-cbc"]
    (count_hex,) = re.findall(r"prim: INTEGER\s+:([0-9A-F]+)", dump)
    assert int(count_hex, 16) == PBKDF2_ITERATIONS >= 600_000


@pytest.mark.parametrize("name", ["root.key", "intermediate.key"])
def test_openssl_reads_the_key_with_the_passphrase_and_not_without(ca_keys: tuple[Path, dict[str, bytes]],
                                                                   name: str) -> None:
    tmp, _ = ca_keys
    ok = subprocess.run(["openssl", "pkey", "-in", str(tmp / name), "-passin", f"file:{tmp / 'phrase'}", "-pubout"],
                        capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith("-----BEGIN PUBLIC KEY-----"), ok.stderr
    (tmp / "wrong").write_text("incorrect horse\n")
    bad = subprocess.run(["openssl", "pkey", "-in", str(tmp / name), "-passin", f"file:{tmp / 'wrong'}", "-noout"],
                         capture_output=True, text=True)
    assert bad.returncode != 0


def test_pgkongtls_reads_its_own_encrypted_key_and_it_matches(ca_keys: tuple[Path, dict[str, bytes]]) -> None:
    tmp, keys = ca_keys
    key = load_key(keys["root.key"], "root.key", PHRASE)
    ossl = subprocess.run(["openssl", "pkey", "-in", str(tmp / "root.key"), "-passin", f"file:{tmp / 'phrase'}",
                           "-pubout"], capture_output=True, check=True).stdout
    from cryptography.hazmat.primitives import serialization

    assert key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo) == ossl


@pytest.mark.parametrize(("mode", "warned"), [(0o600, False), (0o400, False), (0o640, True), (0o604, True)])
def test_a_passphrase_file_others_can_read_is_warned_about(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           mode: int, warned: bool) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "phrase").write_bytes(PHRASE + b"\n")
    (tmp_path / "phrase").chmod(mode)
    r = CliRunner().invoke(main, ["init", "--out", "pki", "--ca-passphrase-file", "phrase"], prog_name="pgkongtls")
    assert r.exit_code == 0
    warning = (f"Warning: --ca-passphrase-file phrase has mode {mode:04o}: other users may read the CA passphrase; "
               "chmod 600 phrase\n")
    assert r.stderr.startswith(warning) is warned
    assert r.stderr.count("Warning:") == int(warned)
