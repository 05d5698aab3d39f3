"""Nothing outlives the CA that signs it: init, issue and renew refuse alike, with one line naming the
issuer's expiry and the longest --days that fits (certs.check_within, the one place the rule is written).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509

from pgkongtls import fsio, ops
from pgkongtls.errors import InputError
from pgkongtls.pki import InitOptions, plan_init

from .clirun import ok, run
from .test_fsio import snapshot

NOW = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.timezone.utc)


def day(now: dt.datetime, days: int) -> str:
    return (now + dt.timedelta(days=days)).strftime("%Y-%m-%d")


@pytest.mark.parametrize(("opts", "message"), [
    (InitOptions(days=4000), "--days 4000 outlives the intermediate CA (it expires 2030-02-28); "
                             "use --days 1825 or less"),
    (InitOptions(chain="root", days=4000), "--days 4000 outlives the root CA (it expires 2035-02-27); "
                                           "use --days 3650 or less"),
    (InitOptions(days_root=1, days=36500), "--days-intermediate 1825 outlives the root CA (it expires 2025-03-02); "
                                           "use --days-intermediate 1 or less"),
    (InitOptions(days_root=1, days_intermediate=1, days=36500),
     "--days 36500 outlives the intermediate CA (it expires 2025-03-02); use --days 1 or less"),
    (InitOptions(chain="root", days_root=1, days=2), "--days 2 outlives the root CA (it expires 2025-03-02); "
                                                     "use --days 1 or less"),
])
def test_init_refuses_a_certificate_that_outlives_its_issuer(opts: InitOptions, message: str) -> None:
    with pytest.raises(InputError) as e:
        plan_init(opts, now=NOW)
    assert str(e.value) == message


@pytest.mark.parametrize("opts", [
    InitOptions(days=1825), InitOptions(chain="root", days=3650), InitOptions(days_root=1, days_intermediate=1, days=1),
])
def test_init_accepts_lifetimes_up_to_the_issuers_own(opts: InitOptions) -> None:
    change = plan_init(opts, now=NOW)
    leaf = x509.load_pem_x509_certificates(change.files["server.crt"])[0]
    issuer = x509.load_pem_x509_certificates(change.files[f"{change.manifest.issuing_ca}.crt"])[0]
    assert leaf.not_valid_after_utc == issuer.not_valid_after_utc  # exactly as long: allowed, and no longer


@pytest.mark.parametrize(("args", "message"), [
    (["--days", "4000"], "--days 4000 outlives the intermediate CA (it expires {inter}); use --days 1825 or less"),
    (["--days-root", "1", "--days", "36500"],
     "--days-intermediate 1825 outlives the root CA (it expires {root}); use --days-intermediate 1 or less"),
])
def test_init_cli_refuses_in_one_line_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         args: list[str], message: str) -> None:
    monkeypatch.chdir(tmp_path)
    r = run("init", "--out", "pki", *args)
    # the CLI mints at its own clock; whole days ahead of it, as the certificates would say
    today = dt.datetime.now(dt.timezone.utc)
    want = {message.format(inter=day(today, 1825), root=day(today, 1))}
    assert (r.exit_code, r.stdout) == (1, "")
    assert {r.stderr.removeprefix("Error: ").removesuffix("\n")} == want
    assert snapshot(tmp_path) == {} and not (tmp_path / "pki").exists()


def test_issue_and_renew_refuse_the_same_way(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    ops.init(pki, InitOptions(), now=NOW)
    later = NOW + dt.timedelta(days=10)
    message = "--days 1816 outlives the intermediate CA (it expires 2030-02-28); use --days 1815 or less"
    before = snapshot(tmp_path)
    with pytest.raises(InputError) as e:
        ops.renew(pki, ["client"], days=1816, now=later)
    assert str(e.value) == message
    from pgkongtls.lifecycle import LeafRequest

    with pytest.raises(InputError) as e:
        ops.issue(pki, [LeafRequest(name="n1", role="client", cn=None)], days=1816, now=later)
    assert str(e.value) == message
    assert snapshot(tmp_path) == before
    ops.renew(pki, ["client"], days=1815, now=later)  # its twin: the longest allowed is accepted
    assert fsio.load_manifest(pki).certificates["client"].not_after[:10] == "2030-02-28"


def test_renew_cli_names_the_longest_allowed_days(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    minted = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(days=10, hours=-12)
    ops.init(tmp_path / "pki", InitOptions(), now=minted)  # the intermediate has 1815.5 days left
    before = snapshot(tmp_path)
    r = run("renew", "--dir", "pki", "client", "--days", "1816")
    assert (r.exit_code, r.stdout) == (1, "")
    assert r.stderr == (f"Error: --days 1816 outlives the intermediate CA (it expires {day(minted, 1825)}); "
                        "use --days 1815 or less\n")
    assert snapshot(tmp_path) == before
    ok("renew", "--dir", "pki", "client", "--days", "1815")
