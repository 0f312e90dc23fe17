"""The documentation site builds strictly, and what the code cites in it exists.

``mkdocs build --strict`` (as ``make docs`` and CI run it) fails on a broken link or anchor,
a nav entry without its page and a page the nav leaves out (mkdocs.yml, ``validation``).
Code comments cite pages and sections as ``docs/serving.md, "Request ids"`` or
``docs/serving.md ("Signals")``: each page must exist and have a heading (or a bold
paragraph lead) starting with the cited words.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CITING = ("serving", "training", "bench", "deploy", "tests", "notebooks")
CITATION = re.compile(r'docs/([a-z0-9-]+\.md)(?:,? \(?"([^"]+)")?')
SUFFIXES = {".py", ".yaml", ".yml", ".sql", ".sh", ".toml"}
# Pages other work streams are writing (mkdocs.yml lists where they go in the nav); a
# citation of one is checked once the page exists.
PENDING = {"training.md", "prediction-log.md", "security.md", "scaling.md", "log-layout.md"}


def _citations() -> list[tuple[str, str, str | None]]:
    found = []
    for folder in CITING:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix not in SUFFIXES or ".venv" in path.parts:
                continue
            for page, section in CITATION.findall(path.read_text(errors="replace")):
                found.append((path.relative_to(ROOT).as_posix(), page, section or None))
    return found


def _leads(page: Path) -> list[str]:
    """Headings and bold paragraph leads, the places a citation may point at."""
    text = page.read_text()
    headings = re.findall(r"^#{1,6} (.+)$", text, re.MULTILINE)
    bold = re.findall(r"^\*\*([^*]+)\*\*", text, re.MULTILINE)
    return [h.replace("`", "") for h in headings + bold]


def test_the_code_cites_something() -> None:
    assert len(_citations()) >= 5


@pytest.mark.parametrize(("source", "page", "section"), _citations())
def test_cited_page_and_section_exist(source: str, page: str, section: str | None) -> None:
    path = ROOT / "docs" / page
    if page in PENDING and not path.exists():
        pytest.skip(f"docs/{page} has not landed yet")
    assert path.exists(), f"{source} cites docs/{page}, which does not exist"
    if section is not None:
        leads = _leads(path)
        assert any(lead.startswith(section) for lead in leads), (
            f'{source} cites docs/{page}, "{section}": no such section in {leads}'
        )


def test_site_builds_strictly(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "serving" / "index.html").exists()
