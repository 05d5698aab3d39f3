"""`python -m pgkongtls`."""

from pgkongtls.cli import run

run()
