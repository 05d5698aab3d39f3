"""Debian's cfssl (`golang-cfssl`) doing what `pgkongtls init` does, for timing.

The same job as `pgkongtls init --chain intermediate --db-host db.internal
--db-host 10.0.0.5` (root, intermediate, server with DNS + IP SANs, client CN
kong, chain file), with the fewest commands an experienced cfssl user types:
four `cfssl gencert | cfssljson -bare` pipelines (`-initca` for the root, then
`-ca ... -config -profile` for the intermediate, which the `intermediate`
profile's ca_constraint makes a CA with pathlen 0, the server and the client)
and one `cat` for the chain. The JSON files (CSRs and the signing config) are
what that user keeps in a directory; `prepare()` writes them before the clock
starts. Each pipeline's two processes run at once, joined by a pipe, as a shell
runs them.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

KEY = {"algo": "ecdsa", "size": 256}
#: Lifetimes as pgkongtls's defaults: root 10 years, intermediate 5, leaves 1.
CONFIG = {"signing": {"default": {"expiry": "8760h"}, "profiles": {
    "intermediate": {"expiry": "43800h", "usages": ["cert sign", "crl sign"],
                     "ca_constraint": {"is_ca": True, "max_path_len": 0, "max_path_len_zero": True}},
    "server": {"expiry": "8760h", "usages": ["digital signature", "key encipherment", "server auth"]},
    "client": {"expiry": "8760h", "usages": ["digital signature", "key encipherment", "client auth"]},
}}}
CSRS = {
    "root-csr.json": {"CN": "cfssl root CA", "key": KEY, "ca": {"expiry": "87600h"}},
    "intermediate-csr.json": {"CN": "cfssl intermediate CA", "key": KEY},
    "server-csr.json": {"CN": "db.internal", "hosts": ["db.internal", "10.0.0.5"], "key": KEY},
    "client-csr.json": {"CN": "kong", "key": KEY},
}
SIGN = "-config config.json -profile"
#: What the user types, in order.
COMMANDS = [
    "cfssl gencert -initca root-csr.json | cfssljson -bare root",
    f"cfssl gencert -ca root.pem -ca-key root-key.pem {SIGN} intermediate intermediate-csr.json"
    " | cfssljson -bare intermediate",
    f"cfssl gencert -ca intermediate.pem -ca-key intermediate-key.pem {SIGN} server server-csr.json"
    " | cfssljson -bare server",
    f"cfssl gencert -ca intermediate.pem -ca-key intermediate-key.pem {SIGN} client client-csr.json"
    " | cfssljson -bare client",
    "cat intermediate.pem root.pem > chain.pem",
]


def available() -> str | None:
    """None when cfssl and cfssljson are on PATH (installing golang-cfssl with apt if it can), else why not."""
    if shutil.which("cfssl") and shutil.which("cfssljson"):
        return None
    how = "apt-get install golang-cfssl"
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"cfssl is missing: running `{how}`", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        done = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "golang-cfssl"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode == 0 and shutil.which("cfssl") and shutil.which("cfssljson"):
            return None
        return f"`{how}` failed: {done.stderr.strip().splitlines()[-1:] or done.returncode}"
    return f"cfssl is not installed; `{how}` (as root) adds it"


def prepare(directory: Path) -> None:
    """Write the signing config and the CSR files the commands read (not timed: the user has them)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, body in {"config.json": CONFIG, **CSRS}.items():
        (directory / name).write_text(json.dumps(body), encoding="utf-8")


def run_cfssl(directory: Path) -> None:
    """Run COMMANDS in `directory` (prepared), each pipeline's processes at once."""
    for command in COMMANDS:
        stages = [shlex.split(part) for part in command.split(" | ")]
        out = subprocess.DEVNULL
        last = stages[-1]
        if len(last) > 2 and last[-2] == ">":
            out = os.open(directory / last[-1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            stages[-1] = last[:-2]
        try:
            if len(stages) == 1:
                subprocess.run(stages[0], cwd=directory, check=True, stdout=out, stderr=subprocess.DEVNULL)
                continue
            first = subprocess.Popen(stages[0], cwd=directory, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            second = subprocess.Popen(stages[1], cwd=directory, stdin=first.stdout, stdout=out,
                                      stderr=subprocess.DEVNULL)
            assert first.stdout is not None
            first.stdout.close()  # the pipe now belongs to the two children alone, as in a shell
            if first.wait() or second.wait():
                raise subprocess.CalledProcessError(first.returncode or second.returncode, command)
        finally:
            if out != subprocess.DEVNULL:
                os.close(out)


if __name__ == "__main__":
    why = available()
    if why:
        sys.exit(why)
    target = Path(sys.argv[1])
    prepare(target)
    run_cfssl(target)
    print(f"{len(COMMANDS)} commands run in {target}")
