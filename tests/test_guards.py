"""Guards on the test suite itself, so a slow machine cannot break it again.

A clock read while a module is imported (`NOW = utcnow()`) is as old as the
collection when the tests run: on a busy machine the realstack tests take
minutes before the others start, and PKIs minted later were "not yet valid" at
that stale clock. These checks parse every module under tests/ and refuse:
- a clock call in code that runs at import: module and class bodies,
  decorators, default argument values;
- a call to a minting function (init, issue, plan_init, make_server, ...)
  without an explicit `now=`.
Each rule is shown to fail on a sample source string.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

#: Calls that read the wall clock (as attribute or bare name: `dt.datetime.now()`, `utcnow()`, `time.time()`).
CLOCKS = frozenset({"utcnow", "now", "today", "time", "monotonic", "perf_counter", "time_ns"})

#: pgkongtls functions that mint certificates or CRLs and take `now`.
MINTERS = frozenset({
    "init", "self_signed", "issue", "renew", "revoke", "refresh_crl", "plan_init", "plan_self_signed",
    "make_root", "make_intermediate", "make_server", "make_client", "plan_issue", "plan_renew", "plan_revoke",
    "plan_crl",
})
MINTER_MODULES = frozenset({"ops", "pki", "certs", "lifecycle"})


def _called_name(call: ast.Call) -> str | None:
    f = call.func
    if isinstance(f, ast.Attribute):
        return f.attr
    if isinstance(f, ast.Name):
        return f.id
    return None


def _import_time_nodes(tree: ast.Module) -> Iterator[ast.AST]:
    """The code that runs when the module is imported: everything but function bodies (and lambdas)."""
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            stack.extend(node.decorator_list)
            stack.extend(node.args.defaults)
            stack.extend(d for d in node.args.kw_defaults if d is not None)
            continue
        if isinstance(node, ast.Lambda):
            stack.extend(node.args.defaults)
            stack.extend(d for d in node.args.kw_defaults if d is not None)
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def import_time_clocks(source: str) -> list[str]:
    """`line: call` for each clock read at import time in `source`."""
    out = []
    for node in _import_time_nodes(ast.parse(source)):
        if isinstance(node, ast.Call) and _called_name(node) in CLOCKS:
            out.append(f"{node.lineno}: {ast.unparse(node.func)}()")
    return sorted(out, key=lambda s: int(s.split(":")[0]))


def mints_without_now(source: str) -> list[str]:
    """`line: call` for each pgkongtls minting call that does not pass `now=`."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        owner = node.func.value
        if not (isinstance(owner, ast.Name) and owner.id in MINTER_MODULES and node.func.attr in MINTERS):
            continue
        if not any(k.arg == "now" or k.arg is None for k in node.keywords):  # **kwargs may carry it
            out.append(f"{node.lineno}: {ast.unparse(node.func)}()")
    return out


def test_modules() -> list[Path]:
    return sorted(TESTS.rglob("*.py"))


test_modules.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


# --------------------------------------------------------------------------- the rules can fail

BAD_CLOCKS = '''
import datetime as dt
import time
from pgkongtls.certs import utcnow

NOW = utcnow()
LATER = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)
STARTED = time.time()


class Fixtures:
    TODAY = dt.date.today()


def helper(at=utcnow()):
    return at


@pytest.mark.parametrize("when", [utcnow()])
def test_x(when):
    pass
'''

GOOD_CLOCKS = '''
import datetime as dt
from pgkongtls.certs import utcnow

FIXED = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)


def helper():
    return utcnow()


@pytest.fixture
def now():
    return dt.datetime.now(dt.timezone.utc)


class TestThing:
    def test_a(self):
        assert utcnow() > FIXED
'''


def test_the_clock_rule_finds_every_import_time_clock_in_a_sample() -> None:
    assert import_time_clocks(BAD_CLOCKS) == [
        "6: utcnow()", "7: dt.datetime.now()", "8: time.time()", "12: dt.date.today()", "15: utcnow()", "19: utcnow()",
    ]


def test_the_clock_rule_passes_clocks_read_inside_functions() -> None:
    assert import_time_clocks(GOOD_CLOCKS) == []


def test_the_now_rule_finds_a_mint_without_now_in_a_sample() -> None:
    sample = ("def test_a(tmp_path, now):\n"
              "    ops.init(tmp_path, InitOptions())\n"
              "    ops.init(tmp_path, InitOptions(), now=now)\n"
              "    fs = pki.plan_init(pki.InitOptions(chain='root'))\n"
              "    certs.make_client(cn='k', key=k, issuer=None, **opts)\n")
    assert mints_without_now(sample) == ["2: ops.init()", "4: pki.plan_init()"]


# --------------------------------------------------------------------------- the suite keeps them


@pytest.mark.parametrize("module", test_modules(), ids=lambda p: str(p.relative_to(TESTS)))
def test_no_module_reads_a_clock_at_import_time(module: Path) -> None:
    assert import_time_clocks(module.read_text(encoding="utf-8")) == [], (
        f"{module.name} reads a clock at import time; take `now` from a fixture or inside the test")


@pytest.mark.parametrize("module", test_modules(), ids=lambda p: str(p.relative_to(TESTS)))
def test_every_mint_passes_now(module: Path) -> None:
    assert mints_without_now(module.read_text(encoding="utf-8")) == [], (
        f"{module.name} mints without `now=`; pass the clock the test checks at")


def test_the_guards_see_the_whole_suite() -> None:
    """The parametrization above covers tests/ and tests/realstack/ (a glob that finds nothing would pass)."""
    names = {str(p.relative_to(TESTS)) for p in test_modules()}
    assert {"test_verify.py", "conftest.py", "realstack/conftest.py", "test_guards.py"} <= names
