"""render kubernetes (library): every object validates, Secrets decode to the PKI's own bytes, keys only in Secrets."""

from __future__ import annotations

import base64
import datetime as dt
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from pgkongtls import fsio, lifecycle, ops
from pgkongtls.errors import InputError, PgkWarning
from pgkongtls.pki import InitOptions
from pgkongtls.render_k8s import K8S_TARGETS, K8sOptions, render_kubernetes

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)
K8S_VERSION = "1.30.0"
#: cert-manager.io/v1 and CloudNativePG fields we emit, from their documented CRDs (no schema package here).
CRD_FIELDS = {
    ("cert-manager.io/v1", "Issuer"): {"ca"},
    ("cert-manager.io/v1", "Certificate"): {"secretName", "commonName", "dnsNames", "ipAddresses", "usages",
                                            "privateKey", "duration", "renewBefore", "issuerRef"},
    ("postgresql.cnpg.io/v1", "Cluster"): {"certificates", "postgresql"},
    ("acid.zalan.do/v1", "postgresql"): {"tls"},
}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("k8s") / "pki"
    ops.init(out, InitOptions(hosts=("db.internal", "10.0.0.5")), now=NOW)
    ops.issue(out, [lifecycle.LeafRequest(name="streaming_replica", role="client", cn="streaming_replica")], now=NOW)
    return out


def docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d is not None]


def reader(pki: Path) -> Callable[[str], bytes | None]:
    return fsio.reader(pki)


def render(pki: Path, target: str, **kw: Any) -> list[dict[str, Any]]:
    return docs(render_kubernetes(fsio.load_manifest(pki), reader(pki), K8sOptions(target=target, **kw)))


@pytest.mark.parametrize("target", K8S_TARGETS)
def test_every_object_validates(pki: Path, target: str) -> None:
    objects = [d for d in render(pki, target, with_keys=True, include_ca_key=True) if "kind" in d]
    assert objects
    for obj in objects:
        key = (obj["apiVersion"], obj["kind"])
        if key in CRD_FIELDS:
            assert set(obj["spec"]) <= CRD_FIELDS[key], obj["spec"]
        else:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


@pytest.mark.parametrize("target", K8S_TARGETS)
def test_secrets_decode_to_the_pki_files(pki: Path, target: str) -> None:
    files = {p.name: p.read_bytes() for p in pki.iterdir() if p.is_file()}
    for obj in render(pki, target, with_keys=True, include_ca_key=True):
        if obj.get("kind") == "Secret":
            for value in obj["data"].values():
                raw = base64.b64decode(value)
                assert raw in files.values() or raw == files["intermediate.crt"] + files["root.crt"], obj["metadata"]


@pytest.mark.parametrize("target", K8S_TARGETS)
def test_private_keys_only_in_secrets_and_only_with_keys(pki: Path, target: str) -> None:
    with_keys = render_kubernetes(fsio.load_manifest(pki), reader(pki),
                                  K8sOptions(target=target, with_keys=True, include_ca_key=True))
    for obj in docs(with_keys):
        if obj.get("kind") != "Secret":
            assert "PRIVATE KEY" not in yaml.safe_dump(obj)
    if target == "cert-manager":
        return  # refuses without --include-ca-key (tested below)
    without = render_kubernetes(fsio.load_manifest(pki), reader(pki), K8sOptions(target=target))
    decoded = [base64.b64decode(v) for d in docs(without) if d.get("kind") == "Secret" for v in d["data"].values()]
    assert decoded and not any(b"PRIVATE KEY" in d for d in decoded)
    assert "left out: rerun with --with-keys" in without


def test_kong_helm_env_points_at_the_mounted_secret(pki: Path) -> None:
    secret, values = render(pki, "kong-helm", with_keys=True)
    mount = f"/etc/secrets/{secret['metadata']['name']}"
    assert values["secretVolumes"] == [secret["metadata"]["name"]]
    env = values["env"]
    assert (env["pg_ssl_cert"], env["pg_ssl_cert_key"]) == (f"{mount}/tls.crt", f"{mount}/tls.key")
    assert env["lua_ssl_trusted_certificate"].split(",")[-1] == f"{mount}/ca.crt"
    assert {"tls.crt", "tls.key", "ca.crt"} == set(secret["data"])


def test_cloudnativepg_needs_streaming_replica(tmp_path: Path) -> None:
    out = tmp_path / "pki"
    ops.init(out, InitOptions(hosts=("db.internal",)), now=NOW)
    with pytest.raises(InputError, match="^CloudNativePG needs a replication certificate with CN streaming_replica; run "
                                         "pgkongtls issue client --name streaming_replica --cn streaming_replica first$"):
        render(out, "cloudnativepg")


def test_cloudnativepg_ca_key_only_when_asked(pki: Path) -> None:
    def client_ca(**kw: Any) -> set[str]:
        return {k for d in render(pki, "cloudnativepg", with_keys=True, **kw)
                if d.get("metadata", {}).get("name") == "pgkongtls-client-ca" for k in d["data"]}
    assert client_ca() == {"ca.crt"}
    assert client_ca(include_ca_key=True) == {"ca.crt", "ca.key"}


def test_cert_manager_certificates_reproduce_the_profile(pki: Path) -> None:
    objs = {(d["kind"], d["metadata"]["name"]): d for d in render(pki, "cert-manager", with_keys=True, include_ca_key=True)}
    server = objs[("Certificate", "pgkongtls-server")]["spec"]
    client = objs[("Certificate", "pgkongtls-client")]["spec"]
    assert (server["dnsNames"], server["ipAddresses"]) == (["db.internal"], ["10.0.0.5"])
    assert server["usages"] == ["digital signature", "server auth"]
    assert client["usages"] == ["digital signature", "client auth"] and client["commonName"] == "kong"
    assert server["privateKey"] == {"algorithm": "ECDSA", "size": 256, "encoding": "PKCS8"}
    assert server["duration"] == f"{365 * 24}h"


def test_cert_manager_refuses_without_include_ca_key(pki: Path) -> None:
    with pytest.raises(InputError, match="^cert-manager signs with the intermediate CA key, which then lives in the "
                                         "cluster; pass --include-ca-key"):
        render(pki, "cert-manager")


def test_cloudnativepg_never_maps_the_replication_identity_to_kong(pki: Path) -> None:
    cluster = next(d for d in render(pki, "cloudnativepg") if d.get("kind") == "Cluster")
    pg = cluster["spec"]["postgresql"]
    assert pg["pg_hba"] == ["hostssl all kong all cert", "hostnossl all all all reject"]
    assert "pg_ident" not in pg


def test_bitnami_comment_says_whether_the_server_certificate_passes_the_probe(tmp_path: Path) -> None:
    """The chart's probe needs clientAuth on the server certificate: the fragment names the fix, or says it is there."""
    pki = tmp_path / "pki"
    ops.init(pki, InitOptions(hosts=("db.internal",)), now=NOW)

    def note(**kw: Any) -> str:
        text = render_kubernetes(fsio.load_manifest(pki), reader(pki), K8sOptions(target="bitnami", **kw))
        return [line for line in text.splitlines() if line.startswith("# server.crt") or line.startswith("# probe")][0]

    assert note() == ("# server.crt does not; issue one with pgkongtls issue server --eku server,client "
                      "--name NAME --db-host HOST, and pass --server NAME.")
    with pytest.warns(PgkWarning):
        ops.issue(pki, [lifecycle.LeafRequest(name="probe", role="server", cn=None, hosts=("db.internal",),
                                              also_client=True)], now=NOW)
    assert note(server="probe") == "# probe.crt carries clientAuth (--eku server,client)."


#: What a TLS Secret holds beyond kubectl's tls.crt/tls.key: the trust file where the consumer reads it
#: from the same Secret; CloudNativePG reads its CAs from serverCASecret/clientCASecret, and a
#: cert-manager CA Issuer needs only the pair.
KUBECTL_EXTRA = {"kong-helm": {"ca.crt"}, "zalando": {"ca.crt"}, "bitnami": {"ca.crt"}, "cloudnativepg": set(),
                 "cert-manager": set()}


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed (scripts/test installs it)")
@pytest.mark.parametrize("target", K8S_TARGETS)
def test_tls_secrets_equal_what_kubectl_creates_from_the_same_files(pki: Path, target: str, tmp_path: Path) -> None:
    """`kubectl create secret tls --dry-run=client` over the PKI's own files gives the same Secret, plus ca.crt."""
    by_bytes = {p.read_bytes(): p for p in pki.iterdir() if p.is_file()}
    chain = tmp_path / "chain-with-root.pem"
    chain.write_bytes((pki / "intermediate.crt").read_bytes() + (pki / "root.crt").read_bytes())
    by_bytes[chain.read_bytes()] = chain
    secrets = [d for d in render(pki, target, with_keys=True, include_ca_key=True)
               if d.get("kind") == "Secret" and d.get("type") == "kubernetes.io/tls"]
    assert secrets
    for ours in secrets:
        crt, key = (by_bytes[base64.b64decode(ours["data"][k])] for k in ("tls.crt", "tls.key"))
        meta = ours["metadata"]
        made = yaml.safe_load(subprocess.run(
            ["kubectl", "create", "secret", "tls", meta["name"], f"--cert={crt}", f"--key={key}",
             "-n", meta["namespace"], "--dry-run=client", "-o", "yaml"],
            capture_output=True, text=True, check=True).stdout)
        assert (ours["apiVersion"], ours["kind"], ours["type"]) == (made["apiVersion"], made["kind"], made["type"])
        assert (meta["name"], meta["namespace"]) == (made["metadata"]["name"], made["metadata"]["namespace"])
        extra = {k: v for k, v in ours["data"].items() if k not in made["data"]}
        assert {k: ours["data"][k] for k in made["data"]} == made["data"]
        assert set(extra) == KUBECTL_EXTRA[target], (target, meta["name"], set(extra))
