"""The commands of the runnable docs pages work as written (tests/doccommands.py says how).

Pages listed here run every ``bash``/``python`` block not marked ``<!-- test: skip (…) -->``
against a server started as ``make run`` starts it. Pages tested by their own stream, or
whose commands need what this machine has not (a cluster), are listed with the reason; any
other page may show commands only in blocks marked as skipped, so that a new page's commands
cannot go untested unnoticed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.doccommands import ROOT, blocks, run_page

DOCS = ROOT / "docs"
RUNNABLE = ["getting-started.md", "serving.md", "operations.md", "from-notebook.md"]
ELSEWHERE = {
    "monitoring.md": "tests/serving/monitoring/test_docs.py runs its commands and SQL",
    "training.md": "tests/training/test_docs.py runs its commands and Python in order",
    "prediction-log.md": "tests/serving/predlog/test_docs.py runs its commands and SQL",
    "log-layout.md": "python -m bench.layouts takes minutes of PostgreSQL load: a measurement",
    "kubernetes.md": "needs a cluster; make kube-test plays the manifests with podman",
}


@pytest.mark.slow
@pytest.mark.parametrize("page", RUNNABLE)
def test_page_commands_run_as_written(page: str, tmp_path: Path) -> None:
    assert run_page(DOCS / page, tmp_path) > 0


@pytest.mark.parametrize("page", sorted(p.name for p in DOCS.glob("*.md")))
def test_commands_outside_runnable_pages_are_marked_skipped(page: str) -> None:
    """A page not run here may show commands only in blocks that say why they do not run."""
    if page in RUNNABLE:
        pytest.skip("its commands run here")
    if page in ELSEWHERE:
        pytest.skip(ELSEWHERE[page])
    unmarked = [b.line for b in blocks(DOCS / page) if b.skip is None]
    assert not unmarked, (
        f"docs/{page}: blocks at lines {unmarked} run nowhere: list the page in RUNNABLE, or "
        "mark each block <!-- test: skip (why) -->"
    )
