"""`status --format prometheus`: node-exporter textfile metrics from a `Status`, as text.

Pure like the renderers: a Status in, the exposition text out. Values are seconds to a
deadline (negative once passed), so an alert is a plain comparison:
`pgkongtls_certificate_expiry_seconds < 14 * 86400 unless on (dir, name) pgkongtls_certificate_revoked == 1`.
"""

from __future__ import annotations

from pgkongtls.lifecycle import Status
from pgkongtls.manifest import parse_iso

#: The CA phase reported while the manifest records none (manifest.PHASES): one CA, no rotation under way.
STEADY_PHASE = "steady"

_HELP = {
    "pgkongtls_certificate_expiry_seconds": "Seconds until the certificate's notAfter (negative once expired).",
    "pgkongtls_certificate_revoked": "1 when the certificate is revoked (on the CRL), else 0.",
    "pgkongtls_crl_next_update_seconds": "Seconds until the CRL's nextUpdate, per CA level (ca: root@serial for an "
                                         "old CA during a rotation); then PostgreSQL refuses every client certificate.",
    "pgkongtls_ca_phase": "1 for the CA's current rotation phase (steady, renewed, begun, reissued).",
    "pgkongtls_status_check_timestamp_seconds": "When pgkongtls status read the PKI (Unix time).",
}


def _label(value: str) -> str:
    """A label value as the exposition format quotes it."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{k}="{_label(v)}"' for k, v in labels.items()) + "}"


def render_prometheus(st: Status, pki_dir: str) -> str:
    """Every metric, HELP and TYPE first; `pki_dir` is the `dir` label, so one host can watch several PKIs."""
    now = parse_iso(st.now)
    samples: dict[str, list[str]] = {name: [] for name in _HELP}
    for c in st.certificates:
        labels = _labels(dir=pki_dir, name=c.name, role=c.role, serial=c.serial)
        left = int((parse_iso(c.not_after) - now).total_seconds())
        samples["pgkongtls_certificate_expiry_seconds"].append(f"{labels} {left}")
        samples["pgkongtls_certificate_revoked"].append(f"{labels} {int(c.state == 'revoked')}")
    role = {c.name: c.role for c in st.certificates}
    for ca, next_update in st.crl_levels:
        left = int((parse_iso(next_update) - now).total_seconds())
        labels = _labels(dir=pki_dir, level=role.get(ca, ca), ca=ca)
        samples["pgkongtls_crl_next_update_seconds"].append(f"{labels} {left}")
    samples["pgkongtls_ca_phase"].append(f"{_labels(dir=pki_dir, phase=st.phase or STEADY_PHASE)} 1")
    samples["pgkongtls_status_check_timestamp_seconds"].append(f"{_labels(dir=pki_dir)} {int(now.timestamp())}")
    out: list[str] = []
    for name, lines in samples.items():
        out += [f"# HELP {name} {_HELP[name]}", f"# TYPE {name} gauge", *(f"{name}{line}" for line in lines)]
    return "\n".join(out) + "\n"
