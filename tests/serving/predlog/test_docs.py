"""docs/prediction-log.md works as written: its `log` commands, its pandas code, its SQL on each
store, against a log holding a classifier, a regressor and a model with typed features."""

from __future__ import annotations

import os
import re
import runpy
import shlex
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from serving.predlog.records import ModelSchema
from serving.predlog.sqlite import to_text
from tests.serving.predlog.helpers import SCHEMA, insert_rows, make_record, open_started, row

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "prediction-log.md"
COMMAND = ".venv/bin/python -m serving log "
DIABETES = ModelSchema("diabetes", "20261128-070512-120033", SCHEMA.feature_names[:10], None)


def blocks(language: str) -> list[str]:
    """The doc's fenced blocks of ``language`` (top-level fences only)."""
    return re.findall(rf"^```{language}\n(.*?)^```", DOC.read_text(), flags=re.M | re.S)


def fill(url: str, spool: Path) -> None:
    """The models the doc's examples name: breast_cancer, diabetes, penguins (typed)."""
    log = open_started(url, spool)
    log.append([make_record(rows=1 + i % 3, seed=i) for i in range(20)])
    log.append([make_record(rows=2, schema=DIABETES, seed=i) for i in range(26)])
    log.close(timeout=30)
    now = to_text(datetime.now(UTC))
    penguins = [row(client_request_id="order-17"), row(features={"island": "Dream"})]
    insert_rows(url, [{**r, "created_at": now} for r in penguins])


def test_the_docs_log_commands_and_pandas_code_run_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(f"sqlite:///{tmp_path / 'var' / 'predictions.db'}", tmp_path / "spool")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATABASE_")}
    commands = [
        line for block in blocks("bash") for line in block.splitlines() if line.startswith(COMMAND)
    ]
    assert len(commands) >= 6
    for command in commands:
        runnable = shlex.quote(sys.executable) + command.removeprefix(".venv/bin/python")
        done = subprocess.run(
            ["bash", "-c", runnable],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, (command, done.stderr)
        assert "Traceback" not in done.stderr
    assert (tmp_path / "diabetes.csv").read_text().startswith("request_id,row_index,created_at")
    assert len((tmp_path / "predictions.jsonl").read_text().splitlines()) == 39 + 52 + 2
    pytest.importorskip("pandas", reason="the pandas example needs pandas (the training extras)")
    monkeypatch.chdir(tmp_path)
    [code] = blocks("python")
    script = tmp_path / "doc_example.py"
    script.write_text(code)
    runpy.run_path(str(script))


@pytest.mark.parametrize("store", ["PostgreSQL", "SQLite"])
def test_the_docs_sql_runs_on_its_store(
    store: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'p.db'}"
        if store == "SQLite"
        else str(request.getfixturevalue("pg_url"))
    )
    fill(url, tmp_path / "spool")
    statements = [
        statement
        for block in blocks("sql")
        if block.startswith(f"-- {store}\n")
        for statement in block.split(";")
        if statement.strip()
    ]
    assert len(statements) >= 4
    for statement in statements:
        assert _rows(url, statement), statement


def _rows(url: str, statement: str) -> list[tuple[object, ...]]:
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return conn.execute(statement).fetchall()
    with psycopg.connect(url) as conn:
        return conn.execute(statement.encode()).fetchall()
