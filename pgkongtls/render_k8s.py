"""`render kubernetes`: the PKI as the Secret shapes Kong's chart and the PostgreSQL operators read.

Shapes are FACTS.md's "Kubernetes shapes". Pure: the manifest and a reader of the
PKI files in, a multi-document YAML string out. Private keys appear only in
Secrets, and only with `with_keys` (a key must not end up in a CI log by
accident); CA keys only with `include_ca_key`, which says what it hands over.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from pgkongtls import K8S_TARGETS
from pgkongtls.consumers import DEFAULT_TLS_PROFILE, KONG_DEFAULT_OS_USER
from pgkongtls.errors import InputError
from pgkongtls.manifest import CertEntry, Manifest
from pgkongtls.render import (
    Files,
    ca_file_for_postgres,
    kong_settings,
    needs_map,
    render_hba,
    render_ident,
    trust_file_for_clients,
)

#: CloudNativePG's fixed replication user: its certificate's CN must be this.
CNPG_REPLICATION_CN = "streaming_replica"
#: Where Kong's chart mounts each of `secretVolumes`.
KONG_SECRETS_MOUNT = "/etc/secrets"
#: cert-manager renews this long before notAfter.
RENEW_BEFORE_HOURS = 720


#: Reads one PKI file by name, None when it is missing (fsio.reader in the CLI, a dict's get in tests).
Reader = Callable[[str], "bytes | None"]


@dataclass(frozen=True)
class K8sOptions:
    target: str
    namespace: str = "default"
    prefix: str = "pgkongtls"
    with_keys: bool = False
    include_ca_key: bool = False
    edition: str = "enterprise"
    pg_ssl_version: str | None = None  # None: the one min_tls needs (render.kong_settings)
    system: bool = True
    min_tls: str | None = None
    tls_profile: str = DEFAULT_TLS_PROFILE
    os_user: str = KONG_DEFAULT_OS_USER
    server: str = "server"
    client: str = "client"


# --------------------------------------------------------------------------- a small YAML writer


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value))  # a JSON string is a YAML double-quoted scalar


def _yaml(value: Any, indent: int = 0) -> list[str]:
    pad = "  " * indent
    out: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, (dict, list)) and v:
                out.append(f"{pad}{k}:")
                out += _yaml(v, indent + 1)
            else:
                empty = "{}" if isinstance(v, dict) else "[]"
                out.append(f"{pad}{k}: {empty if isinstance(v, (dict, list)) else _scalar(v)}")
    else:
        for item in value:
            if isinstance(item, (dict, list)) and item:
                sub = _yaml(item, indent + 1)
                out.append(f"{pad}- {sub[0].lstrip()}")
                out += sub[1:]
            else:
                out.append(f"{pad}- {_scalar(item)}")
    return out


def _doc(comments: list[str], obj: dict[str, Any]) -> str:
    return "\n".join(["---", *(f"# {c}" for c in comments), *_yaml(obj)]) + "\n"


# --------------------------------------------------------------------------- shared pieces


def _name(value: str, what: str) -> str:
    """A DNS-1123 name, as Kubernetes requires for objects."""
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", value):
        raise InputError(f"{what} {value!r} is not a Kubernetes name (lower-case letters, digits and '-', at most 63)")
    return value


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _read(contents: Reader, name: str) -> bytes:
    data = contents(name)
    if data is None:
        raise InputError(f"{name} is missing from the PKI; restore the file pgkongtls wrote")
    return data


def _leaf(m: Manifest, name: str, role: str, option: str) -> CertEntry:
    entry = m.certificates.get(name)
    if entry is None or entry.role != role:
        raise InputError(f"{name!r} is not a {role} certificate of this PKI; pass {option} NAME (pgkongtls status lists them)")
    if entry.revoked:
        raise InputError(f"{name} is revoked; issue a new {role} certificate and render for that")
    return entry


def _secret(o: K8sOptions, name: str, data: dict[str, bytes], *, keys: tuple[str, ...] = ("tls.key",),
            tls: bool = True) -> str:
    """A Secret; its private keys only with --with-keys (otherwise a comment says how to add them)."""
    shown = {k: _b64(v) for k, v in data.items() if o.with_keys or k not in keys}
    comments = [f"Secret {name}: {', '.join(data)}"]
    if not o.with_keys and any(k in data for k in keys):
        comments.append(f"{', '.join(k for k in keys if k in data)} left out: rerun with --with-keys to include it")
    kind = "kubernetes.io/tls" if tls and o.with_keys else "Opaque"
    return _doc(comments, {"apiVersion": "v1", "kind": "Secret",
                           "metadata": {"name": name, "namespace": o.namespace}, "type": kind, "data": shown})


def _hba_lines(m: Manifest, o: K8sOptions) -> list[str]:
    auth = "cert" if o.edition == "enterprise" else "scram"
    return [line for line in render_hba(m, auth=auth, edition=o.edition).splitlines() if line and not line.startswith("#")]


def _ca_key(m: Manifest, contents: Reader) -> bytes:
    issuing = m.issuing_ca
    if issuing is None:
        raise InputError("a self-signed --test PKI has no CA to hand over; use pgkongtls init")
    key = _read(contents, m.certificates[issuing].key_file)
    if b"ENCRYPTED" in key:
        raise InputError(f"the {issuing} CA key is encrypted with --ca-passphrase-file; the cluster needs it in clear, "
                         "so keep this PKI off the cluster or make one without a passphrase")
    return key


# --------------------------------------------------------------------------- targets


def _kong_helm(m: Manifest, contents: Reader, o: K8sOptions) -> list[str]:
    secret = _name(f"{o.prefix}-kong-{o.client}", "--name")
    mount = f"{KONG_SECRETS_MOUNT}/{secret}"
    client = _leaf(m, o.client, "client", "--client")
    trust = _read(contents, trust_file_for_clients(m))
    comments, values = kong_settings(m, Files(pg_dir=mount, kong_dir=mount, server=o.server, client=o.client),
                                     edition=o.edition, pg_ssl_version=o.pg_ssl_version, system=o.system,
                                     min_tls=o.min_tls, tls_profile=o.tls_profile, os_user=o.os_user)
    paths = {f"{mount}/{client.file}": f"{mount}/tls.crt", f"{mount}/{client.key_file}": f"{mount}/tls.key",
             f"{mount}/{trust_file_for_clients(m)}": f"{mount}/ca.crt"}
    env = {k: next((v.replace(a, b) for a, b in paths.items() if v.endswith(a)), v) for k, v in values}
    data = {"ca.crt": trust}
    if o.edition == "enterprise":
        data = {"tls.crt": _read(contents, client.file), "tls.key": _read(contents, client.key_file), **data}
    docs = [_secret(o, secret, data, tls=o.edition == "enterprise")]
    values_doc = {"env": env, "secretVolumes": [secret]}
    docs.append("\n".join(["---", "# Kong Helm chart values fragment (merge into values.yaml; not a Kubernetes object)",
                           *comments, *_yaml(values_doc)]) + "\n")
    return docs


def _cloudnativepg(m: Manifest, contents: Reader, o: K8sOptions) -> list[str]:
    server = _leaf(m, o.server, "server", "--server")
    repl = next((e for e in m.certificates.values() if e.role == "client" and e.cn == CNPG_REPLICATION_CN
                 and not e.revoked), None)
    if repl is None:
        raise InputError(f"CloudNativePG needs a replication certificate with CN {CNPG_REPLICATION_CN}; run "
                         f"pgkongtls issue client --name {CNPG_REPLICATION_CN} --cn {CNPG_REPLICATION_CN} first")
    names = {k: _name(f"{o.prefix}-{k}", "--name") for k in ("server", "replication", "server-ca", "client-ca")}
    client_ca: dict[str, bytes] = {"ca.crt": _read(contents, ca_file_for_postgres(m))}
    if o.include_ca_key:
        client_ca["ca.key"] = _ca_key(m, contents)
    docs = [
        _secret(o, names["server"], {"tls.crt": _read(contents, server.file), "tls.key": _read(contents, server.key_file)}),
        _secret(o, names["replication"], {"tls.crt": _read(contents, repl.file), "tls.key": _read(contents, repl.key_file)}),
        _secret(o, names["server-ca"], {"ca.crt": _read(contents, trust_file_for_clients(m))}, tls=False),
        _secret(o, names["client-ca"], client_ca, keys=("ca.key",), tls=False),
    ]
    # Kong's lines only: CloudNativePG writes the replication line itself, and the replication
    # identity must never map to Kong's role.
    kong_only = replace(m, certificates={k: e for k, e in m.certificates.items() if e.cn != CNPG_REPLICATION_CN})
    cluster: dict[str, Any] = {"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
               "metadata": {"name": _name(o.prefix, "--name"), "namespace": o.namespace},
               "spec": {"certificates": {"serverTLSSecret": names["server"], "serverCASecret": names["server-ca"],
                                         "clientCASecret": names["client-ca"],
                                         "replicationTLSSecret": names["replication"]},
                        "postgresql": {"pg_hba": _hba_lines(kong_only, o)}}}
    if needs_map(kong_only, m.db_user):
        cluster["spec"]["postgresql"]["pg_ident"] = [
            line for line in render_ident(kong_only).splitlines() if line and not line.startswith("#")]
    docs.append(_doc(["Cluster fragment: merge spec.certificates and spec.postgresql.pg_hba into your Cluster"], cluster))
    return docs


def _server_secret(m: Manifest, contents: Reader, o: K8sOptions, name: str) -> str:
    server = _leaf(m, o.server, "server", "--server")
    data = {"tls.crt": _read(contents, server.file), "tls.key": _read(contents, server.key_file),
            "ca.crt": _read(contents, ca_file_for_postgres(m))}
    if m.crl_file:
        data["crl.pem"] = _read(contents, m.crl_file)
    return _secret(o, name, data)


def _zalando(m: Manifest, contents: Reader, o: K8sOptions) -> list[str]:
    name = _name(f"{o.prefix}-tls", "--name")
    spec = {"apiVersion": "acid.zalan.do/v1", "kind": "postgresql",
            "metadata": {"name": _name(o.prefix, "--name"), "namespace": o.namespace},
            "spec": {"tls": {"secretName": name, "caFile": "ca.crt"}}}
    return [_server_secret(m, contents, o, name),
            _doc(["postgresql fragment: merge spec.tls; Spilo mounts the Secret with defaultMode 0640 and",
                  "fsGroup 103 (spilo_fsgroup), so the key is readable by postgres and private to the pod"], spec)]


def _bitnami(m: Manifest, contents: Reader, o: K8sOptions) -> list[str]:
    name = _name(f"{o.prefix}-tls", "--name")
    tls: dict[str, Any] = {"enabled": True, "certificatesSecret": name, "certFilename": "tls.crt",
                           "certKeyFilename": "tls.key", "certCAFilename": "ca.crt"}
    if m.crl_file:
        tls["crlFilename"] = "crl.pem"
    return [_server_secret(m, contents, o, name),
            "\n".join(["---", "# Bitnami postgresql chart values fragment (not a Kubernetes object).",
                       "# certCAFilename turns on client-certificate requests. The chart's readiness probe presents",
                       "# the server certificate as a client certificate, which needs clientAuth in its EKU:",
                       _bitnami_eku_note(m, contents, o), *_yaml({"tls": tls})]) + "\n"]


def _bitnami_eku_note(m: Manifest, contents: Reader, o: K8sOptions) -> str:
    """Say whether the chosen server certificate passes the chart's probe, and how to fix it when not."""
    from cryptography import x509

    from pgkongtls.certs import has_client_auth

    server = _leaf(m, o.server, "server", "--server")
    if has_client_auth(x509.load_pem_x509_certificates(_read(contents, server.file))[0]):
        return f"# {server.file} carries clientAuth (--eku server,client)."
    return (f"# {server.file} does not; issue one with pgkongtls issue server --eku server,client "
            f"--name NAME --db-host HOST, and pass --server NAME.")


def _duration_hours(entry: CertEntry) -> int:
    from pgkongtls.manifest import parse_iso

    return int((parse_iso(entry.not_after) - parse_iso(entry.not_before)).total_seconds() // 3600)


def _private_key(m: Manifest) -> dict[str, Any]:
    algorithm, size = m.key_type.split("-")
    return {"algorithm": "ECDSA" if algorithm == "ecdsa" else "RSA",
            "size": int(size.lstrip("p")), "encoding": "PKCS8"}


def _cert_manager(m: Manifest, contents: Reader, o: K8sOptions) -> list[str]:
    if m.issuing_ca is None:
        raise InputError("a self-signed --test PKI has no CA for cert-manager; use pgkongtls init")
    if not o.include_ca_key:
        raise InputError(f"cert-manager signs with the {m.issuing_ca} CA key, which then lives in the cluster; "
                         "pass --include-ca-key (and --with-keys) to hand it over")
    ca = m.certificates[m.issuing_ca]
    chain = _read(contents, ca.file) + (_read(contents, "root.crt") if m.issuing_ca != "root" else b"")
    issuer = _name(f"{o.prefix}-ca", "--name")
    server, client = _leaf(m, o.server, "server", "--server"), _leaf(m, o.client, "client", "--client")
    docs = [_secret(o, issuer, {"tls.crt": chain, "tls.key": _ca_key(m, contents)}),
            _doc([f"CA Issuer: the cluster now holds the {m.issuing_ca} CA key and can sign any leaf"],
                 {"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
                  "metadata": {"name": issuer, "namespace": o.namespace}, "spec": {"ca": {"secretName": issuer}}})]
    for entry, usages in ((server, ["digital signature", "server auth"]), (client, ["digital signature", "client auth"])):
        ips = [h for h in entry.sans if re.fullmatch(r"[0-9.]+|.*:.*", h)]
        spec: dict[str, Any] = {"secretName": _name(f"{o.prefix}-{entry.name}", "--name"), "commonName": entry.cn}
        if entry.role == "server":
            spec["dnsNames"] = [h for h in entry.sans if h not in ips] or None
            spec["ipAddresses"] = ips or None
        spec.update({"usages": usages + (["key encipherment"] if m.key_type.startswith("rsa") else []),
                     "privateKey": _private_key(m), "duration": f"{_duration_hours(entry)}h",
                     "renewBefore": f"{RENEW_BEFORE_HOURS}h", "issuerRef": {"name": issuer, "kind": "Issuer"}})
        docs.append(_doc([f"Certificate for {entry.name}: pgkongtls's {entry.role} profile, renewed by cert-manager"],
                         {"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                          "metadata": {"name": spec["secretName"], "namespace": o.namespace},
                          "spec": {k: v for k, v in spec.items() if v is not None}}))
    return docs


_TARGETS = {"kong-helm": _kong_helm, "cloudnativepg": _cloudnativepg, "zalando": _zalando, "bitnami": _bitnami,
            "cert-manager": _cert_manager}


def render_kubernetes(m: Manifest, contents: Reader, o: K8sOptions) -> str:
    """Every document for one target, with a header naming the PKI."""
    if o.target not in _TARGETS:
        raise InputError(f"render kubernetes needs --for, one of {', '.join(K8S_TARGETS)}")
    _name(o.namespace, "--namespace")
    header = [f"# Kubernetes objects for {o.target}, generated by pgkongtls for the PKI whose "
              f"{'root' if m.mode == 'ca' else 'server'} certificate is",
              f"#   SHA-256 {m.root_fingerprint()}"]
    return "\n".join(header) + "\n" + "".join(_TARGETS[o.target](m, contents, o))
