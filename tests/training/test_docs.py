"""docs/training.md's commands work as written: every ``bash`` and ``python`` block runs, in
order, in a copy of the files it uses; a command ending in ``# exit N`` must exit N."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.training.conftest import ROOT, clean_env

DOC = ROOT / "docs" / "training.md"
_BLOCK = re.compile(r"^```(bash|python)\n(.*?)^```", re.MULTILINE | re.DOTALL)
_EXIT = re.compile(r"#\s*exit (\d+)")


def commands(text: str) -> list[tuple[str, str, int]]:
    """(kind, command, expected exit code) for each command of each runnable block."""
    found: list[tuple[str, str, int]] = []
    for kind, body in _BLOCK.findall(text):
        if kind == "python":
            found.append((kind, body, 0))
            continue
        for command in body.replace("\\\n", " ").splitlines():
            line = command.strip()
            if line and not line.startswith("#"):
                expected = _EXIT.search(line)
                found.append((kind, line, int(expected.group(1)) if expected else 0))
    return found


def test_the_doc_has_the_commands_it_promises() -> None:
    text = DOC.read_text()
    runnable = " ".join(command for _, command, _ in commands(text))
    for command in ("train", "register", "convert", "list", "show", "history"):
        assert f"-m training {command} " in runnable, command
    assert "--pipeline notebooks/penguin_pipeline.py:build_pipeline" in runnable
    assert "--trust-pickle" in runnable
    assert "register(" in runnable  # the Python API, in a python block


@pytest.mark.slow
def test_every_command_of_the_training_doc_works_as_written(tmp_path: Path) -> None:
    for folder in ("examples", "notebooks"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("*.ipynb"))
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parents[1])
    env = clean_env()
    for kind, command, expected in commands(DOC.read_text()):
        argv = ["bash", "-c", command] if kind == "bash" else [".venv/bin/python", "-c", command]
        done = subprocess.run(
            argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False
        )
        assert done.returncode == expected, (command, done.stdout[-2000:], done.stderr[-2000:])
        assert "Traceback" not in done.stderr, (command, done.stderr[-2000:])
