"""The Python examples of docs/*.md, as the pages show them, for the tests that run them."""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"


def python_block(page: str, heading: str) -> str:
    """The first ```python block after the heading `heading` (any level) of `docs/page`."""
    text = (DOCS / page).read_text()
    start = re.search(rf"^#+ {re.escape(heading)}$", text, re.M)
    assert start, f"{page} has no heading {heading!r}"
    block = re.compile(r"^```python\n(.*?)^```", re.M | re.S).search(text, start.end())
    assert block, f"{page}, {heading!r}: no python block after it"
    return block.group(1)
