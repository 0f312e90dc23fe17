"""The README's tour runs as written, and its links lead somewhere.

The tour's commands run for real (tests/doccommands.py: a scratch clone, a server started
as ``make run`` starts it, every ``bash`` block in order, each output checked against the
README's ``# →`` lines).
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.doccommands import ROOT, blocks, run_page

README = ROOT / "README.md"


def test_readme_tour_runs_as_written(tmp_path: Path) -> None:
    ran = run_page(README, tmp_path)
    assert ran >= 10


def test_readme_skips_only_what_needs_a_foreground_server_or_docker() -> None:
    skipped = [b for b in blocks(README) if b.skip is not None]
    commands = [c.text.split()[:2] for b in skipped for c in b.commands]
    assert all(c[0] in {"make", "docker", "curl"} for c in commands), commands
    assert ["make", "run"] in commands
    assert ["docker", "compose"] in commands


def test_readme_is_short() -> None:
    assert len(README.read_text().splitlines()) <= 250


def test_readme_links_lead_to_files_in_the_checkout() -> None:
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README.read_text()):
        if target.startswith(("http://", "https://")):
            continue
        assert (ROOT / target).exists(), target


def test_make_run_installs_runtime_dependencies_only() -> None:
    makefile = (ROOT / "Makefile").read_text()
    runtime = makefile.split("$(RUNTIME_STAMP): ", 1)[1].split("\n\n", 1)[0]
    assert "-e ." in runtime
    assert "[dev]" not in runtime
    assert re.search(r"^run: \$\(RUNTIME_STAMP\)$", makefile, re.MULTILINE)
    recipe = makefile.split("\nrun: $(RUNTIME_STAMP)\n", 1)[1].split("\n\n", 1)[0]
    assert recipe.split("\n") == [
        "\t$(BIN)/python -m training train --if-missing",
        "\t$(BIN)/python -m serving serve",
    ]
