"""Malformed files under the commands that read them: one `Error:` line, exit 1, nothing changed.

The PKI (init, two clients, one revoked so crl.pem exists) gets one file spoiled
at a time: a truncated PEM, a PEM whose body is cut, DER instead of PEM, a key
where a certificate belongs (and the reverse), an empty file, binary garbage; or
its manifest loses a field or gets a wrong type. Every command that reads the
spoiled file must refuse with exactly one line naming the file and the fix,
never a traceback, and leave the directory byte-for-byte as it was.
(`verify` has its own malformed-input tests.)
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pgkongtls.cli import main

Spoil = Callable[[str, bytes, Path], bytes]


def _der(name: str, data: bytes, pki: Path) -> bytes:
    if name.endswith(".key"):
        key = serialization.load_pem_private_key(data, None)
        return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    if name == "crl.pem":
        return x509.load_pem_x509_crl(data).public_bytes(serialization.Encoding.DER)
    return x509.load_pem_x509_certificate(data).public_bytes(serialization.Encoding.DER)


def _body_cut(name: str, data: bytes, pki: Path) -> bytes:
    first, *rest = data.split(b"\n")
    return b"\n".join([first, *rest[:2], first.replace(b"BEGIN", b"END")]) + b"\n"


def _other_kind(name: str, data: bytes, pki: Path) -> bytes:
    return (pki / ("n1.crt" if name.endswith((".key", ".pem")) else "n1.key")).read_bytes()


def _truncated(name: str, data: bytes, pki: Path) -> bytes:
    """Cut in the middle of the last PEM block (a cut between blocks is `bundle-dropped` below)."""
    last = data.rfind(b"-----BEGIN")
    return data[: last + (len(data) - last) // 2]


SPOILS: dict[str, Spoil] = {
    "truncated": _truncated,
    "body-cut": _body_cut,
    "der": _der,
    "other-kind": _other_kind,
    "empty": lambda name, data, pki: b"",
    "garbage": lambda name, data, pki: b"\x00\xff" * 64,
}

#: Each command, as run against the PKI (the --dir option is added).
COMMANDS = {
    "render": ["render", "kong"],
    "status": ["status"],
    "issue": ["issue", "client", "--name", "n3"],
    "renew": ["renew", "n1"],
    "renew-reuse": ["renew", "--reuse-key", "n1"],
    "revoke": ["revoke", "n1"],
    "crl": ["crl"],
}
LIFECYCLE = [c for c in COMMANDS if c != "render"]
SIGNING = ["issue", "renew", "renew-reuse", "revoke", "crl"]

#: One message per kind of damage, the same in every command that reads the file (pkiload's words; `verify`
#: says them too, with the file's path: test_cli_doctor.py and test_status_and_verify_agree below).
RESIGN = "restore it, or re-sign it with pgkongtls crl"
MESSAGES: dict[str, dict[str, str]] = {
    "cert": {
        "truncated": "{f} has a truncated PEM certificate (BEGIN and END do not pair up); copy it again",
        "body-cut": "{f} has a damaged PEM certificate; copy it again",
        "der": "{f} is DER, not PEM; convert it: openssl x509 -inform der -in {f} -out {f}.pem",
        "other-kind": "{f} holds a private key where a certificate should be; point it at the .crt file",
        "empty": "{f} is empty; restore it or re-create it",
        "garbage": "{f} holds no PEM certificate; restore it or re-create it",
    },
    "key": {
        "truncated": "{f} has a truncated PEM private key (BEGIN and END do not pair up); copy it again",
        "body-cut": "{f} has a damaged or unsupported PEM private key; copy it again",
        "der": "{f} is DER, not PEM; convert it: openssl pkey -inform der -in {f} -out {f}.pem",
        "other-kind": "{f} holds a certificate where a private key should be; point it at the .key file",
        "empty": "{f} is empty; restore it or re-create it",
        "garbage": "{f} holds no PEM private key; restore it or re-create it",
    },
    "crl": {
        "truncated": f"{{f}} has a truncated PEM CRL (BEGIN and END do not pair up); {RESIGN}",
        "body-cut": f"{{f}} has a damaged PEM CRL; {RESIGN}",
        "der": "{f} is DER, not PEM; convert it: openssl crl -inform der -in {f} -out {f}.pem",
        "other-kind": f"{{f}} holds no PEM CRL; {RESIGN}",
        "empty": f"{{f}} is empty; {RESIGN}",
        "garbage": f"{{f}} holds no PEM CRL; {RESIGN}",
    },
}

#: (file, commands that must read it, kind of file)
READERS = [
    *[(f, list(COMMANDS), "cert") for f in ("root.crt", "intermediate.crt", "server.crt", "client.crt", "n1.crt",
                                        "chain.crt")],
    ("intermediate.key", SIGNING, "key"),  # the issuing CA signs every leaf and the intermediate's CRL
    ("root.key", ["revoke", "crl"], "key"),  # the root signs the root-level CRL
    ("n1.key", ["renew-reuse"], "key"),
]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pki = tmp_path_factory.mktemp("malformed") / "pki"
    for args in (["init", "--out", str(pki)], ["issue", "client", "--dir", str(pki), "--name", "n1"],
                 ["issue", "client", "--dir", str(pki), "--name", "n2"], ["revoke", "--dir", str(pki), "n2"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
    assert (pki / "crl.pem").exists()
    return pki


@pytest.fixture
def pki(pristine: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "pki"
    shutil.copytree(pristine, copy)
    return copy


def tree(root: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (stat.S_IMODE(p.stat().st_mode), p.read_bytes()) for p in root.iterdir()}


def run(pki: Path, command: str) -> Result:
    return CliRunner().invoke(main, [*COMMANDS[command], "--dir", str(pki)])


def assert_refused(result: Result, message: str) -> None:
    """Exit 1, no traceback, and stderr is exactly the one `Error:` line."""
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == [f"Error: {message}"]
    assert result.stdout == ""


CASES = [(f, spoil, cmd, MESSAGES[kind][spoil].format(f=f)) for f, cmds, kind in READERS for spoil in SPOILS
         for cmd in cmds]


@pytest.mark.parametrize(("file", "spoil", "command", "message"), CASES,
                         ids=[f"{f}-{s}-{c}" for f, s, c, _ in CASES])
def test_a_spoiled_pki_file_is_refused_in_one_line(pki: Path, file: str, spoil: str, command: str,
                                                   message: str) -> None:
    (pki / file).write_bytes(SPOILS[spoil](file, (pki / file).read_bytes(), pki))
    before = tree(pki)
    assert_refused(run(pki, command), message)
    assert tree(pki) == before
    assert [n for n in os.listdir(pki.parent) if n != "pki"] == []  # no stage left behind


@pytest.mark.parametrize("file", ["server.crt", "client.crt", "n1.crt", "chain.crt"])
@pytest.mark.parametrize("command", LIFECYCLE)
def test_a_file_cut_between_two_certificates_is_refused_as_a_hand_edit(pki: Path, file: str, command: str) -> None:
    """A valid PEM that lost its last certificate (the bundled intermediate, or the root of chain.crt)."""
    data = (pki / file).read_bytes()
    (pki / file).write_bytes(data[: data.rfind(b"-----BEGIN")])
    before = tree(pki)
    assert_refused(run(pki, command),
                   f"{file} differs from what pgkongtls.json recorded (edited by hand?); restore the file pgkongtls wrote")
    assert tree(pki) == before


@pytest.mark.parametrize("spoil", list(SPOILS))
def test_a_spoiled_crl_is_reported_by_status_and_replaced_by_crl(pki: Path, spoil: str) -> None:
    (pki / "crl.pem").write_bytes(SPOILS[spoil]("crl.pem", (pki / "crl.pem").read_bytes(), pki))
    before = tree(pki)
    assert_refused(run(pki, "status"), MESSAGES["crl"][spoil].format(f="crl.pem"))
    assert tree(pki) == before
    assert run(pki, "crl").exit_code == 0  # the fix the message names works
    assert run(pki, "status").exit_code == 0


# ------------------------------------------------------------------ the manifest

def _set(path: list[str], value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        *parents, last = path
        for key in parents:
            data = data[key]
        data[last] = value
    return edit


def _drop(path: list[str]) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        *parents, last = path
        for key in parents:
            data = data[key]
        del data[last]
    return edit


RECREATE = "re-create it with pgkongtls init --force"
MANIFEST_EDITS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "no db_user": (_drop(["db_user"]), f"pgkongtls.json: manifest is missing 'db_user'; {RECREATE}"),
    "no certificates": (_drop(["certificates"]), f"pgkongtls.json: manifest is missing 'certificates'; {RECREATE}"),
    "hosts a string": (_set(["hosts"], "db"), f"pgkongtls.json: manifest.hosts has the wrong type; {RECREATE}"),
    "hosts of numbers": (_set(["hosts"], [1]), f"pgkongtls.json: manifest.hosts or key_type is malformed; {RECREATE}"),
    "unknown key_type": (_set(["key_type"], "dsa-1024"),
                         f"pgkongtls.json: manifest.hosts or key_type is malformed; {RECREATE}"),
    "bundle a string": (_set(["bundle"], "yes"), f"pgkongtls.json: manifest.bundle has the wrong type; {RECREATE}"),
    "format 2": (_set(["format"], 2), "pgkongtls.json has format 2; this pgkongtls reads format 1"),
    "format true": (_set(["format"], True), f"pgkongtls.json: manifest.format has the wrong type; {RECREATE}"),
    "unknown mode": (_set(["mode"], "acme"), f"pgkongtls.json: unknown mode or chain; {RECREATE}"),
    "no root entry": (_drop(["certificates", "root"]), f"pgkongtls.json: certificate 'root' is missing; {RECREATE}"),
    "entry a list": (_set(["certificates", "n1"], []), f"pgkongtls.json: certificates.n1 is not an object; {RECREATE}"),
    "entry without sha256": (_drop(["certificates", "n1", "sha256"]),
                             f"pgkongtls.json: certificates.n1 is missing 'sha256'; {RECREATE}"),
    "sans a string": (_set(["certificates", "n1", "sans"], "x"),
                      f"pgkongtls.json: certificates.n1.sans has the wrong type; {RECREATE}"),
    "sans of numbers": (_set(["certificates", "n1", "sans"], [1]),
                        f"pgkongtls.json: certificates.n1 is inconsistent; {RECREATE}"),
    "unknown role": (_set(["certificates", "n1", "role"], "admin"),
                     f"pgkongtls.json: certificates.n1 is inconsistent; {RECREATE}"),
    "name mismatch": (_set(["certificates", "n1", "name"], "n9"),
                      f"pgkongtls.json: certificates.n1 is inconsistent; {RECREATE}"),
    "revoked a number": (_set(["certificates", "n2", "revoked"], 12),
                         f"pgkongtls.json: certificates.n2.revoked has the wrong type; {RECREATE}"),
    "bad not_after": (_set(["certificates", "n1", "not_after"], "soon"),
                      f"pgkongtls.json: certificates.n1.not_after 'soon' is malformed; {RECREATE}"),
    "impossible date": (_set(["certificates", "n1", "not_before"], "2026-02-30T00:00:00Z"),
                        f"pgkongtls.json: certificates.n1.not_before '2026-02-30T00:00:00Z' is malformed; {RECREATE}"),
    "bad revoked date": (_set(["certificates", "n2", "revoked"], "yesterday"),
                         f"pgkongtls.json: certificates.n2.revoked 'yesterday' is malformed; {RECREATE}"),
    "unknown reason": (_set(["certificates", "n2", "revocation_reason"], "bogus"),
                       f"pgkongtls.json: certificates.n2.revocation_reason 'bogus' is malformed; {RECREATE}"),
    "bad crl_next_update": (_set(["crl_next_update"], "2030-01-01"),
                            f"pgkongtls.json: manifest.crl_next_update '2030-01-01' is malformed; {RECREATE}"),
    "serial with a path": (_set(["certificates", "n1", "serial"], "1/../../x"),
                           f"pgkongtls.json: certificates.n1.serial '1/../../x' is malformed; {RECREATE}"),
    "file with a path": (_set(["certificates", "client", "file"], "../../etc/passwd"),
                         "pgkongtls.json: certificates.client.file '../../etc/passwd' is not a plain file name; "
                         "restore the manifest"),
    "crl_file with a path": (_set(["crl_file"], "/etc/shadow"),
                             "pgkongtls.json: crl_file '/etc/shadow' is not a plain file name; restore the manifest"),
}
RAW_MANIFESTS = {
    "empty": (b"", f"pgkongtls.json is not valid JSON; {RECREATE}"),
    "truncated": (None, f"pgkongtls.json is not valid JSON; {RECREATE}"),
    "a list": (b"[]", f"pgkongtls.json is not a JSON object; {RECREATE}"),
    "not UTF-8": (b"\xff\xfe{}", "cannot read {dir}/pgkongtls.json: 'utf-8' codec can't decode byte 0xff in "
                                 "position 0: invalid start byte"),
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("edit", list(MANIFEST_EDITS))
def test_a_manifest_with_a_missing_field_or_wrong_type_is_refused_in_one_line(
    pki: Path, edit: str, command: str,
) -> None:
    change, message = MANIFEST_EDITS[edit]
    data = json.loads((pki / "pgkongtls.json").read_text())
    change(data)
    (pki / "pgkongtls.json").write_text(json.dumps(data, indent=2))
    before = tree(pki)
    assert_refused(run(pki, command), message)
    assert tree(pki) == before


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("kind", list(RAW_MANIFESTS))
def test_a_manifest_that_is_not_json_is_refused_in_one_line(pki: Path, kind: str, command: str) -> None:
    raw, message = RAW_MANIFESTS[kind]
    text = (pki / "pgkongtls.json").read_bytes()
    (pki / "pgkongtls.json").write_bytes(text[: len(text) // 2] if raw is None else raw)
    before = tree(pki)
    assert_refused(run(pki, command), message.format(dir=pki))
    assert tree(pki) == before


def test_the_manifest_accepts_exactly_the_reasons_revoke_writes() -> None:
    from pgkongtls import lifecycle, manifest

    assert manifest.REVOCATION_REASONS == tuple(lifecycle.REASONS)


# ------------------------------------------------------------------ status and verify agree

def _cut_to_the_leaf(name: str, data: bytes, pki: Path) -> bytes:
    return data[: data.rfind(b"-----BEGIN")]


AGREE: dict[str, tuple[str, Spoil]] = {
    "server.crt cut to its leaf": ("server.crt", _cut_to_the_leaf),
    "a key in client.crt": ("client.crt", _other_kind),
    "root.crt as DER": ("root.crt", _der),
    "chain.crt truncated": ("chain.crt", _truncated),
}


@pytest.mark.parametrize("case", list(AGREE))
def test_status_and_verify_agree_on_a_damaged_file(pki: Path, case: str) -> None:
    """One reader (pkiload), one verdict: `verify` names the damage `status` refuses, in the same words."""
    verify = ["verify", str(pki), "--json"]
    assert CliRunner().invoke(main, verify).exit_code == 0  # the pristine PKI has no findings
    file, spoil = AGREE[case]
    (pki / file).write_bytes(spoil(file, (pki / file).read_bytes(), pki))
    status = run(pki, "status")
    assert status.exit_code == 1 and len(status.stderr.splitlines()) == 1
    said = status.stderr.removeprefix("Error: ").strip()
    expected = said.replace(file, str(pki / file))  # verify shows the path it was given
    r = CliRunner().invoke(main, verify)
    assert r.exit_code == 1, r.output
    if r.stdout:  # a file that parses but is not what was recorded: an error finding
        findings = json.loads(r.stdout)
        assert [(f["id"], f["severity"], f"{f['message']}; {f['fix']}") for f in findings
                if f["file"] == str(pki / file)] == [("manifest-mismatch", "error", expected)]
    else:  # a file that does not parse: the same one line
        assert r.stderr == f"Error: {expected}\n"
