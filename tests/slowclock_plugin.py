"""A slow machine on demand: sleep between collection and the first test.

Collection imports every test module, so a clock read at import time (a
module-level `utcnow()`) goes stale while the first tests run. On a busy 2-core
machine that gap reached 6 to 10 minutes; this plugin makes it reproducible:

    PGKONGTLS_PAUSE_AFTER_COLLECT=360 .venv/bin/python -m pytest -m 'not realstack'

or `--pause-after-collect=360`. Without either it does nothing.
"""

from __future__ import annotations

import os
import time

import pytest

ENV = "PGKONGTLS_PAUSE_AFTER_COLLECT"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--pause-after-collect", type=float, default=None, metavar="SECONDS",
                     help=f"sleep this long after collection, before the first test (or set {ENV})")


def pause_seconds(config: pytest.Config) -> float:
    """The requested pause: the option wins over the environment; 0 when neither is given."""
    opt = config.getoption("--pause-after-collect")
    if opt is not None:
        return float(opt)
    return float(os.environ.get(ENV) or 0)


def pytest_collection_finish(session: pytest.Session) -> None:
    seconds = pause_seconds(session.config)
    if seconds > 0:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"slowclock: pausing {seconds:g} s after collection")
        time.sleep(seconds)
