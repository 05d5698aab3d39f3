"""Deploying for real: `bundle` + `install` onto PostgreSQL 15 as initdb left it, and onto a Kong host.

The cluster keeps initdb's own pg_hba.conf (`host all all 127.0.0.1/32 scram-sha-256` below
the block install puts at the top) and an ssl directory owned by postgres. No certificate,
key or TLS setting is copied by the harness: every file comes from `pgkongtls install`.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shlex
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from .clients import Refused, libpq_connect
from .kong import KongEquivalent, KongRun
from .pg import Cluster, cli_stderr, write_owned
from .pkis import DB_IP, DB_NAME, CliError, Pki, PkiFactory, cli

pytestmark = pytest.mark.realstack

NODES = ("kong-node-1", "kong-node-2", "kong-node-3")


def tree(*dirs: Path) -> dict[str, tuple[str, int, int, int]]:
    """Every file under the directories: SHA-256, owner, group, mode."""
    out = {}
    for d in dirs:
        for p in sorted(d.rglob("*")):
            if p.is_file():
                st = p.stat()
                out[str(p)] = (hashlib.sha256(p.read_bytes()).hexdigest(), st.st_uid, st.st_gid,
                               stat.S_IMODE(st.st_mode))
    return out


def conf_files(c: Cluster) -> dict[str, tuple[str, int, int, int]]:
    assert c.deploy_ssl_dir is not None
    names = ("postgresql.conf", "pg_hba.conf", "pg_ident.conf", "pgkongtls.conf")
    return {k: v for k, v in tree(c.data_dir, c.deploy_ssl_dir).items()
            if Path(k).parent == c.deploy_ssl_dir or Path(k).name in names}


def kong_login(kong: KongEquivalent, pki: Pki, c: Cluster, client: str = "client") -> KongRun:
    """Kong (both connection paths) as `client`; its host's files from the kong fixture's own deploy
    (the Kong-side bundle + install is test_kong_install_key_is_read_by_the_kong_worker_user's subject)."""
    return kong.connect(kong.deploy(pki, "--client", client).conf, port=c.port)


def test_install_onto_initdb_cluster_puts_kong_first_and_keeps_initdb_lines(
        pkis: PkiFactory, new_cluster: Callable[..., Cluster], kong: KongEquivalent) -> None:
    pki = pkis.get("intermediate", "ecdsa-p256")
    c = new_cluster(deployed=True)
    broad = "host    all             all             127.0.0.1/32            scram-sha-256"
    assert broad in c.initdb_hba
    c.deploy(pki)
    hba = (c.data_dir / "pg_hba.conf").read_text()
    assert hba.startswith("# BEGIN pgkongtls pg_hba.conf") and hba.endswith(c.initdb_hba)
    assert hba.index("hostssl all kong all cert") < hba.index(broad)
    assert c.deploy_ssl_dir is not None
    key = c.deploy_ssl_dir / "server.key"
    st = key.stat()
    assert (pwd.getpwuid(st.st_uid).pw_name, stat.S_IMODE(st.st_mode)) == ("postgres", 0o600)
    assert c.sql("SHOW ssl_key_file")[0][0] == str(key)
    res = kong_login(kong, pki, c)
    assert res.ok, res
    row = libpq_connect(port=c.port, host=DB_NAME, hostaddr=DB_IP, sslrootcert=pki.trust_file,
                        sslcert=pki.client_cert, sslkey=pki.client_key)
    assert (row.ssl, row.client_dn, row.user) == (True, "/CN=kong", "kong")
    # the twins: the initdb lines below no longer decide for kong, and plaintext is refused
    with pytest.raises(Refused, match="certificate"):
        libpq_connect(port=c.port, host=DB_NAME, hostaddr=DB_IP, sslrootcert=pki.trust_file, password="x")
    with pytest.raises(Refused, match="no encryption"):
        libpq_connect(port=c.port, host=DB_IP, sslmode="disable", password="kong-test-password")


def test_twin_the_block_below_initdb_lines_loses_to_them_and_install_says_so(
        pkis: PkiFactory, new_cluster: Callable[..., Cluster], kong: KongEquivalent) -> None:
    """What `render hba >> pg_hba.conf` did: initdb's scram line matches first, Kong has no password."""
    pki = pkis.get("intermediate", "ecdsa-p256")
    c = new_cluster(deployed=True)
    c.deploy(pki)
    hba = c.data_dir / "pg_hba.conf"
    text = hba.read_text()
    block = text[:text.index("# END pgkongtls pg_hba.conf\n") + len("# END pgkongtls pg_hba.conf\n")]
    write_owned(hba, (text.removeprefix(block) + block).encode(), 0o600)  # the operator moved it down
    c.reload()
    res = kong_login(kong, pki, c)
    assert not res.ok and "missing password" in res.message, res  # pgmoon: initdb's scram line decided
    err = c.install(c.bundle(pki))
    assert "warning: 6 rule line(s) above the pgkongtls block" in err and "move the block to the top" in err


def test_install_twice_is_byte_identical_with_each_block_once(pkis: PkiFactory, deployed: Cluster) -> None:
    pki = pkis.get("intermediate", "ecdsa-p256")
    first = deployed.bundle(pki)
    deployed.install(first)
    before = conf_files(deployed)
    for again in (first, deployed.bundle(pki)):  # the same bundle, and a new one from the same PKI
        err = deployed.install(again)
        assert "nothing to change: already installed" in err and "reloaded: PostgreSQL took the new files" in err
        assert conf_files(deployed) == before
    for name, what in (("pg_hba.conf", "pg_hba.conf"), ("pg_ident.conf", "pg_ident.conf"),
                       ("postgresql.conf", "postgresql.conf")):
        text = (deployed.data_dir / name).read_text()
        assert text.count(f"# BEGIN pgkongtls {what}:") == 1 and text.count(f"# END pgkongtls {what}\n") == 1


def test_a_failed_install_leaves_every_file_and_the_served_certificate(
        pkis: PkiFactory, deployed: Cluster, monkeypatch: pytest.MonkeyPatch, kong: KongEquivalent) -> None:
    old, new = pkis.get("intermediate", "ecdsa-p256"), pkis.get("root", "ecdsa-p256")
    deployed.deploy(old)
    before = conf_files(deployed)
    bundle = deployed.bundle(new)
    monkeypatch.setenv("PGKONGTLS_TEST_FAIL_AT", "install:pg_hba.conf")
    with pytest.raises(CliError, match="Error: injected failure at install:pg_hba.conf"):
        deployed.install(bundle)
    monkeypatch.delenv("PGKONGTLS_TEST_FAIL_AT")
    assert conf_files(deployed) == before
    deployed.reload()
    assert kong_login(kong, old, deployed).ok


def test_reload_reports_what_postgres_refused_one_line_each(
        pkis: PkiFactory, new_cluster: Callable[..., Cluster], kong: KongEquivalent) -> None:
    """An operator's bad line outside the block: PostgreSQL only logs it and keeps the old rules."""
    c = new_cluster(deployed=True)
    pki = pkis.get("intermediate", "ecdsa-p256")
    hba = c.data_dir / "pg_hba.conf"
    bad = "host all all 10.0.0.0/33 trust"
    hba.write_text(hba.read_text() + bad + "\n")  # the operator's typo, not ours: install keeps it
    with pytest.raises(CliError) as info:
        c.install(c.bundle(pki))
    errors = [ln for ln in str(info.value).splitlines() if ln.startswith("Error: ")]
    assert "exited 1" in str(info.value)
    line = hba.read_text().splitlines().index(bad) + 1
    assert f'Error: pg_hba_file_rules: pg_hba.conf:{line}: invalid CIDR mask in address "10.0.0.0/33"' in errors
    assert any(ln.startswith("Error: server log: ") and "pg_hba.conf was not reloaded" in ln for ln in errors), errors
    assert not kong_login(kong, pki, c).ok  # the old rules are still in force


def run_printed(stderr: str, prefix: str) -> str:
    """Run the one `next:` command that starts with `prefix`, as printed (up to its ';'), from where the
    PKI and its bundles are; its stderr."""
    lines = [ln.removeprefix("next: ") for ln in stderr.splitlines() if ln.startswith(f"next: {prefix}")]
    assert len(lines) == 1, stderr
    argv = shlex.split(lines[0].split(";")[0].split(" && ")[0])
    assert argv[0] == "pgkongtls", lines[0]
    return cli_stderr(*argv[1:])


def follow_postgres_hint(stderr: str, where: Path) -> str:
    """The hint's bundle command, then the install command that bundle prints, run from `where` (the
    database host's copy of the bundle sits beside the PKI here)."""
    made = run_printed(stderr, "pgkongtls bundle postgres")
    install = [ln for ln in made.splitlines() if ln.startswith("next: on that host: pgkongtls install ")]
    assert len(install) == 1, made
    argv = shlex.split(install[0].removeprefix("next: on that host: "))
    return cli_stderr(*argv[1:], cwd=where)


def test_day2_issue_bundle_install_then_revoke_one_node(pkis: PkiFactory, deployed: Cluster,
                                                      kong: KongEquivalent) -> None:
    """The day-2 path exactly as the hints print it: issue -> bundle -> install --reload -> log in;
    revoke -> bundle -> install --reload -> refused, while the other nodes still connect."""
    fleet = pkis.fresh("intermediate", "ecdsa-p256", tag="deploy-fleet")
    deployed.deploy(fleet)  # the first deployment records the ssl and config directories
    issued = cli_stderr("issue", "client", "--dir", str(fleet.dir), *[a for n in NODES for a in ("--name", n)],
                        "--cn", "{name}")
    assert "reloaded: PostgreSQL took the new files" in follow_postgres_hint(issued, fleet.dir.parent)
    hba = (deployed.data_dir / "pg_hba.conf").read_text()
    assert hba.count("hostssl all kong all cert map=pgkongtls") == 1
    assert "pgkongtls /^kong-node-[0-9]+$ kong" in (deployed.data_dir / "pg_ident.conf").read_text()
    confs = {node: kong.deploy(fleet, "--client", node).conf for node in NODES}  # kong.conf per node, as deployed
    for node in NODES:
        res = kong.connect(confs[node], port=deployed.port)
        assert res.ok, (node, res)
    revoked = cli_stderr("revoke", "--dir", str(fleet.dir), "kong-node-2", "--reason", "keyCompromise")
    assert "reloaded: PostgreSQL took the new files" in follow_postgres_hint(revoked, fleet.dir.parent)
    assert deployed.sql("SHOW ssl_crl_file")[0][0] == f"{deployed.deploy_ssl_dir}/crl.pem"
    with pytest.raises(Refused, match="certificate revoked"):  # the TLS alert libpq got names the revocation
        libpq_connect(port=deployed.port, host=DB_NAME, hostaddr=DB_IP, sslrootcert=fleet.trust_file,
                      sslcert=fleet.cert_file("kong-node-2"), sslkey=fleet.key_file("kong-node-2"))
    refused = kong.connect(confs["kong-node-2"], port=deployed.port)  # the revoked node keeps its old files
    assert not refused.ok, refused
    for node in ("kong-node-1", "kong-node-3"):
        res = kong.connect(confs[node], port=deployed.port)
        assert res.ok, (node, res)


def _ensure_kong_user() -> None:
    """The account Kong's nginx workers run as (nginx_user kong kong); created once, idempotently."""
    try:
        pwd.getpwnam("kong")
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        "kong"], check=True, capture_output=True)


def test_kong_install_key_is_read_by_the_kong_worker_user(pkis: PkiFactory, deployed: Cluster,
                                                         kong: KongEquivalent, realstack_base: Path) -> None:
    _ensure_kong_user()
    pki = pkis.fresh("intermediate", "ecdsa-p256", tag="kong-host")  # bundle kong records its --ssl-dir in it
    deployed.deploy(pki)
    host = realstack_base / "kong-host"
    host.mkdir(mode=0o755, exist_ok=True)
    conf = host / "kong.conf"
    conf.write_text("database = postgres\npg_host = 127.0.0.1\npg_ssl = off\n")
    out = realstack_base / "kong-bundle"
    cli("bundle", "kong", "--dir", str(pki.dir), "--out", str(out), "--ssl-dir", str(host / "ssl"))
    assert pki.manifest.deploy["kong"] == str(host / "ssl")
    err = cli_stderr("install", str(out), "--kong-conf", str(conf))
    assert "kong restart (or kong reload)" in err
    key = host / "ssl" / "client.key"
    read = subprocess.run(["runuser", "-u", "kong", "--", "cat", str(key)], capture_output=True)
    assert read.returncode == 0 and read.stdout == (out / "client.key").read_bytes()
    twin = subprocess.run(["runuser", "-u", "nobody", "--", "cat", str(key)], capture_output=True, text=True)
    assert twin.returncode != 0 and "Permission denied" in twin.stderr
    text = conf.read_text()
    assert [ln for ln in text.splitlines() if ln.startswith("pg_ssl =")] == ["pg_ssl = on"]
    assert cli_stderr("install", str(out), "--kong-conf", str(conf)).count("nothing to change") == 1
    assert conf.read_text() == text
    assert pki.render("kong") in text  # render now defaults to the recorded path: the same snippet
    res = kong.connect(text, port=deployed.port)  # the installed kong.conf, as Kong would read it
    assert res.ok, res
    assert os.stat(host / "ssl").st_mode & 0o005 == 0o005


def test_renew_server_then_the_printed_commands_serve_the_new_certificate(pkis: PkiFactory, deployed: Cluster,
                                                                         kong: KongEquivalent) -> None:
    """After renew the key is still postgres 0600 (install sets it), and the server presents the new leaf."""
    pki = pkis.fresh("intermediate", "ecdsa-p256", tag="deploy-renew")
    deployed.deploy(pki)
    old = pki.manifest.certificates["server"].sha256
    renewed = cli_stderr("renew", "--dir", str(pki.dir), "server")
    follow_postgres_hint(renewed, pki.dir.parent)  # install --reload fails unless the new leaf is served
    assert pki.manifest.certificates["server"].sha256 != old
    assert deployed.deploy_ssl_dir is not None
    st = (deployed.deploy_ssl_dir / "server.key").stat()
    assert (pwd.getpwuid(st.st_uid).pw_name, stat.S_IMODE(st.st_mode)) == ("postgres", 0o600)
    res = kong_login(kong, pki, deployed)
    assert res.ok, res
