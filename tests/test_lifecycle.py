"""Library tests for day 2: issue, renew, revoke with CRLs, crl, status, encrypted CA keys.

Planning is tested through pgkongtls.lifecycle with the clock injected; the
transactional behaviour (one commit, nothing changed on refusal) through
pgkongtls.ops. CRLs are checked with openssl's own -crl_check_all, which is
what PostgreSQL switches on when ssl_crl_file is set.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import verification as v
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from pgkongtls import certs, fsio, lifecycle, ops, pkiload, render
from pgkongtls import pki as pki_mod
from pgkongtls.errors import InputError, StateError
from pgkongtls.lifecycle import LeafRequest
from pgkongtls.manifest import MANIFEST_NAME, dumps, fingerprint, iso, loads, parse_iso
from pgkongtls.pki import InitOptions, SelfSignedOptions

from .test_fsio import snapshot

NOW = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.timezone.utc)
OPENSSL = shutil.which("openssl")


def clients(*names: str, cn: str | None = "{name}") -> list[LeafRequest]:
    return [LeafRequest(name=n, role="client", cn=cn) for n in names]


def cert_of(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificates(path.read_bytes())[0]


def manifest(d: Path) -> lifecycle.Manifest:
    return fsio.load_manifest(d)


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    """An intermediate-chain PKI minted at NOW."""
    d = tmp_path / "pki"
    ops.init(d, InitOptions(db_user="kong"), now=NOW)
    return d


@pytest.fixture
def root_pki(tmp_path: Path) -> Path:
    d = tmp_path / "direct"
    ops.init(d, InitOptions(chain="root"), now=NOW)
    return d


def client_verifies(d: Path, name: str, at: dt.datetime) -> None:
    """Strict RFC 5280 client-chain check of NAME.crt against the PKI's chain.crt."""
    chain = x509.load_pem_x509_certificates((d / "chain.crt").read_bytes())
    leaf, *bundled = x509.load_pem_x509_certificates((d / f"{name}.crt").read_bytes())
    ee = v.ExtensionPolicy.webpki_defaults_ee().may_be_present(x509.SubjectAlternativeName, v.Criticality.AGNOSTIC, None)
    (v.PolicyBuilder().store(v.Store([chain[-1]])).time(at)
     .extension_policies(ca_policy=v.ExtensionPolicy.webpki_defaults_ca(), ee_policy=ee)
     .build_client_verifier().verify(leaf, chain[:-1]))


def openssl_verify(d: Path, name: str, *, crl: Path | None, at: dt.datetime) -> subprocess.CompletedProcess[str]:
    """openssl verify with -crl_check_all (PostgreSQL's flags when a CRL is loaded)."""
    assert OPENSSL
    args = [OPENSSL, "verify", "-x509_strict", "-purpose", "sslclient", "-attime", str(int(at.timestamp())),
            "-CAfile", str(d / "chain.crt")]
    if crl is not None:
        args += ["-crl_check_all", "-CRLfile", str(crl)]
    return subprocess.run([*args, str(d / f"{name}.crt")], capture_output=True, text=True)


# ---------------------------------------------------------------- names and CNs

@pytest.mark.parametrize("name", ["kong-node-1", "a", "Replica_2.east", "x" * 63, "0"])
def test_plain_names_are_accepted(name: str) -> None:
    assert lifecycle.validate_name(name) == name


@pytest.mark.parametrize("name", ["", "../evil", "a/b", ".hidden", "-x", "x" * 64, "kong node", "né", "a\nb", "a@1"])
def test_names_that_are_not_plain_file_stems_are_refused(name: str) -> None:
    with pytest.raises(InputError) as e:
        lifecycle.validate_name(name)
    assert str(e.value) == (f"invalid --name {name!r}: use 1 to 63 letters, digits, '.', '_' or '-', "
                            "starting with a letter or digit")


@pytest.mark.parametrize("name", sorted(lifecycle.RESERVED_NAMES))
def test_reserved_names_are_refused(name: str) -> None:
    with pytest.raises(InputError, match=f"^--name '{name}' is reserved for pgkongtls' own files; choose another --name$"):
        lifecycle.validate_name(name)


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=0, max_size=80))
def test_no_accepted_name_reaches_outside_the_directory(name: str) -> None:
    base = Path("/srv/pki")
    try:
        lifecycle.validate_name(name)
    except InputError:
        return
    for suffix in (".crt", ".key", ".crt.1f.bak"):
        target = Path(str(base / (name + suffix)))
        assert target.parent == base and ".." not in target.parts and target.name == name + suffix


def test_client_cn_defaults_to_the_db_user_and_fills_the_template() -> None:
    assert lifecycle.client_cn(None, "kong-node-7", "kong") == "kong"
    assert lifecycle.client_cn("{name}", "kong-node-7", "kong") == "kong-node-7"
    assert lifecycle.client_cn("edge-{name}", "7", "kong") == "edge-7"


@pytest.mark.parametrize(("cn", "message"), [
    ("/^kong.*$", "invalid --cn '/^kong.*$': pg_ident.conf would read a leading '/' as a regular expression"),
    ("kong node", "invalid --cn 'kong node': spaces, quotes, commas, # and control characters are not allowed"),
    ("kong\nhost all all all trust",
     "invalid --cn 'kong\\nhost all all all trust': spaces, quotes, commas, # and control characters are not allowed"),
    ("a,b", "invalid --cn 'a,b': spaces, quotes, commas, # and control characters are not allowed"),
    ("x" * 64, f"invalid --cn '{'x' * 64}': must be 1 to 63 bytes (PostgreSQL's NAMEDATALEN)"),
])
def test_client_cns_that_pg_ident_or_pg_hba_would_misread_are_refused(cn: str, message: str) -> None:
    with pytest.raises(InputError) as e:
        lifecycle.client_cn(cn, "n", "kong")
    assert str(e.value) == message


# ---------------------------------------------------------------- issue

def test_issue_clients_chain_to_the_intermediate_with_their_own_cn(pki: Path) -> None:
    change = ops.issue(pki, clients("kong-node-1", "kong-node-2"), now=NOW)
    m = manifest(pki)
    assert [e.name for e in change.done] == ["kong-node-1", "kong-node-2"]
    for name in ("kong-node-1", "kong-node-2"):
        e = m.certificates[name]
        assert (e.role, e.issuer, e.cn, e.file, e.key_file) == ("client", "intermediate", name, f"{name}.crt", f"{name}.key")
        leaf = cert_of(pki / e.file)
        assert fingerprint(leaf) == e.sha256
        assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == name
        assert leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.CLIENT_AUTH])
        assert len(x509.load_pem_x509_certificates((pki / e.file).read_bytes())) == 2  # bundled intermediate
        assert stat.S_IMODE((pki / e.key_file).stat().st_mode) == 0o600
        client_verifies(pki, name, NOW + dt.timedelta(minutes=1))


def test_issue_without_cn_uses_the_db_user_so_no_map_is_needed(pki: Path) -> None:
    ops.issue(pki, clients("kong-node-1", cn=None), now=NOW)
    m = manifest(pki)
    assert m.certificates["kong-node-1"].cn == "kong"
    assert not render.needs_map(m, "kong")


def test_issue_on_a_root_chain_signs_with_the_root(root_pki: Path) -> None:
    ops.issue(root_pki, clients("kong-node-1"), now=NOW)
    e = manifest(root_pki).certificates["kong-node-1"]
    assert e.issuer == "root"
    assert len(x509.load_pem_x509_certificates((root_pki / e.file).read_bytes())) == 1
    client_verifies(root_pki, "kong-node-1", NOW + dt.timedelta(minutes=1))


def test_issue_server_for_a_replica_has_its_sans_and_verifies_by_host(pki: Path) -> None:
    ops.issue(pki, [LeafRequest(name="replica-1", role="server", cn=None, hosts=("replica1.internal", "10.0.0.6"))],
              now=NOW)
    e = manifest(pki).certificates["replica-1"]
    assert (e.role, e.cn, e.sans) == ("server", "replica1.internal", ("replica1.internal", "10.0.0.6"))
    chain = x509.load_pem_x509_certificates((pki / "chain.crt").read_bytes())
    leaf = cert_of(pki / "replica-1.crt")
    for host in (v.DNSName("replica1.internal"), v.IPAddress(__import__("ipaddress").ip_address("10.0.0.6"))):
        v.PolicyBuilder().store(v.Store([chain[-1]])).time(NOW + dt.timedelta(minutes=1)) \
            .build_server_verifier(host).verify(leaf, chain[:-1])
    with pytest.raises(v.VerificationError):
        v.PolicyBuilder().store(v.Store([chain[-1]])).time(NOW + dt.timedelta(minutes=1)) \
            .build_server_verifier(v.DNSName("db.other")).verify(leaf, chain[:-1])
    rendered = render.render_postgres(manifest(pki), render.Files(pg_dir="/etc/pg", kong_dir="/k", server="replica-1"))
    assert "ssl_cert_file = '/etc/pg/replica-1.crt'" in rendered


def test_issue_server_needs_a_host(pki: Path) -> None:
    with pytest.raises(InputError, match="^issue server needs at least one --db-host$"):
        ops.issue(pki, [LeafRequest(name="replica-1", role="server", cn=None)], now=NOW)


def test_issue_key_type_override_and_default(pki: Path) -> None:
    ops.issue(pki, clients("ec"), now=NOW)
    ops.issue(pki, clients("rsa"), key_type="rsa-2048", now=NOW)
    assert cert_of(pki / "ec.crt").public_key().key_size == 256
    assert cert_of(pki / "rsa.crt").public_key().key_size == 2048


def test_a_leaf_may_not_outlive_its_ca(pki: Path) -> None:
    with pytest.raises(InputError) as e:
        ops.issue(pki, clients("n1"), days=2000, now=NOW)
    assert str(e.value) == "--days 2000 outlives the intermediate CA (it expires 2030-02-28); use --days 1825 or less"


def test_issuing_an_existing_name_needs_force_and_changes_nothing(pki: Path) -> None:
    ops.issue(pki, clients("kong-node-1"), now=NOW)
    before = snapshot(pki)
    with pytest.raises(StateError) as e:
        ops.issue(pki, clients("kong-node-2", "kong-node-1"), now=NOW)
    assert str(e.value) == "kong-node-1 already exists in this PKI; pass --force to replace it, or renew it"
    assert snapshot(pki) == before


def test_issue_force_replaces_and_keeps_the_old_files_as_bak(pki: Path) -> None:
    ops.issue(pki, clients("kong-node-1"), now=NOW)
    old = manifest(pki).certificates["kong-node-1"]
    old_crt, old_key = (pki / "kong-node-1.crt").read_bytes(), (pki / "kong-node-1.key").read_bytes()
    ops.issue(pki, clients("kong-node-1"), force=True, now=NOW)
    assert manifest(pki).certificates["kong-node-1"].serial != old.serial
    assert (pki / f"kong-node-1.crt.{old.serial}.bak").read_bytes() == old_crt
    assert (pki / f"kong-node-1.key.{old.serial}.bak").read_bytes() == old_key
    assert stat.S_IMODE((pki / f"kong-node-1.key.{old.serial}.bak").stat().st_mode) == 0o600


def test_issue_refuses_a_name_of_another_role(pki: Path) -> None:
    with pytest.raises(InputError, match="^server is a server certificate; choose another --name$"):
        ops.issue(pki, clients("server"), force=True, now=NOW)


def test_issue_refuses_a_name_given_twice(pki: Path) -> None:
    with pytest.raises(InputError, match="^--name n1 is given twice$"):
        ops.issue(pki, clients("n1", "n2", "n1"), now=NOW)


def test_issue_refuses_a_stray_file_of_that_name(pki: Path) -> None:
    (pki / "n1.key").write_text("someone else's key")
    before = snapshot(pki)
    for force in (False, True):  # not pgkongtls's file: --force does not replace it either
        with pytest.raises(StateError) as e:
            ops.issue(pki, clients("n1"), now=NOW, force=force)
        assert str(e.value) == (f"{pki} holds files pgkongtls did not write (n1.key); move them out of the PKI "
                                "directory and run the command again")
    assert snapshot(pki) == before


def test_issue_on_a_self_signed_pki_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "test-pki"
    ops.self_signed(d, SelfSignedOptions(), now=NOW)
    before = snapshot(d)
    with pytest.raises(StateError) as e:
        ops.issue(d, clients("n1"), now=NOW)
    assert str(e.value) == "this is a self-signed test PKI: it has no CA to sign with; create one with pgkongtls init"
    assert snapshot(d) == before


def test_a_thousand_clients_are_one_commit_and_one_manifest(pki: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    commits: list[int] = []
    real = fsio.Transaction.commit

    def counting(self: fsio.Transaction, files: dict[str, bytes], **kw: object) -> None:
        commits.append(len(files))
        real(self, files, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(fsio.Transaction, "commit", counting)
    names = [f"kong-node-{i}" for i in range(1, 1001)]
    change = ops.issue(pki, clients(*names), now=NOW)
    assert commits == [2001]  # 1,000 certificates + 1,000 keys + the manifest, in one transaction
    m = manifest(pki)
    assert {e.name for e in change.done} == set(names) <= set(m.certificates)
    assert len({e.serial for e in change.done}) == 1000
    assert ("/^kong-node-[0-9]+$", "kong") in render.ident_entries(m)
    assert not any(cn.startswith("kong-node-") for cn, _ in render.ident_entries(m))  # one regex, not 1,000 lines


# ---------------------------------------------------------------- files edited by hand

EDITED = "{} differs from what pgkongtls.json recorded (edited by hand?); restore the file pgkongtls wrote"


def test_a_replaced_certificate_is_named_and_refused(pki: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    ops.init(other, InitOptions(), now=NOW)
    shutil.copy(other / "server.crt", pki / "server.crt")
    before = snapshot(pki)
    with pytest.raises(StateError) as e:
        ops.issue(pki, clients("n1"), now=NOW)
    assert str(e.value) == EDITED.format("server.crt")
    assert snapshot(pki) == before


@pytest.mark.parametrize(("file", "content", "message"), [
    ("client.crt", b"", "client.crt is empty; restore it or re-create it"),
    ("root.crt", None, "root.crt is missing; restore it or re-create the PKI with pgkongtls init --force"),
    ("chain.crt", "root-only", EDITED.format("chain.crt")),
    ("server.crt", "leaf-only", EDITED.format("server.crt")),
])
def test_edited_missing_or_truncated_files_are_refused(pki: Path, file: str, content: object, message: str) -> None:
    path = pki / file
    if content is None:
        path.unlink()
    elif content == "root-only":
        path.write_bytes((pki / "root.crt").read_bytes())
    elif content == "leaf-only":  # the bundled intermediate swapped for a foreign certificate
        leaf = x509.load_pem_x509_certificates(path.read_bytes())[0]
        foreign = cert_of(pki / "client.crt")
        path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (leaf, foreign)))
    else:
        path.write_bytes(content)  # type: ignore[arg-type]
    with pytest.raises(StateError) as e:
        ops.revoke(pki, ["client"], now=NOW)
    assert str(e.value) == message


def test_a_manifest_file_name_with_a_path_is_refused(pki: Path) -> None:
    data = json.loads((pki / MANIFEST_NAME).read_text())
    data["certificates"]["client"]["file"] = "../client.crt"
    (pki / MANIFEST_NAME).write_text(json.dumps(data))
    with pytest.raises(StateError) as e:
        ops.renew(pki, ["client"], now=NOW)
    assert str(e.value) == ("pgkongtls.json: certificates.client.file '../client.crt' is not a plain file name; "
                            "restore the manifest")


def test_a_ca_key_that_does_not_match_is_refused(pki: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    ops.init(other, InitOptions(), now=NOW)
    shutil.copy(other / "intermediate.key", pki / "intermediate.key")
    with pytest.raises(StateError, match="^intermediate.key does not belong to intermediate.crt; restore the matching key$"):
        ops.issue(pki, clients("n1"), now=NOW)


def test_issue_and_renew_need_only_the_issuing_key_so_the_root_key_can_stay_offline(pki: Path) -> None:
    (pki / "root.key").unlink()
    ops.issue(pki, clients("n1"), now=NOW)
    ops.renew(pki, ["n1"], now=NOW)
    with pytest.raises(StateError, match="^root.key is missing; restore it"):
        ops.revoke(pki, ["n1"], now=NOW)


# ---------------------------------------------------------------- an injected reader

def dict_reader(d: Path) -> tuple[dict[str, bytes], lifecycle.Reader]:
    """The PKI's files in a dict, read through `Reader` as ops reads the disk."""
    files = {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()}
    return files, files.get


def test_the_planners_run_on_an_injected_reader_and_clock(pki: Path) -> None:
    m = manifest(pki)
    files, read = dict_reader(pki)
    shutil.rmtree(pki)  # the planners must not need the directory: everything comes through `read`
    found = lifecycle.verify_files(m, read)
    ca = lifecycle.load_ca(m, found, read, passphrase=None, sign_with=lifecycle.CA_LEVELS)
    later = NOW + dt.timedelta(days=200)
    renewed = lifecycle.plan_renew(m, ca, found, ["server"], read, now=later)
    serial = m.certificates["server"].serial
    assert renewed.replaces == {"server.crt", "server.key"}
    assert renewed.files[f"server.crt.{serial}.bak"] == files["server.crt"]
    assert x509.load_pem_x509_certificates(renewed.files["server.crt"])[0].not_valid_before_utc == later - certs.BACKDATE
    revoked = lifecycle.plan_revoke(m, ca, ["client"], read, now=later)
    assert revoked.manifest.crl_next_update == iso(later + dt.timedelta(days=lifecycle.DEFAULT_CRL_DAYS))
    assert revoked.manifest.certificates["client"].revoked == iso(later)


def test_verify_files_on_an_injected_reader_names_each_damage(pki: Path) -> None:
    m = manifest(pki)
    files, _ = dict_reader(pki)
    server = files["server.crt"]
    damages: dict[str, tuple[bytes | None, type[pkiload.FileDamage], str]] = {
        "cut to the leaf": (server[: server.rfind(b"-----BEGIN")], pkiload.NotAsRecorded,
                            "server.crt differs from what pgkongtls.json recorded (edited by hand?); "
                            "restore the file pgkongtls wrote"),
        "missing": (None, pkiload.FileMissing,
                    "server.crt is missing; restore it or re-create the PKI with pgkongtls init --force"),
        "a key": (files["server.key"], pkiload.WrongKind,
                  "server.crt holds a private key where a certificate should be; point it at the .crt file"),
        "cut mid-block": (server[:300], pkiload.TruncatedPem,
                          "server.crt has a truncated PEM certificate (BEGIN and END do not pair up); copy it again"),
    }
    for what, (data, kind, message) in damages.items():
        spoiled = {**files, "server.crt": data}
        with pytest.raises(kind) as e:
            lifecycle.verify_files(m, spoiled.get)
        assert str(e.value) == message, what


# ---------------------------------------------------------------- renew

def test_renew_keeps_subject_sans_and_file_names_with_a_new_key_and_fresh_validity(pki: Path) -> None:
    old = manifest(pki).certificates["server"]
    old_cert = cert_of(pki / "server.crt")
    old_crt, old_key = (pki / "server.crt").read_bytes(), (pki / "server.key").read_bytes()
    later = NOW + dt.timedelta(days=300)
    change = ops.renew(pki, ["server"], now=later)
    assert change is not None and [e.name for e in change.done] == ["server"]
    new = manifest(pki).certificates["server"]
    new_cert = cert_of(pki / "server.crt")
    assert (new.file, new.key_file, new.cn, new.sans) == (old.file, old.key_file, old.cn, old.sans)
    assert new_cert.subject == old_cert.subject
    assert new_cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value == \
        old_cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert new_cert.public_key() != old_cert.public_key()
    assert new_cert.not_valid_after_utc - later == dt.timedelta(days=365)
    assert (pki / f"server.crt.{old.serial}.bak").read_bytes() == old_crt
    assert (pki / f"server.key.{old.serial}.bak").read_bytes() == old_key
    assert stat.S_IMODE((pki / f"server.key.{old.serial}.bak").stat().st_mode) == 0o600
    assert stat.S_IMODE((pki / "server.key").stat().st_mode) == 0o600


def test_renew_does_not_change_any_rendered_config(pki: Path) -> None:
    files = render.Files(pg_dir="/etc/postgresql/ssl", kong_dir="/etc/kong/ssl")
    before = render.render_all(manifest(pki), files)
    ops.renew(pki, ["server", "client"], now=NOW + dt.timedelta(days=1))
    assert render.render_all(manifest(pki), files) == before


def test_renew_reuse_key_keeps_the_public_key(pki: Path) -> None:
    old = cert_of(pki / "client.crt")
    ops.renew(pki, ["client"], reuse_key=True, now=NOW + dt.timedelta(days=1))
    new = cert_of(pki / "client.crt")
    assert new.public_key() == old.public_key() and new.serial_number != old.serial_number


def test_renew_keeps_the_key_algorithm_of_the_certificate(pki: Path) -> None:
    ops.issue(pki, clients("rsa"), key_type="rsa-2048", now=NOW)
    ops.renew(pki, ["rsa"], now=NOW)
    assert cert_of(pki / "rsa.crt").public_key().key_size == 2048


def test_renew_is_clamped_to_the_ca_by_default(pki: Path) -> None:
    late = NOW + dt.timedelta(days=1700)  # the intermediate has 125 days left
    ops.renew(pki, ["server"], now=late)
    assert cert_of(pki / "server.crt").not_valid_after_utc <= cert_of(pki / "intermediate.crt").not_valid_after_utc


def test_renew_expiring_within_picks_leaves_in_service_only(pki: Path) -> None:
    ops.issue(pki, clients("fresh"), now=NOW + dt.timedelta(days=200))
    ops.issue(pki, clients("gone"), now=NOW)
    ops.revoke(pki, ["gone"], now=NOW)
    at = NOW + dt.timedelta(days=350)  # server, client and gone expire in 15 days; fresh in 215
    assert lifecycle.select_expiring(manifest(pki), dt.timedelta(days=30), at) == ["client", "server"]
    change = ops.renew(pki, [], expiring_within=dt.timedelta(days=30), now=at)
    assert change is not None and sorted(e.name for e in change.done) == ["client", "server"]
    assert ops.renew(pki, [], expiring_within=dt.timedelta(days=30), now=at) is None


def test_renew_needs_names_or_a_window(pki: Path) -> None:
    for names, window in (([], None), (["server"], dt.timedelta(days=1))):
        with pytest.raises(InputError, match=r"^name the certificates to renew, or pass --expiring-within 30d \(not both\)$"):
            ops.renew(pki, names, expiring_within=window, now=NOW)


@pytest.mark.parametrize(("name", "message"), [
    ("nope", "no certificate named 'nope' in this PKI; pgkongtls status lists them"),
    ("intermediate", "intermediate is a CA; renew it on its own, without --reuse-key (it always keeps its key): "
                     "pgkongtls renew --dir PKI intermediate"),
])
def test_renew_refusals_change_nothing(pki: Path, name: str, message: str) -> None:
    before = snapshot(pki)
    with pytest.raises((InputError, StateError)) as e:
        ops.renew(pki, ["server", name], now=NOW)
    assert str(e.value) == message
    assert snapshot(pki) == before


def test_renewing_a_revoked_certificate_keeps_it_on_the_crl(pki: Path) -> None:
    ops.issue(pki, clients("kong-node-2"), now=NOW)
    ops.revoke(pki, ["kong-node-2"], reason="keyCompromise", now=NOW)
    old = manifest(pki).certificates["kong-node-2"]
    with pytest.raises(InputError, match="^kong-node-2 was revoked for keyCompromise; renew it without --reuse-key$"):
        ops.renew(pki, ["kong-node-2"], reuse_key=True, now=NOW)
    ops.renew(pki, ["kong-node-2"], now=NOW)
    m = manifest(pki)
    archived = m.certificates[f"kong-node-2@{old.serial}"]
    assert (archived.revoked, archived.file) == (old.revoked, f"kong-node-2.crt.{old.serial}.bak")
    assert m.certificates["kong-node-2"].revoked is None
    ops.refresh_crl(pki, now=NOW)
    crls = lifecycle.load_crls(m := manifest(pki), lifecycle.verify_files(m, fsio.reader(pki)),
                               (pki / "crl.pem").read_bytes())
    revoked = {r.serial_number for c in crls for r in c}
    assert revoked == {int(old.serial, 16)}
    assert render.client_cns(m) == ["kong", "kong-node-2"]
    kept = f"^kong-node-2@{old.serial} is a revoked certificate kept for the CRL; renew kong-node-2 instead$"
    with pytest.raises(InputError, match=kept):
        ops.renew(pki, [f"kong-node-2@{old.serial}"], now=NOW)


# ---------------------------------------------------------------- revoke and CRLs

@pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")
def test_revoke_writes_a_crl_for_every_level_and_openssl_enforces_it(pki: Path, tmp_path: Path) -> None:
    ops.issue(pki, clients("kong-node-1", "kong-node-2"), now=NOW)
    ops.revoke(pki, ["kong-node-2"], reason="keyCompromise", now=NOW)
    m = manifest(pki)
    assert (m.crl_file, m.crl_next_update) == ("crl.pem", "2025-05-30T12:00:00Z")  # NOW + 90 days
    at = NOW + dt.timedelta(hours=1)
    crl = pki / "crl.pem"
    ok = openssl_verify(pki, "kong-node-1", crl=crl, at=at)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = openssl_verify(pki, "kong-node-2", crl=crl, at=at)
    assert bad.returncode != 0 and "certificate revoked" in bad.stdout + bad.stderr
    # CRL_CHECK_ALL: the intermediate's CRL alone is not enough, the root level needs one too.
    blocks = crl.read_bytes().split(b"-----END X509 CRL-----\n")
    only_intermediate = tmp_path / "only-intermediate.pem"
    only_intermediate.write_bytes(blocks[0] + b"-----END X509 CRL-----\n")
    half = openssl_verify(pki, "kong-node-1", crl=only_intermediate, at=at)
    assert half.returncode != 0 and "unable to get certificate CRL" in half.stdout + half.stderr
    # After nextUpdate every client is refused: why the default is long and status warns.
    late = openssl_verify(pki, "kong-node-1", crl=crl, at=NOW + dt.timedelta(days=91))
    assert late.returncode != 0 and "CRL has expired" in late.stdout + late.stderr


def test_crls_are_signed_by_each_ca_and_list_reason_and_date(pki: Path) -> None:
    ops.issue(pki, clients("kong-node-2"), now=NOW)
    ops.revoke(pki, ["kong-node-2"], reason="keyCompromise", now=NOW + dt.timedelta(hours=2))
    m = manifest(pki)
    crls = lifecycle.load_crls(m, lifecycle.verify_files(m, fsio.reader(pki)), (pki / "crl.pem").read_bytes())
    by_issuer = {c.issuer: c for c in crls}
    inter, root = cert_of(pki / "intermediate.crt"), cert_of(pki / "root.crt")
    assert set(by_issuer) == {inter.subject, root.subject}
    assert by_issuer[inter.subject].is_signature_valid(inter.public_key())
    assert by_issuer[root.subject].is_signature_valid(root.public_key())
    assert len(by_issuer[root.subject]) == 0
    (entry,) = list(by_issuer[inter.subject])
    assert entry.serial_number == int(m.certificates["kong-node-2"].serial, 16)
    assert entry.revocation_date_utc == NOW + dt.timedelta(hours=2)
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.key_compromise
    for c in crls:
        assert c.last_update_utc <= NOW + dt.timedelta(hours=2) - dt.timedelta(minutes=5)
        aki = c.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
        issuer = inter if c.issuer == inter.subject else root
        assert aki == issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


def test_a_root_chain_pki_has_one_crl(root_pki: Path) -> None:
    ops.revoke(root_pki, ["client"], now=NOW)
    m = manifest(root_pki)
    crls = lifecycle.load_crls(m, lifecycle.verify_files(m, fsio.reader(root_pki)), (root_pki / "crl.pem").read_bytes())
    assert [c.issuer for c in crls] == [cert_of(root_pki / "root.crt").subject]
    assert [r.serial_number for r in crls[0]] == [int(m.certificates["client"].serial, 16)]


def test_render_postgres_adds_ssl_crl_file_once_a_crl_exists(pki: Path) -> None:
    files = render.Files(pg_dir="/etc/postgresql/ssl", kong_dir="/etc/kong/ssl")
    assert "ssl_crl_file" not in render.render_postgres(manifest(pki), files)
    ops.refresh_crl(pki, now=NOW)
    assert "ssl_crl_file = '/etc/postgresql/ssl/crl.pem'\n" in render.render_postgres(manifest(pki), files)


def test_a_revoked_client_leaves_the_ident_map(pki: Path) -> None:
    ops.issue(pki, clients("kong-node-1", "kong-node-2", "edge"), now=NOW)
    before = render.ident_entries(manifest(pki))
    assert {("edge", "kong"), ("kong-node-1", "kong"), ("kong-node-2", "kong")} <= set(before)
    ops.revoke(pki, ["edge"], now=NOW)
    after = render.ident_entries(manifest(pki))
    assert ("/^kong-node-[0-9]+$", "kong") in after and not any(s in ("edge", "kong-node-1") for s, _ in after)


@pytest.mark.parametrize(("names", "message"), [
    (["nope"], "no certificate named 'nope' in this PKI; pgkongtls status lists them"),
    (["root"], "root is a CA; revoke works on server and client certificates; to replace a CA re-create the PKI "
               "with pgkongtls init --force"),
    (["client", "client-again"], "no certificate named 'client-again' in this PKI; pgkongtls status lists them"),
])
def test_revoke_refusals_change_nothing(pki: Path, names: list[str], message: str) -> None:
    before = snapshot(pki)
    with pytest.raises((InputError, StateError)) as e:
        ops.revoke(pki, names, now=NOW)
    assert str(e.value) == message
    assert snapshot(pki) == before


def test_revoking_twice_is_refused_and_changes_nothing(pki: Path) -> None:
    ops.revoke(pki, ["client"], now=NOW)
    before = snapshot(pki)
    with pytest.raises(StateError) as e:
        ops.revoke(pki, ["client"], now=NOW + dt.timedelta(days=1))
    assert str(e.value) == "client is already revoked (since 2025-03-01); pgkongtls crl re-signs the CRL"
    assert snapshot(pki) == before


def test_revoke_on_a_self_signed_pki_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "t"
    ops.self_signed(d, SelfSignedOptions(), now=NOW)
    with pytest.raises(StateError, match="^this is a self-signed test PKI: it has no CA to sign with"):
        ops.revoke(d, ["client"], now=NOW)


def test_crl_refresh_moves_next_update_keeps_revocations_and_counts_up(pki: Path) -> None:
    ops.revoke(pki, ["client"], now=NOW)
    first = (pki / "crl.pem").read_bytes()
    ops.refresh_crl(pki, crl_days=30, now=NOW)  # same second: the CRL number must still grow
    m = manifest(pki)
    assert m.crl_next_update == "2025-03-31T12:00:00Z"
    assert lifecycle.previous_crl_number((pki / "crl.pem").read_bytes()) == lifecycle.previous_crl_number(first) + 1
    crls = lifecycle.load_crls(m, lifecycle.verify_files(m, fsio.reader(pki)), (pki / "crl.pem").read_bytes())
    assert {r.serial_number for c in crls for r in c} == {int(m.certificates["client"].serial, 16)}


def test_crl_days_bounds(pki: Path) -> None:
    with pytest.raises(InputError, match="^--crl-days must be between 1 and 3650 days, got 0$"):
        ops.refresh_crl(pki, crl_days=0, now=NOW)


def test_crl_rewrites_a_crl_file_that_was_edited(pki: Path) -> None:
    ops.refresh_crl(pki, now=NOW)
    (pki / "crl.pem").write_text("garbage")
    with pytest.raises(StateError, match="^crl.pem holds no PEM CRL; restore it, or re-sign it with pgkongtls crl$"):
        ops.status(pki, now=NOW)
    ops.refresh_crl(pki, now=NOW)
    assert ops.status(pki, now=NOW).crl is not None


def test_an_injected_failure_during_revoke_leaves_everything_as_it_was(pki: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = snapshot(pki)
    monkeypatch.setenv("PGKONGTLS_TEST_FAIL_AT", "staged")
    with pytest.raises(fsio.InjectedFailure):
        ops.revoke(pki, ["client"], now=NOW)
    assert snapshot(pki) == before


# ---------------------------------------------------------------- status

def test_status_of_a_fresh_pki_is_all_valid(pki: Path) -> None:
    s = ops.status(pki, now=NOW + dt.timedelta(days=1))
    assert [(c.name, c.state, c.days_left) for c in s.certificates] == [
        ("root", "valid", 3649), ("intermediate", "valid", 1824), ("server", "valid", 364), ("client", "valid", 364)]
    assert (s.notices, s.crl, s.expired) == ((), None, [])


def test_status_warns_about_an_expiring_certificate(pki: Path) -> None:
    s = ops.status(pki, now=NOW + dt.timedelta(days=350), warn_days=30)
    assert {c.name: c.state for c in s.certificates}["server"] == "expiring"
    assert [(n.message, n.remedy) for n in s.notices] == [
        ("server expires in 15 days (2026-03-01)", lifecycle.Remedy.RENEW),
        ("client expires in 15 days (2026-03-01)", lifecycle.Remedy.RENEW),
    ]
    assert s.expired == []
    assert ops.status(pki, now=NOW + dt.timedelta(days=350), warn_days=10).notices == ()


def test_status_lists_what_expired_in_service_and_not_what_was_revoked(pki: Path) -> None:
    """The CLI exits 3 on `expired` (tests/test_cli_lifecycle.py); a revoked certificate's expiry is no outage."""
    ops.issue(pki, clients("kong-node-1"), now=NOW + dt.timedelta(days=100))
    ops.revoke(pki, ["client"], now=NOW)
    s = ops.status(pki, now=NOW + dt.timedelta(days=366))
    states = {c.name: c.state for c in s.certificates}
    assert (states["server"], states["client"], states["kong-node-1"]) == ("expired", "revoked", "valid")
    assert s.expired == ["server", "crl.pem"]  # the CRL was signed at NOW for 90 days
    assert [n.remedy for n in s.notices if n.severity == "expired"] == [lifecycle.Remedy.RENEW,
                                                                         lifecycle.Remedy.RESIGN_CRL]


def test_status_warns_before_the_crl_next_update(pki: Path) -> None:
    ops.refresh_crl(pki, crl_days=40, now=NOW)
    s = ops.status(pki, now=NOW + dt.timedelta(days=20))
    assert s.crl is not None and (s.crl.state, s.crl.days_left) == ("expiring", 20)
    assert (s.notices[-1].message, s.notices[-1].remedy) == (
        "crl.pem nextUpdate is in 20 days (2025-04-10): then PostgreSQL refuses every client certificate",
        lifecycle.Remedy.RESIGN_CRL)
    assert s.expired == []


def test_the_default_crl_is_quiet_for_two_months() -> None:
    assert lifecycle.DEFAULT_CRL_DAYS - lifecycle.DEFAULT_WARN_DAYS >= 60


def test_status_reads_without_the_lock_so_monitoring_never_waits(pki: Path) -> None:
    fd = os.open(pki.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a long `issue` holds the PKI's lock
        code = f"from pgkongtls import ops; print(ops.status({str(pki)!r}).certificates[0].name)"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert (out.returncode, out.stdout) == (0, "root\n"), out.stderr
    finally:
        os.close(fd)


def test_a_ca_row_names_renewing_the_ca_as_the_remedy(pki: Path) -> None:
    s = ops.status(pki, now=NOW + dt.timedelta(days=1820), warn_days=30)
    assert [(n.name, n.remedy) for n in s.notices if n.name == "intermediate"] == [("intermediate", lifecycle.Remedy.RENEW_CA)]


def test_status_refuses_a_hand_edited_file(pki: Path) -> None:
    (pki / "client.crt").write_bytes((pki / "server.crt").read_bytes())
    with pytest.raises(StateError, match="^client.crt differs from what pgkongtls.json recorded"):
        ops.status(pki, now=NOW)


# ---------------------------------------------------------------- encrypted CA keys

@pytest.fixture
def locked(tmp_path: Path) -> tuple[Path, bytes]:
    d = tmp_path / "locked"
    ops.init(d, InitOptions(), now=NOW, ca_passphrase=b"correct horse")
    return d, b"correct horse"


def test_ca_keys_are_encrypted_and_leaf_keys_stay_plain(locked: tuple[Path, bytes]) -> None:
    d, phrase = locked
    for name in ("root.key", "intermediate.key"):
        data = (d / name).read_bytes()
        assert data.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        with pytest.raises(TypeError):
            serialization.load_pem_private_key(data, None)
        serialization.load_pem_private_key(data, phrase)
    for name in ("server.key", "client.key"):
        serialization.load_pem_private_key((d / name).read_bytes(), None)


def test_signing_commands_work_with_the_passphrase_and_keep_the_ca_keys_encrypted(
    locked: tuple[Path, bytes],
) -> None:
    """issue, renew, revoke and crl each sign with the encrypted CA keys and leave them as they were."""
    d, phrase = locked
    ca_keys = {n: (d / n).read_bytes() for n in ("root.key", "intermediate.key")}
    ops.issue(d, clients("n1"), ca_passphrase=phrase, now=NOW)
    issued = manifest(d).certificates["n1"].serial
    client_verifies(d, "n1", NOW)
    ops.renew(d, ["n1"], ca_passphrase=phrase, now=NOW)
    renewed = manifest(d).certificates["n1"].serial
    assert renewed != issued
    client_verifies(d, "n1", NOW)
    ops.revoke(d, ["n1"], ca_passphrase=phrase, now=NOW)
    assert manifest(d).certificates["n1"].revoked is not None
    crl = d / "crl.pem"
    first_crl = crl.read_bytes()
    assert openssl_verify(d, "n1", crl=crl, at=NOW).returncode != 0  # revoked, as PostgreSQL will see it
    assert openssl_verify(d, "client", crl=crl, at=NOW).returncode == 0  # the others still pass the CRL check
    ops.refresh_crl(d, ca_passphrase=phrase, now=NOW + dt.timedelta(days=1))
    assert crl.read_bytes() != first_crl
    assert openssl_verify(d, "n1", crl=crl, at=NOW + dt.timedelta(days=1)).returncode != 0
    assert {n: (d / n).read_bytes() for n in ca_keys} == ca_keys  # still encrypted, never rewritten
    key = serialization.load_pem_private_key((d / "n1.key").read_bytes(), None)
    assert key.public_key() == cert_of(d / "n1.crt").public_key()


@pytest.mark.parametrize(("phrase", "message"), [
    (b"wrong", "wrong CA passphrase for root.key; check --ca-passphrase-file"),
    (None, "root.key is encrypted; pass --ca-passphrase-file"),
])
def test_a_wrong_or_missing_passphrase_changes_nothing(locked: tuple[Path, bytes], phrase: bytes | None,
                                                       message: str) -> None:
    d, _ = locked
    before = snapshot(d)
    with pytest.raises(InputError) as e:
        ops.revoke(d, ["client"], ca_passphrase=phrase, now=NOW)
    assert str(e.value) == message
    assert snapshot(d) == before


def test_a_passphrase_for_plain_ca_keys_is_refused(pki: Path) -> None:
    with pytest.raises(InputError, match="^intermediate.key is not encrypted; drop --ca-passphrase-file$"):
        ops.issue(pki, clients("n1"), ca_passphrase=b"x", now=NOW)


def test_read_passphrase(tmp_path: Path) -> None:
    f = tmp_path / "phrase"
    f.write_bytes(b"s3cret\n")
    f.chmod(0o600)  # readable by others it would warn (tests/test_kdf.py)
    assert fsio.read_passphrase(f) == b"s3cret"
    f.write_bytes(b"s3cret\r\n")
    assert fsio.read_passphrase(f) == b"s3cret"
    f.write_bytes(b" s3cret \n\n")
    assert fsio.read_passphrase(f) == b" s3cret \n"
    assert fsio.read_passphrase(None) is None
    f.write_bytes(b"\n")
    with pytest.raises(InputError, match=f"^--ca-passphrase-file {f} is empty; write the CA passphrase into it$"):
        fsio.read_passphrase(f)
    f.write_bytes(b"x" * 1024)
    with pytest.raises(InputError, match="holds more than 1023 bytes; use a shorter passphrase$"):
        fsio.read_passphrase(f)
    with pytest.raises(InputError, match=f"^cannot read --ca-passphrase-file {tmp_path / 'nope'}: No such file or directory$"):
        fsio.read_passphrase(tmp_path / "nope")


# ---------------------------------------------------------------- manifest round trip

def test_the_manifest_after_a_day_of_changes_still_loads_strictly(pki: Path) -> None:
    ops.issue(pki, clients("kong-node-1", "kong-node-2"), now=NOW)
    ops.revoke(pki, ["kong-node-2"], reason="superseded", now=NOW)
    ops.renew(pki, ["kong-node-2", "server"], now=NOW)
    text = (pki / MANIFEST_NAME).read_text()
    m = loads(text)
    assert dumps(m) == text
    assert parse_iso(m.crl_next_update or "") == NOW + dt.timedelta(days=90)


# ---------------------------------------------------------------- planning on an injected reader
# lifecycle's planners read through `Reader` and write nothing: these run them on a dict, with no PKI
# directory at all, and move the clock with `now`.


def recording_reader(files: dict[str, bytes]) -> tuple[lifecycle.Reader, list[str]]:
    """A Reader over `files` that records every name asked for."""
    asked: list[str] = []

    def read(name: str) -> bytes | None:
        asked.append(name)
        return files.get(name)
    return read, asked


@pytest.fixture
def in_memory() -> tuple[lifecycle.Manifest, dict[str, bytes]]:
    """An init PKI planned at NOW, as a dict of files: never written anywhere."""
    fs = pki_mod.plan_init(InitOptions(db_user="kong"), now=NOW)
    return fs.manifest, fs.all_files()


def test_issue_planned_on_an_injected_reader_signs_with_the_issuing_key_and_writes_nothing(
    in_memory: tuple[lifecycle.Manifest, dict[str, bytes]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    m, files = in_memory
    original = dict(files)
    read, asked = recording_reader(files)
    monkeypatch.chdir(tmp_path)
    later = NOW + dt.timedelta(days=10)
    found = lifecycle.verify_files(m, read)
    ca = lifecycle.load_ca(m, found, read, passphrase=None, sign_with=("issuing",))
    change = lifecycle.plan_issue(m, ca, clients("n1"), read, now=later)

    assert files == original and list(tmp_path.iterdir()) == []  # nothing written, in the dict or on disk
    assert "intermediate.key" in asked and "root.key" not in asked  # the root key is not needed to issue
    assert set(change.files) == {"n1.crt", "n1.key"} and change.private == {"n1.key"}
    leaf = x509.load_pem_x509_certificates(change.files["n1.crt"])[0]
    leaf.verify_directly_issued_by(cert_of_bytes(files["intermediate.crt"]))
    assert leaf.not_valid_before_utc == later - certs.BACKDATE  # the injected clock, not the machine's
    assert change.manifest.certificates["n1"].sha256 == fingerprint(leaf)
    assert m.certificates.keys() == original_names(original)  # the input manifest is not mutated


def test_revoke_planned_on_an_injected_reader_lists_the_serial_at_the_injected_time(
    in_memory: tuple[lifecycle.Manifest, dict[str, bytes]],
) -> None:
    m, files = in_memory
    read, _ = recording_reader(files)
    at = NOW + dt.timedelta(days=30)
    found = lifecycle.verify_files(m, read)
    ca = lifecycle.load_ca(m, found, read, passphrase=None, sign_with=lifecycle.CA_LEVELS)
    change = lifecycle.plan_revoke(m, ca, ["client"], read, now=at)
    assert set(change.files) == {"crl.pem"} and change.manifest.crl_file == "crl.pem"
    assert change.manifest.certificates["client"].revoked is not None
    crls = [x509.load_pem_x509_crl(b"-----BEGIN X509 CRL-----" + block)
            for block in change.files["crl.pem"].split(b"-----BEGIN X509 CRL-----")[1:]]
    issuers = {c.issuer for c in crls}
    assert issuers == {cert_of_bytes(files[n]).subject for n in ("root.crt", "intermediate.crt")}
    serial = int(m.certificates["client"].serial, 16)
    inter = next(c for c in crls if c.issuer == cert_of_bytes(files["intermediate.crt"]).subject)
    assert inter.get_revoked_certificate_by_serial_number(serial) is not None
    assert all(c.last_update_utc == at - certs.BACKDATE for c in crls)


@pytest.mark.parametrize(("damage", "message"), [
    (lambda f: f.pop("root.crt"), "root.crt is missing; restore it or re-create the PKI with pgkongtls init --force"),
    (lambda f: f.__setitem__("server.crt", f["client.crt"]),
     "server.crt differs from what pgkongtls.json recorded (edited by hand?); restore the file pgkongtls wrote"),
    (lambda f: f.__setitem__("chain.crt", f["root.crt"]),
     "chain.crt differs from what pgkongtls.json recorded (edited by hand?); restore the file pgkongtls wrote"),
])
def test_an_injected_reader_with_a_damaged_file_is_refused_like_the_directory(
    in_memory: tuple[lifecycle.Manifest, dict[str, bytes]], damage: Callable[[dict[str, bytes]], object],
    message: str,
) -> None:
    m, files = in_memory
    damage(files)
    with pytest.raises(StateError) as e:
        lifecycle.verify_files(m, recording_reader(files)[0])
    assert str(e.value) == message


def cert_of_bytes(data: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificates(data)[0]


def original_names(files: dict[str, bytes]) -> set[str]:
    return set(loads(files[MANIFEST_NAME].decode()).certificates)
