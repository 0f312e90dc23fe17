"""Every command and SQL statement of docs/monitoring.md works as written on a real log."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from tests.serving.monitoring.conftest import Zoo
from tests.serving.monitoring.helpers import migrate
from tests.serving.monitoring.test_report import log_traffic

DOC = Path(__file__).resolve().parents[3] / "docs" / "monitoring.md"


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def _commands() -> list[str]:
    return [
        line[2:]
        for block in _blocks("console")
        for line in block.splitlines()
        if line.startswith(("$ python -m serving monitor", "$ python -m serving log feedback"))
    ]


def test_the_doc_shows_every_subcommand() -> None:
    shown = {command.split()[4] for command in _commands()}
    assert shown == {"quality", "drift", "report", "feedback"}


@pytest.fixture(scope="module")
def recent_log(classifiers: Zoo, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A SQLite log whose traffic of both versions ends an hour ago."""
    url = f"sqlite:///{tmp_path_factory.mktemp('doclog') / 'predictions.db'}"
    migrate(url)
    log_traffic(classifiers, url, start=time.time() - 12 * 3600)
    return {"MODELS_DIR": str(classifiers.models_dir), "DATABASE_URL": url}


@pytest.mark.parametrize("command", _commands())
def test_documented_command_runs(command: str, recent_log: dict[str, str], tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_READ_URL", "MODEL_NAME"}}
    argv = shlex.split(command)
    argv[0] = sys.executable
    done = subprocess.run(
        argv, env={**env, **recent_log}, cwd=tmp_path, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()
    if "--out" in argv:
        assert (tmp_path / argv[argv.index("--out") + 1]).stat().st_size > 10_000


def test_documented_sql_runs_on_postgresql(classifiers: Zoo, pg_url: str) -> None:
    migrate(pg_url)
    log_traffic(classifiers, pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for statement in _blocks("sql"):
            conn.execute(statement.encode())
        rows = conn.execute(_blocks("sql")[-1].encode()).fetchall()
    assert rows
    assert all(0 <= accuracy <= 1 for *_, accuracy in rows)
