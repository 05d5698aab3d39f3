"""The CAs over the years on the real stack: renew and rotate while clients keep connecting.

A background loop connects every 200 ms with libpq (verify-full, the node's own client certificate and
trust file as `install` put them on the Kong host), and the Kong-equivalent (both connection paths,
configured by the installed kong.conf) connects after every step. PostgreSQL gets each phase through
`bundle postgres` + `install --reload`, the Kong host through `bundle kong` + `install --kong-conf`, then
Kong is restarted as `install` says. No certificate is copied by the harness, except in the twins,
which break one file on purpose.

The loop pauses while the node's own files are replaced: `install` replaces the certificate and the key
as two files, and a connection between the two would pair a new certificate with an old key (that is
install's concern, not the CA's).
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .clients import Refused, libpq_connect
from .kong import KongEquivalent
from .pg import Cluster, cli_stderr, write_owned
from .pkis import DB_IP, DB_NAME, Pki, PkiFactory, cli

pytestmark = pytest.mark.realstack

NODE = "kong-node-1"
PERIOD = 0.2


@dataclass
class Loop:
    """libpq connecting every PERIOD seconds with the Kong host's installed files."""

    port: int
    ssl: Path
    pause: threading.Lock = field(default_factory=threading.Lock)
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            with self.pause:
                try:
                    row = libpq_connect(port=self.port, host=DB_NAME, hostaddr=DB_IP, sslrootcert=self.ssl / "chain.crt",
                                        sslcert=self.ssl / f"{NODE}.crt", sslkey=self.ssl / f"{NODE}.key")
                    assert (row.ssl, row.user, row.client_dn) == (True, "kong", f"/CN={NODE}"), row
                    self.ok += 1
                except (Refused, AssertionError) as exc:
                    self.failures.append(f"{time.strftime('%H:%M:%S')} {exc}")
            self.stop.wait(PERIOD)


@dataclass
class Stack:
    pki: Pki
    db: Cluster
    kong: KongEquivalent
    host: Path  # the Kong host: ssl/ and kong.conf
    loop: Loop
    kong_failures: list[str] = field(default_factory=list)

    def deploy_db(self) -> None:
        self.db.deploy(self.pki)

    def deploy_kong(self) -> None:
        out = self.host.parent / f"{self.host.name}-bundle"
        with self.loop.pause:
            cli("bundle", "kong", "--dir", str(self.pki.dir), "--client", NODE, "--out", str(out),
                "--ssl-dir", str(self.host / "ssl"), "--force")
            cli_stderr("install", str(out), "--kong-conf", str(self.host / "kong.conf"))
        self.kong.restart()  # install ends with "kong restart": the workers re-read every file

    def check_kong(self, step: str) -> None:
        res = self.kong.connect((self.host / "kong.conf").read_text(), port=self.db.port)
        if not (res.ok and res.client_dn == f"/CN={NODE}"):
            self.kong_failures.append(f"{step}: {res}")

    def step(self, name: str, *args: str) -> None:
        """A CA command, then deploy everywhere, checking Kong after each move."""
        cli_stderr(args[0], "--dir", str(self.pki.dir), *args[1:])
        self.check_kong(f"{name}, nothing deployed yet")
        self.deploy_db()
        self.check_kong(f"{name}, database deployed")
        self.deploy_kong()
        self.check_kong(f"{name}, Kong deployed")


@pytest.fixture
def stack(pkis: PkiFactory, new_cluster: Callable[..., Cluster], kong: KongEquivalent,
          realstack_base: Path) -> Iterator[Stack]:
    """A PKI with a per-node identity and a loaded CRL, deployed, and the loop running."""
    pki = pkis.fresh("intermediate", "ecdsa-p256", tag=f"ca-{time.monotonic_ns()}")
    cli("issue", "client", "--dir", str(pki.dir), "--name", NODE, "--name", "kong-node-9", "--cn", "{name}")
    cli("revoke", "--dir", str(pki.dir), "kong-node-9")  # ssl_crl_file is set: every CA level needs its CRL
    db = new_cluster(deployed=True)
    host = realstack_base / f"kong-host-{pki.dir.name}"
    host.mkdir(mode=0o755)
    (host / "kong.conf").write_text("database = postgres\npg_host = 127.0.0.1\npg_ssl = off\n")
    s = Stack(pki, db, kong, host, Loop(db.port, host / "ssl"))
    s.deploy_db()
    s.deploy_kong()
    s.check_kong("before")
    thread = threading.Thread(target=s.loop.run, daemon=True)
    thread.start()
    try:
        yield s
    finally:
        s.loop.stop.set()
        thread.join(30)


def assert_no_refusal(s: Stack) -> None:
    s.loop.stop.set()
    time.sleep(PERIOD)
    assert s.kong_failures == []
    assert s.loop.failures == []
    assert s.loop.ok >= 10, s.loop.ok  # the loop really ran across the phases


def test_rotate_begin_reissue_finish_refuses_no_correctly_deployed_client(stack: Stack, tmp_path: Path) -> None:
    s = stack
    pre_begin_crl = (s.pki.dir / "crl.pem").read_bytes()
    node_serial = s.pki.manifest.certificates[NODE].serial
    s.step("begin", "rotate", "begin")
    s.step("reissue", "rotate", "reissue")
    s.step("finish", "rotate", "finish")
    assert_no_refusal(s)

    # twin 1: a client that still holds its old certificate after finish is refused
    old_cert, old_key = tmp_path / "old.crt", tmp_path / "old.key"
    shutil.copyfile(s.pki.dir / f"{NODE}.crt.{node_serial}.bak", old_cert)
    old_key.write_bytes((s.pki.dir / f"{NODE}.key.{node_serial}.bak").read_bytes())
    old_key.chmod(0o600)
    with pytest.raises(Refused) as e:
        libpq_connect(port=s.db.port, host=DB_NAME, hostaddr=DB_IP, sslrootcert=s.host / "ssl" / "chain.crt",
                      sslcert=old_cert, sslkey=old_key)
    assert "certificate verify failed" in str(e.value) or "unknown ca" in str(e.value), e.value

    # twin 2: a server whose ssl_crl_file lacks the new CAs' CRLs refuses the re-issued clients
    assert s.db.deploy_ssl_dir is not None
    installed = (s.db.deploy_ssl_dir / "crl.pem").read_bytes()
    write_owned(s.db.deploy_ssl_dir / "crl.pem", pre_begin_crl, 0o644)
    s.db.reload()
    with pytest.raises(Refused) as e:
        libpq_connect(port=s.db.port, host=DB_NAME, hostaddr=DB_IP, sslrootcert=s.host / "ssl" / "chain.crt",
                      sslcert=s.host / "ssl" / f"{NODE}.crt", sslkey=s.host / "ssl" / f"{NODE}.key")
    assert "certificate verify failed" in str(e.value) or "unknown ca" in str(e.value), e.value
    write_owned(s.db.deploy_ssl_dir / "crl.pem", installed, 0o644)  # what install wrote: the client is admitted
    s.db.reload()
    row = libpq_connect(port=s.db.port, host=DB_NAME, hostaddr=DB_IP, sslrootcert=s.host / "ssl" / "chain.crt",
                        sslcert=s.host / "ssl" / f"{NODE}.crt", sslkey=s.host / "ssl" / f"{NODE}.key")
    assert row.client_dn == f"/CN={NODE}"


def test_renew_intermediate_then_root_keeps_the_old_leaves_connecting(stack: Stack) -> None:
    s = stack
    leaf = s.pki.manifest.certificates[NODE].sha256
    s.step("renew intermediate", "renew", "intermediate")
    s.step("renew root", "renew", "root")
    s.step("finish", "rotate", "finish")
    assert_no_refusal(s)
    assert s.pki.manifest.certificates[NODE].sha256 == leaf  # the same leaves throughout
