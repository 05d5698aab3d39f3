"""Shell completion as the README documents it: click's `_PGKONGTLS_COMPLETE` sources for bash, zsh and fish.

The bash case sources the script in a real bash and calls its completion function the way
bash's `complete -F` does, so the whole round trip (script, pgkongtls, lazy commands) is checked.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from . import cmdrun


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PATH": f"{cmdrun.BIN}{os.pathsep}{os.environ.get('PATH', '')}", **extra}


@pytest.mark.parametrize(("shell", "marker"), [
    ("bash", "complete -o nosort -F _pgkongtls_completion pgkongtls"), ("zsh", "#compdef pgkongtls"),
    ("fish", 'complete --no-files --command pgkongtls --arguments "(_pgkongtls_completion)"'),
])
def test_completion_source_command_prints_the_script(shell: str, marker: str) -> None:
    r = subprocess.run(["pgkongtls"], env=_env(_PGKONGTLS_COMPLETE=f"{shell}_source"), capture_output=True,
                       text=True, timeout=60)
    assert (r.returncode, r.stderr) == (0, "") and marker in r.stdout


def test_completion_with_an_unknown_shell_prints_no_script() -> None:
    """Twin: the variable is really what is read (a wrong shell name gives no script)."""
    r = subprocess.run(["pgkongtls"], env=_env(_PGKONGTLS_COMPLETE="tcsh_source"), capture_output=True,
                       text=True, timeout=60)
    assert "complete" not in r.stdout


def _bash_complete(*words: str) -> list[str]:
    script = ('eval "$(_PGKONGTLS_COMPLETE=bash_source pgkongtls)"\n'
              f"COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}\n"
              '_pgkongtls_completion pgkongtls 2>/dev/null; printf "%s\\n" "${COMPREPLY[@]}"')
    r = subprocess.run(["bash", "-c", script], env=_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return [w for w in r.stdout.splitlines() if w]


def test_bash_completes_commands_lazy_ones_included() -> None:
    assert _bash_complete("pgkongtls", "re") == ["render", "renew", "revoke"]


def test_bash_completes_options_and_choices() -> None:
    assert _bash_complete("pgkongtls", "probe", "--host") == ["--hostaddr"]
    assert _bash_complete("pgkongtls", "render", "kub") == ["kubernetes"]
    assert _bash_complete("pgkongtls", "nope") == []  # twin: nothing for a word nothing starts with
