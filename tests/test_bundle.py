"""Library tests for bundle planning: exactly one host's files, and never a CA key."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pgkongtls import bundle as b
from pgkongtls import fsio, ops
from pgkongtls.errors import InputError, StateError
from pgkongtls.lifecycle import LeafRequest
from pgkongtls.manifest import Manifest
from pgkongtls.pki import InitOptions, SelfSignedOptions

CA_ROLES = ("root", "intermediate")

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "pki"
    ops.init(out, InitOptions(hosts=("db.internal",)), now=NOW)
    return out


def plan(pki: Path, host: str, m: Manifest | None = None, read: b.Reader | None = None, **opts: str) -> b.Bundle:
    return b.plan(host, m or fsio.load_manifest(pki), read or fsio.reader(pki), b.Options(**opts))


def ca_keys(pki: Path) -> list[bytes]:
    m = fsio.load_manifest(pki)
    return [(pki / e.key_file).read_bytes() for e in m.certificates.values() if e.role in CA_ROLES]


def test_postgres_bundle_holds_server_files_trust_and_snippets_only(pki: Path) -> None:
    got = plan(pki, "postgres", ssl_dir="/etc/pg/ssl")
    assert [(f.name, f.kind, f.destination, f.owner, f.group, f.mode) for f in got.files] == [
        ("server.crt", "certificate", "/etc/pg/ssl/server.crt", "root", "root", 0o644),
        ("server.key", "key", "/etc/pg/ssl/server.key", "postgres", "postgres", 0o600),
        ("chain.crt", "trust", "/etc/pg/ssl/chain.crt", "root", "root", 0o644),
        ("pgkongtls.conf", "postgresql.conf", None, "root", "root", 0o644),
        ("pg_hba.conf.snippet", "pg_hba.conf", None, "root", "root", 0o644),
        ("pg_ident.conf.snippet", "pg_ident.conf", None, "root", "root", 0o644),
    ]
    conf = got.file("postgresql.conf")
    assert conf is not None and b"ssl_key_file = '/etc/pg/ssl/server.key'" in conf.content


def test_kong_bundle_holds_the_client_key_readable_by_kong_and_the_trust_file(pki: Path) -> None:
    got = plan(pki, "kong", ssl_dir="/etc/kong/ssl")
    assert [(f.name, f.kind, f.owner, f.mode) for f in got.files] == [
        ("client.crt", "certificate", "root", 0o644), ("client.key", "key", "kong", 0o600),
        ("chain.crt", "trust", "root", 0o644), ("kong.conf.snippet", "kong.conf", "root", 0o644)]
    oss = plan(pki, "kong", edition="oss")
    assert [f.name for f in oss.files] == ["chain.crt", "kong.conf.snippet"]


def test_self_signed_postgres_trusts_the_client_certificate(tmp_path: Path) -> None:
    ops.self_signed(tmp_path / "ss", SelfSignedOptions(), now=NOW)
    got = plan(tmp_path / "ss", "postgres")
    assert [f.name for f in got.files if f.destination] == ["server.crt", "server.key", "client.crt"]


def test_the_crl_travels_with_the_postgres_bundle_once_there_is_one(tmp_path: Path) -> None:
    ops.init(tmp_path / "p", InitOptions(), now=NOW)
    ops.issue(tmp_path / "p", [LeafRequest(role="client", name="n1", cn="n1")], now=NOW)
    ops.revoke(tmp_path / "p", ["n1"], now=NOW)
    got = plan(tmp_path / "p", "postgres")
    assert [f.name for f in got.files if f.kind == "crl"] == ["crl.pem"]
    assert "crl.pem" not in [f.name for f in plan(tmp_path / "p", "kong").files]


def test_a_revoked_or_unknown_name_is_refused_with_the_names_to_use(tmp_path: Path) -> None:
    ops.init(tmp_path / "p", InitOptions(), now=NOW)
    ops.issue(tmp_path / "p", [LeafRequest(role="client", name="n1", cn="n1")], now=NOW)
    ops.revoke(tmp_path / "p", ["n1"], now=NOW)
    with pytest.raises(InputError, match=r"^--client 'n1' is revoked in this PKI; use one of: client$"):
        plan(tmp_path / "p", "kong", client="n1")
    with pytest.raises(InputError, match=r"^--server 'root' is not a server certificate in this PKI; use one of: server$"):
        plan(tmp_path / "p", "postgres", server="root")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(host=st.sampled_from(b.HOSTS), name=st.one_of(st.sampled_from(["server", "client", "root", "intermediate"]),
                                                      st.text(min_size=1, max_size=12)))
def test_no_requested_name_yields_a_ca_key(pki: Path, host: str, name: str) -> None:
    wanted = "server" if host == "postgres" else "client"
    opts = b.Options(server=name) if host == "postgres" else b.Options(client=name)
    try:
        got = b.plan(host, fsio.load_manifest(pki), fsio.reader(pki), opts)
    except InputError:
        assert name != wanted  # only the PKI's own leaf of the right role may be bundled
        return
    assert name == wanted
    contents = b"".join(f.content for f in got.files)
    assert not any(k.strip() in contents for k in ca_keys(pki))
    assert [f.name for f in got.files if f.private] == [f"{wanted}.key"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(host=st.sampled_from(b.HOSTS), victim=st.sampled_from(["server", "client"]),
       field=st.sampled_from(["file", "key_file"]), ca=st.sampled_from(CA_ROLES))
def test_a_manifest_pointing_a_leaf_at_a_ca_key_is_refused(pki: Path, host: str, victim: str, field: str,
                                                           ca: str) -> None:
    m = fsio.load_manifest(pki)
    entry, ca_key = m.certificates[victim], m.certificates[ca].key_file
    bad = dataclasses.replace(entry, file=ca_key) if field == "file" else dataclasses.replace(entry, key_file=ca_key)
    m2 = dataclasses.replace(m, certificates={**m.certificates, victim: bad})
    bundled = (host == "postgres" and victim == "server") or (host == "kong" and victim == "client")
    if bundled:
        with pytest.raises(StateError, match="would put a CA key into the bundle"):
            plan(pki, host, m=m2)
    else:
        got = plan(pki, host, m=m2)
        assert not any(k.strip() in f.content for f in got.files for k in ca_keys(pki))


@pytest.mark.parametrize("ca", CA_ROLES)
def test_a_ca_key_copied_over_the_leaf_key_is_refused(pki: Path, ca: str) -> None:
    real = fsio.reader(pki)

    def read(name: str) -> bytes | None:
        return real(f"{ca}.key") if name == "server.key" else real(name)

    with pytest.raises(StateError, match=r"^server.key would put a CA key into the bundle"):
        plan(pki, "postgres", read=read)


def test_a_private_key_hidden_in_a_certificate_file_is_refused(pki: Path) -> None:
    real = fsio.reader(pki)

    def read(name: str) -> bytes | None:
        data = real(name)
        return data + (real("server.key") or b"") if name == "chain.crt" and data else data

    with pytest.raises(StateError, match=r"^chain.crt contains a private key"):
        plan(pki, "postgres", read=read)


@pytest.mark.parametrize("ssl_dir", ["relative/dir", "/", "/etc/a#b", "/etc/a\nb"])
def test_ssl_dir_must_be_a_plain_absolute_directory(pki: Path, ssl_dir: str) -> None:
    with pytest.raises(InputError, match="--ssl-dir"):
        plan(pki, "postgres", ssl_dir=ssl_dir)


def test_description_round_trips_and_catches_a_changed_file(pki: Path) -> None:
    got = plan(pki, "postgres")
    contents = {f.name: f.content for f in got.files}
    assert b.parse(b.describe(got), contents) == got
    with pytest.raises(StateError, match=r"^server.crt does not match its SHA-256 in bundle.json"):
        b.parse(b.describe(got), {**contents, "server.crt": b"x"})
    with pytest.raises(StateError, match=r"^chain.crt is missing from the bundle"):
        b.parse(b.describe(got), {k: v for k, v in contents.items() if k != "chain.crt"})


def test_tar_is_reproducible_with_a_0700_directory_and_a_0600_key(pki: Path) -> None:
    got = plan(pki, "kong")
    data = b.tar_bytes(got, "kb")
    assert data == b.tar_bytes(got, "kb")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        modes = {m.name: m.mode for m in tar.getmembers()}
    assert modes == {"kb": 0o700, "kb/client.crt": 0o644, "kb/client.key": 0o600, "kb/chain.crt": 0o644,
                     "kb/kong.conf.snippet": 0o644, "kb/bundle.json": 0o644}
