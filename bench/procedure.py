"""Run the source document's openssl procedure for timing, one process per command.

The command list is the shared one in tests/openssl_procedure.py (the document's
own strings). Tests run them through `sh -c`; here each command is exec'd
directly, as an operator's interactive shell would (fork + exec, no extra
`sh`), so the baseline is not slowed by a shell start per step. `cat a > b`
and `cat a >> b` get their stdout redirected, exactly what the shell does.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from openssl_procedure import source_commands


def run_procedure(directory: Path, chain: str = "intermediate") -> None:
    """Run every step of the document's `chain` procedure in `directory` (created if missing)."""
    directory.mkdir(parents=True, exist_ok=True)
    for command in source_commands(chain):
        argv = shlex.split(command)
        fd = subprocess.DEVNULL
        if len(argv) > 2 and argv[-2] in (">", ">>"):
            mode = os.O_TRUNC if argv[-2] == ">" else os.O_APPEND
            fd = os.open(directory / argv[-1], os.O_WRONLY | os.O_CREAT | mode, 0o644)
            argv = argv[:-2]
        try:
            subprocess.run(argv, cwd=directory, check=True, stdout=fd, stderr=subprocess.DEVNULL)
        finally:
            if fd != subprocess.DEVNULL:
                os.close(fd)


if __name__ == "__main__":
    out = Path(sys.argv[1])
    run_procedure(out, sys.argv[2] if len(sys.argv) > 2 else "intermediate")
    print(f"{len(source_commands('intermediate'))} commands run in {out}")
