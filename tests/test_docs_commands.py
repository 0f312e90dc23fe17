"""The commands of the runnable docs pages work as written (tests/doccommands.py says how).

Pages listed here run every ``bash``/``python`` block not marked ``<!-- test: skip (…) -->``
against a server started as ``make run`` starts it; docs/monitoring.md has its own test
(tests/serving/monitoring/test_docs.py). Other pages hold no commands meant to run here
(Docker, Kubernetes, the benchmark) and are checked for exactly that.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.doccommands import ROOT, blocks, run_page

DOCS = ROOT / "docs"
RUNNABLE = ["getting-started.md", "serving.md", "operations.md", "from-notebook.md"]
TESTED_ELSEWHERE = {"monitoring.md"}


@pytest.mark.slow
@pytest.mark.parametrize("page", RUNNABLE)
def test_page_commands_run_as_written(page: str, tmp_path: Path) -> None:
    assert run_page(DOCS / page, tmp_path) > 0


@pytest.mark.parametrize("page", sorted(p.name for p in DOCS.glob("*.md")))
def test_commands_outside_runnable_pages_are_marked_skipped(page: str) -> None:
    """A page not run here may show commands only in blocks that say why they do not run."""
    if page in RUNNABLE or page in TESTED_ELSEWHERE:
        pytest.skip("its commands run")
    unmarked = [b.line for b in blocks(DOCS / page) if b.skip is None]
    assert not unmarked, f"docs/{page}: runnable blocks at lines {unmarked} run nowhere"
