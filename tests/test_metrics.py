"""`status --format prometheus` and `--fail-within`: metrics read back by prometheus_client's own parser.

Every value is checked against the certificates and CRLs on disk (parsed with cryptography), not
against the manifest the metrics were made from.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from cryptography import x509
from prometheus_client.parser import text_string_to_metric_families

from pgkongtls import lifecycle, ops, ops_ca
from pgkongtls.lifecycle import CertStatus, CrlStatus, LeafRequest, Status
from pgkongtls.metrics import STEADY_PHASE, render_prometheus
from pgkongtls.pki import InitOptions

from .clirun import ok, run

T0 = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
NOW = T0 + dt.timedelta(days=100, hours=3)


def samples(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """metric name -> {sorted labels: value}, through prometheus_client's text parser."""
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        assert family.type == "gauge" and family.documentation
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def on_disk(d: Path, file: str) -> x509.Certificate:
    return x509.load_pem_x509_certificates((d / file).read_bytes())[0]


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    d = tmp_path / "pki"
    ops.init(d, InitOptions(), now=T0)
    ops.issue(d, [LeafRequest(name="n1", role="client", cn=None), LeafRequest(name="n2", role="client", cn=None)], now=T0)
    ops.revoke(d, ["n2"], crl_days=120, now=T0 + dt.timedelta(days=1))
    return d


def test_every_certificate_and_crl_level_with_seconds_to_its_deadline(pki: Path) -> None:
    m = samples(render_prometheus(ops.status(pki, now=NOW), "pki"))
    manifest = ops.fsio.load_manifest(pki)
    expiry = m["pgkongtls_certificate_expiry_seconds"]
    assert len(expiry) == len(manifest.certificates) == 6
    for e in manifest.certificates.values():
        labels = (("dir", "pki"), ("name", e.name), ("role", e.role), ("serial", e.serial))
        assert expiry[labels] == (on_disk(pki, e.file).not_valid_after_utc - NOW).total_seconds()
        assert m["pgkongtls_certificate_revoked"][labels] == (1.0 if e.name == "n2" else 0.0)
    blocks = re.findall(rb"-----BEGIN X509 CRL-----.+?-----END X509 CRL-----\n", (pki / "crl.pem").read_bytes(), re.DOTALL)
    crls = [x509.load_pem_x509_crl(b) for b in blocks]
    issuers = {on_disk(pki, f"{level}.crt").subject: level for level in ("root", "intermediate")}
    want = {(("ca", issuers[c.issuer]), ("dir", "pki"), ("level", issuers[c.issuer])): (c.next_update_utc - NOW).total_seconds()
            for c in crls}
    assert m["pgkongtls_crl_next_update_seconds"] == want and len(want) == 2
    assert m["pgkongtls_ca_phase"] == {(("dir", "pki"), ("phase", STEADY_PHASE)): 1.0}
    assert m["pgkongtls_status_check_timestamp_seconds"] == {(("dir", "pki"),): NOW.timestamp()}


def test_a_rotation_reports_its_phase_and_the_old_cas_crls_too(pki: Path) -> None:
    ops_ca.begin(pki, now=T0 + dt.timedelta(days=2))
    text = render_prometheus(ops.status(pki, now=NOW), "pki")
    m = samples(text)
    assert m["pgkongtls_ca_phase"] == {(("dir", "pki"), ("phase", "begun")): 1.0}
    old = {e.name: e.role for e in ops.fsio.load_manifest(pki).certificates.values() if "@" in e.name}
    assert sorted(old.values()) == ["intermediate", "root"]
    crl = m["pgkongtls_crl_next_update_seconds"]
    assert {(dict(k)["ca"], dict(k)["level"]) for k in crl} == {
        ("root", "root"), ("intermediate", "intermediate"), *((name, role) for name, role in old.items())}
    series = [line.split(" ")[0] for line in text.splitlines() if not line.startswith("#")]
    assert len(series) == len(set(series))  # no series twice, which Prometheus would reject


def test_a_passed_deadline_is_negative(pki: Path) -> None:
    later = T0 + dt.timedelta(days=400)
    m = samples(render_prometheus(ops.status(pki, now=later), "pki"))
    server = next(v for k, v in m["pgkongtls_certificate_expiry_seconds"].items() if ("name", "server") in k)
    assert server == (on_disk(pki, "server.crt").not_valid_after_utc - later).total_seconds() < 0
    assert all(v < 0 for v in m["pgkongtls_crl_next_update_seconds"].values())


def test_no_crl_means_no_crl_samples_but_the_family_is_declared(tmp_path: Path) -> None:
    ops.init(tmp_path / "p", InitOptions(), now=T0)
    text = render_prometheus(ops.status(tmp_path / "p", now=NOW), "p")
    assert "pgkongtls_crl_next_update_seconds" not in samples(text)
    assert "# TYPE pgkongtls_crl_next_update_seconds gauge\n" in text


@pytest.mark.parametrize("odd", ['a"b', "back\\slash", "new\nline", "ünï"])
def test_label_values_are_quoted_so_the_parser_reads_them_back(pki: Path, odd: str) -> None:
    m = samples(render_prometheus(ops.status(pki, now=NOW), odd))
    assert m["pgkongtls_status_check_timestamp_seconds"] == {(("dir", odd),): NOW.timestamp()}


def test_exposition_lines_are_strict(pki: Path) -> None:
    """HELP and TYPE once per family, before its samples; every other line a sample; a final newline."""
    text = render_prometheus(ops.status(pki, now=NOW), "pki")
    assert text.endswith("\n") and "\n\n" not in text
    seen: list[str] = []
    sample = re.compile(r'([a-z_]+)\{([a-z_]+="(?:[^"\\\n]|\\.)*",?)+\} -?[0-9]+')
    for line in text.splitlines():
        if line.startswith("# HELP "):
            seen.append(line.split()[2])
        elif line.startswith("# TYPE "):
            assert line == f"# TYPE {seen[-1]} gauge"
        else:
            found = sample.fullmatch(line)
            assert found is not None, line
            assert found.group(1) == seen[-1]
    assert len(seen) == len(set(seen)) == 5


# ---------------------------------------------------------------- due_within (the --fail-within gate)

def _status(*certs: tuple[str, str, str], crl: str | None = None) -> Status:
    rows = tuple(CertStatus(n, role, n, (), None, "01", after, 0, state) for n, role, after, state in
                 ((n, r, a, "revoked" if n.startswith("old") else "valid") for n, r, a in certs))
    return Status("2026-06-01T00:00:00Z", 30, rows, None if crl is None else CrlStatus("crl.pem", crl, 0, "valid"), ())


def test_due_within_counts_cas_and_the_crl() -> None:
    st = _status(("intermediate", "intermediate", "2026-06-20T00:00:00Z"), ("server", "server", "2027-06-01T00:00:00Z"),
                 crl="2026-06-10T00:00:00Z")
    assert lifecycle.due_within(st, dt.timedelta(days=30)) == ["intermediate", "crl.pem"]
    assert lifecycle.due_within(st, dt.timedelta(days=15)) == ["crl.pem"]
    assert lifecycle.due_within(st, dt.timedelta(days=5)) == []


def test_due_within_skips_revoked_leaves() -> None:
    st = _status(("old-client", "client", "2026-06-02T00:00:00Z"), ("client", "client", "2026-06-03T00:00:00Z"))
    assert lifecycle.due_within(st, dt.timedelta(days=30)) == ["client"]


# ---------------------------------------------------------------- the CLI

@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_status_format_prometheus_is_stdout_only(in_tmp: Path) -> None:
    ok("init", "--out", "pki")
    r = ok("status", "--format", "prometheus")
    assert r.stderr == ""
    m = samples(r.stdout)
    assert {dict(k)["name"] for k in m["pgkongtls_certificate_expiry_seconds"]} == {"root", "intermediate", "server", "client"}
    assert all(dict(k)["dir"] == "pki" for k in m["pgkongtls_certificate_revoked"])


def test_status_json_and_prometheus_together_are_refused(in_tmp: Path) -> None:
    ok("init", "--out", "pki")
    r = run("status", "--json", "--format", "prometheus")
    assert (r.exit_code, r.stdout, r.stderr) == (
        2, "", "Error: --json and --format prometheus ask for two outputs; pass only one. See 'pgkongtls status --help'.\n")


def test_fail_within_exits_4_naming_what_is_due(in_tmp: Path) -> None:
    ops.init(in_tmp / "pki", InitOptions(), now=T0)
    ops.refresh_crl(in_tmp / "pki", crl_days=10, now=dt.datetime.now(dt.timezone.utc))
    r = run("status", "--fail-within", "15d", "--format", "prometheus")
    assert r.exit_code == 4 and r.stderr == "FAIL: expires within 15d: crl.pem\n"
    assert samples(r.stdout)["pgkongtls_crl_next_update_seconds"]  # the metrics are still written
    quiet = run("status", "--fail-within", "9d", "--json")
    assert (quiet.exit_code, quiet.stderr) == (0, "")


def test_fail_within_leaves_expired_as_exit_3(in_tmp: Path) -> None:
    ops.init(in_tmp / "pki", InitOptions(), now=T0 - dt.timedelta(days=400))
    r = run("status", "--fail-within", "30d", "--json")
    assert r.exit_code == 3 and "FAIL" not in r.stderr


@pytest.mark.parametrize(("value", "message"), [
    ("30", "--fail-within 30 has no unit; write 30d for days (or h hours, w weeks)"),
    ("soon", "invalid --fail-within 'soon': use a number and a unit, like 30d (h hours, d days, w weeks)"),
])
def test_fail_within_needs_a_unit(in_tmp: Path, value: str, message: str) -> None:
    ok("init", "--out", "pki")
    r = run("status", "--fail-within", value)
    assert (r.exit_code, r.stdout, r.stderr) == (1, "", f"Error: {message}\n")
