"""Real-stack fixtures: PostgreSQL 15, a Kong-equivalent nginx client, PKIs from the real CLI.

Stable API for every real-stack test (details in each class's docstring):

  realstack_base  (session) Path: our own temp dir (0755), traversable by the postgres user.
  pkis            (session) PkiFactory
                    .get(shape, key_type, hosts=, db_user=, tag=) -> Pki, cached: do not modify it
                    .fresh(...) -> a Pki of your own (lifecycle tests change theirs)
                  Pki: .dir .label .shape .key_type .manifest .state .hosts .trust_file .verify_depth
                    .client_cert .client_key .cert_file(name) .key_file(name) .render(target, *args)
                    .server_side_files() .issuing_ca()
  cluster         (session) Cluster on 127.0.0.1:cluster.port, running, role `kong` with DEFAULT_PASSWORD.
                    .apply(pki, auth=, edition=, min_tls=, user=, hba_args=, server=, postgres_args=) -> Applied
                        (renders with the CLI, installs files owned by postgres, reloads, checks it took)
                    .configure(postgres_conf=, hba=, ident=)   hand-written files, reload or start
                    .write_config(...)  files only   .reload()   .install_files(name, {file: path})
                    .sql(q, params)  .ensure_role(name, password)  .start() .stop() .restart()
                    .log_mark() .log_since(mark) .wait_log(mark, regex) .postmaster_log(mark)
                  Broke it on purpose? Call .apply(...) again (it rewrites every file), or use new_cluster.
  new_cluster     (function) factory(deployed=False) -> a started Cluster of your own (role kong); destroyed afterwards.
  deployed        (session) a Cluster(deployed=True): initdb's pg_hba.conf (broad scram lines kept), ssl dir owned
                    by postgres; .apply(pki, auth=, edition=, min_tls=, server=) = .deploy(...): `bundle postgres`
                    + `install --reload` through the CLI. Also .bundle(pki, *args) -> dir, .install(dir, *args).
  kong            (session) KongEquivalent: Kong's two connection paths; the `kong` OS user is created first.
                    .deploy(pki, *render_args) -> Deployed (.conf .dir .client_cert .client_key .key_owner .key_mode)
                        copies the PKI's Kong-side files to the "Kong host", client keys owned/moded as the
                        rendered comment says, and returns `render kong --kong-dir <there> ARGS`. Kong's
                        workers (user kong) must read the key: pass .conf, not pki.render("kong").
                    .connect(kong_conf_text, port=, user=, password=, database=, edition=) -> KongRun
                        .startup / .runtime: KongResult per path (ok only on AuthenticationOk; .stage .message
                         .ssl .tls_version .client_dn .user .mechanism .server_error .error_log .verify_error)
                        .ok (both paths), .starts (start-up path), and .stage .message .ssl .tls_version
                        .client_dn .user .verify_error .error_log of the runtime path.
                    .worker_user() -> the nginx worker's user name
  kong_client     (session) the same `kong.connect`, as a plain function.
  main, other     (session) Pki: intermediate/ecdsa-p256, and an unrelated one of the same shape.
  record          (function) record(case=, client=, expected=, observed=, column=) adds a summary row.

Helpers to import: .clients (libpq_connect -> SslRow | raises Refused, s_client -> SClientResult,
py313_connect -> PyResult, skips without $PGKONGTLS_PY313), .pkis (DB_NAME, DB_IP, mint_client, cli,
CliError), .pg (DEFAULT_PASSWORD, ClusterError), .kong (replace_setting, parse_kong_conf, translate,
KONG_USER), .grade (sslyze_grade, skips without $PGKONGTLS_SSLYZE).
Every server is stopped by a finalizer, whatever the tests did; nginx also dies with pytest.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from . import clients, grade
from .kong import KongEquivalent, KongRun, ensure_kong_user
from .matrix import Matrix
from .pg import Cluster
from .pkis import Pki, PkiFactory

_MATRIX = Matrix()
_OWN = itertools.count()


@pytest.fixture(scope="session")
def realstack_base() -> Iterator[Path]:
    """Our own temp base: /tmp/pytest-of-root is 0700, and the postgres user must traverse this."""
    base = Path(tempfile.mkdtemp(prefix="pgkongtls-realstack-"))
    os.chmod(base, 0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def pkis(realstack_base: Path) -> PkiFactory:
    d = realstack_base / "pkis"
    d.mkdir(mode=0o700)
    return PkiFactory(d)


def _started(base: Path, name: str, *, deployed: bool = False) -> Cluster:
    c = Cluster(base, name=name, deployed=deployed)
    try:
        c.start()
        c.ensure_role("kong")
    except BaseException:
        c.stop()
        raise
    return c


@pytest.fixture(scope="session")
def cluster(realstack_base: Path) -> Iterator[Cluster]:
    c = _started(realstack_base, "pg")
    try:
        _MATRIX.versions.setdefault("PostgreSQL", c.sql("SHOW server_version")[0][0])
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="session")
def deployed(realstack_base: Path) -> Iterator[Cluster]:
    """A cluster with initdb's own pg_hba.conf whose `apply` is `bundle postgres` + `install --reload`."""
    c = _started(realstack_base, "pg-deployed", deployed=True)
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def new_cluster(realstack_base: Path) -> Iterator[Callable[[], Cluster]]:
    made: list[Cluster] = []

    def make(*, deployed: bool = False) -> Cluster:
        c = _started(realstack_base, f"pg-own-{next(_OWN)}", deployed=deployed)
        made.append(c)
        return c

    yield make
    for c in made:
        c.destroy()


@pytest.fixture(scope="session")
def kong(realstack_base: Path) -> Iterator[KongEquivalent]:
    ensure_kong_user()
    k = KongEquivalent(realstack_base)
    try:
        yield k
    finally:
        try:
            _MATRIX.versions.update({k2: v for k2, v in k.versions().items() if k2 not in _MATRIX.versions})
        except OSError:
            pass
        k.stop()


@pytest.fixture(scope="session")
def main(pkis: PkiFactory) -> Pki:
    """The usual PKI of the negative and probe tests: intermediate chain, P-256."""
    return pkis.get("intermediate", "ecdsa-p256")


@pytest.fixture(scope="session")
def other(pkis: PkiFactory) -> Pki:
    """An unrelated PKI of the same shape: same host names and CNs, different CAs."""
    return pkis.get("intermediate", "ecdsa-p256", tag="other")


@pytest.fixture(scope="session")
def kong_client(kong: KongEquivalent) -> Callable[..., KongRun]:
    return kong.connect


@pytest.fixture
def record(request: pytest.FixtureRequest) -> Callable[..., None]:
    """Add a row to the summary; its verdict is this test's outcome."""

    def rec(*, case: str, client: str, expected: str, observed: str, column: str = "") -> None:
        _MATRIX.record(request.node.nodeid, case=case, client=client, expected=expected, observed=observed,
                       column=column)

    return rec


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    _MATRIX.outcome(item.nodeid, report.when, report.outcome)


def _tool_versions() -> dict[str, str]:
    """Versions that need no running server, for "Verified against"."""
    out = clients.versions()
    py = os.environ.get("PGKONGTLS_PY313")
    if py:
        res = subprocess.run([py, "-c", "import sys, ssl, asyncpg; print(sys.version.split()[0], ssl.OPENSSL_VERSION,"
                                        " asyncpg.__version__, sep='|')"], capture_output=True, text=True)
        if res.returncode == 0:
            ver, ossl, apg = res.stdout.strip().split("|")
            out["Python (strict client)"] = f"{ver} ({ossl}), asyncpg {apg}"
    out["Python (test runner)"] = sys.version.split()[0]
    sslyze = grade.sslyze_version()
    if sslyze:
        out["sslyze (Mozilla profiles)"] = sslyze
    return out


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not _MATRIX.rows:
        return
    _MATRIX.versions.update({k: v for k, v in _tool_versions().items() if k not in _MATRIX.versions})
    terminalreporter.section("pgkongtls real-stack matrix")
    for line in _MATRIX.lines(width=terminalreporter._tw.fullwidth):
        terminalreporter.write_line(line)
