"""examples/ is generated: this test re-renders every snippet and fails on any difference.

To refresh after an intended change: PGKONGTLS_REGEN_EXAMPLES=1 ./scripts/test tests/test_examples.py
The inputs are the committed manifests examples/<shape>/pgkongtls.json (made by
`pgkongtls init`/`self-signed --test` with the names in examples/README.md).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pgkongtls import render
from pgkongtls.manifest import MANIFEST_NAME, loads

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SHAPES = ("intermediate", "root", "self-signed")
FILES = render.Files(pg_dir="/etc/postgresql/ssl", kong_dir="/etc/kong/ssl")
#: The snippets that change for open-source Kong (no client certificate, scram).
OSS_DIFFERS = ("kong.conf.snippet", "kong.env", "pg_hba.conf.snippet")


def generate(shape: str) -> dict[str, str]:
    """Every example file of one shape, by path relative to examples/<shape>/."""
    m = loads((EXAMPLES / shape / MANIFEST_NAME).read_text())
    out = render.render_all(m, FILES)
    oss = render.render_all(m, FILES, edition="oss")
    out |= {f"oss/{name}": oss[name] for name in OSS_DIFFERS}
    return out


@pytest.mark.parametrize("shape", SHAPES)
def test_examples_are_up_to_date(shape: str) -> None:
    expected = generate(shape)
    base = EXAMPLES / shape
    if os.environ.get("PGKONGTLS_REGEN_EXAMPLES"):
        for rel, text in expected.items():
            (base / rel).parent.mkdir(parents=True, exist_ok=True)
            (base / rel).write_text(text)
    on_disk = {str(p.relative_to(base)): p.read_text() for p in base.rglob("*") if p.is_file() and p.name != MANIFEST_NAME}
    assert on_disk == expected
