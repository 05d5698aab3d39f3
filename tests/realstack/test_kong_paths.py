"""Where Kong's two connection paths disagree, and what pgkongtls renders so that they do not.

Kong makes its first connection at start-up (LuaSocket + LuaSec, in the root master) and the
rest in the workers (cosockets, user `kong`). A case passes only when each path gives
Kong's own verdict: either one failing means Kong does not work.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from . import kongconf
from .kong import KongEquivalent, replace_setting
from .pg import DEFAULT_PASSWORD, Cluster
from .pkis import Pki

pytestmark = pytest.mark.realstack


def test_pg_ssl_version_below_the_server_minimum_stops_kong_from_starting(
        cluster: Cluster, kong: KongEquivalent, main: Pki, record: Callable[..., None]) -> None:
    """What `render kong` wrote before it derived pg_ssl_version from --min-tls: the workers would
    connect, but LuaSec at start-up speaks only TLS 1.2, so Kong Enterprise never starts."""
    cluster.apply(main, min_tls="TLSv1.3")
    rendered = kong.deploy(main, "--min-tls", "TLSv1.3").conf
    assert "\npg_ssl_version = tlsv1_3\n" in rendered
    res = kong.connect(replace_setting(rendered, "pg_ssl_version", "tlsv1_2"), port=cluster.port)
    record(case="pg_ssl_version tlsv1_2, --min-tls TLSv1.3", client="Kong EE start-up (LuaSec)",
           expected="tlsv1 alert protocol version", observed=str(res))
    assert not res.starts and res.startup.stage == "tls", res
    assert "tlsv1 alert protocol version" in res.startup.message, res
    assert res.runtime.ok, res  # the workers would have worked: only the start-up path shows it
    fixed = kong.connect(rendered, port=cluster.port)  # twin: the rendered tlsv1_3
    assert fixed.ok and fixed.startup.tls_version == "TLSv1.3", fixed


def test_root_owned_0600_client_key_breaks_every_worker_connection(
        cluster: Cluster, kong: KongEquivalent, main: Pki, record: Callable[..., None]) -> None:
    """The master (root) reads the key at start-up; the workers (kong) cannot, and Kong's own text
    says nothing about permissions."""
    cluster.apply(main)
    d = kong.deploy(main)
    os.chown(d.client_key, 0, 0)
    os.chmod(d.client_key, 0o600)
    res = kong.connect(d.conf, port=cluster.port)
    record(case="client.key root:root 0600", client="Kong EE", expected="starts; runtime 'pem' (a nil value)",
           observed=str(res))
    assert res.starts and res.startup.client_dn == "/CN=kong", res
    assert (res.runtime.ok, res.runtime.stage) == (False, "setclientcert"), res
    assert res.runtime.message.endswith("ngx/ssl.lua:381: attempt to get length of local 'pem' (a nil value)"), res
    assert verify_kong_ids(d.conf, d.dir) == ["kong-key-access"]  # verify predicted it
    fixed = kong.deploy(main)
    assert kong.connect(fixed.conf, port=cluster.port).ok  # twin: owned as `render kong` says
    assert verify_kong_ids(fixed.conf, fixed.dir) == []


def verify_kong_ids(conf: str, where: Path) -> list[str]:
    """`pgkongtls verify --kong-conf` on that kong.conf, as the Kong host would run it: its error ids."""
    path = where / "kong.conf"
    path.write_text(conf.replace("system,", ""))  # `system` is a warning, not what this compares
    res = subprocess.run([sys.executable, "-m", "pgkongtls", "verify", "--kong-conf", str(path), "--json"],
                         capture_output=True, text=True, timeout=60)
    return sorted(f["id"] for f in json.loads(res.stdout) if f["severity"] == "error" and f["id"].startswith("kong-k"))


def test_system_in_the_trust_list_lets_a_publicly_trusted_ca_impersonate_the_database(
        cluster: Cluster, kong: KongEquivalent, main: Pki, other: Pki, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, record: Callable[..., None]) -> None:
    """`other`'s root stands in for one public CA of the OS bundle (the real bundle is left alone): a
    server with its certificate is accepted on both paths, because pgmoon checks no host name."""
    public = tmp_path / "stand-in-system-bundle.crt"
    public.write_bytes(other.path("root.crt").read_bytes())
    monkeypatch.setattr(kongconf, "SYSTEM_BUNDLES", (str(public),))
    cluster.apply(other, auth="scram", edition="oss")  # the impostor: another CA, any password it likes
    default = kong.deploy(main, "--edition", "oss")
    assert f"lua_ssl_trusted_certificate = system,{default.dir / 'chain.crt'}\n" in default.conf
    res = kong.connect(default.conf, port=cluster.port, password=DEFAULT_PASSWORD, edition="oss")
    record(case="impostor with a 'public' CA, system in trust list", client="Kong OSS, both paths",
           expected="ACCEPTED (the risk)", observed=str(res))
    assert res.startup.ok and res.runtime.ok, res
    hardened = kong.deploy(main, "--edition", "oss", "--no-system")
    refused = kong.connect(hardened.conf, port=cluster.port, password=DEFAULT_PASSWORD, edition="oss")
    record(case="impostor with a 'public' CA, --no-system", client="Kong OSS, both paths",
           expected="20: unable to get local issuer cert", observed=str(refused))
    assert (refused.startup.ok, refused.startup.message) == (False, "certificate verify failed"), refused
    assert not refused.runtime.ok and refused.verify_error == "20: unable to get local issuer certificate", refused
