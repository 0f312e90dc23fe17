"""Queries made for clients are bounded on both stores: statement time, cancellation, logging."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from serving.predlog.log import DurablePredictionLog
from serving.predlog.queries import Filters, Queries
from serving.predlog.reading import SHUTTING_DOWN, UNREADABLE, QueryUnavailableError
from serving.predlog.stats import VersionStats
from serving.predlog.threads import ProblemLog
from tests.serving.predlog.helpers import open_started

MANY_ROWS = """
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 499999)
INSERT INTO predictions (request_id, row_index, created_at, model_name, model_version,
                         features, prediction, latency_ms)
SELECT printf('%08x-0000-4000-8000-000000000000', i), 0, '2026-01-01T00:00:00.000000Z',
       'm', 'v', '{"a": 1}', 'c' || (i % 7), 1.0
FROM n"""


@contextlib.contextmanager
def slow_queries(url: str) -> Iterator[None]:
    """Make every query of ``url`` slow: PostgreSQL waits on a lock, SQLite scans 500k rows
    (statistics over them take seconds)."""
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.execute(MANY_ROWS)
        yield
        return
    with psycopg.connect(url) as locker:
        locker.execute("LOCK TABLE predictions IN ACCESS EXCLUSIVE MODE")
        yield


def stats(log: DurablePredictionLog) -> list[VersionStats]:
    def work(queries: Queries) -> list[VersionStats]:
        return queries.stats(Filters())

    return asyncio.run(log.read(work))


@pytest.fixture
def log(store_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    overrides = getattr(request, "param", {})
    opened = open_started(store_url, tmp_path / "spool", **overrides)
    yield opened
    opened.close(timeout=5)


@pytest.mark.parametrize("log", [{"database_statement_timeout_seconds": 0.2}], indirect=True)
def test_a_query_past_the_statement_timeout_is_refused(
    store_url: str, log: DurablePredictionLog
) -> None:
    with slow_queries(store_url):
        started = time.monotonic()
        with pytest.raises(QueryUnavailableError, match=UNREADABLE):
            stats(log)
        assert time.monotonic() - started < 0.2 + 1.5


@pytest.mark.parametrize("log", [{"database_statement_timeout_seconds": 60}], indirect=True)
def test_cancel_queries_ends_running_queries_and_refuses_new_ones(
    store_url: str, log: DurablePredictionLog
) -> None:
    async def cancel_soon() -> float:
        query = asyncio.ensure_future(log.read(lambda queries: queries.stats(Filters())))
        await asyncio.sleep(0.5)
        assert not query.done()
        cancelled = time.monotonic()
        log.cancel_queries()
        with pytest.raises(QueryUnavailableError, match=SHUTTING_DOWN):
            await query
        return time.monotonic() - cancelled

    with slow_queries(store_url):
        assert asyncio.run(cancel_soon()) < 1.5
    with pytest.raises(QueryUnavailableError, match=SHUTTING_DOWN):
        asyncio.run(log.query_page(Filters(), 10, None))


def test_a_problem_is_logged_once_per_interval_with_its_repeats(
    caplog: pytest.LogCaptureFixture,
) -> None:
    problems = ProblemLog(logging.getLogger("test"), every=0.2)
    with caplog.at_level(logging.WARNING, "test"):
        for _ in range(5):
            problems.report("database down")
        problems.report("permission denied")
        time.sleep(0.25)
        problems.report("database down")
    assert [r.getMessage() for r in caplog.records] == [
        "cannot read the prediction log: database down",
        "cannot read the prediction log: permission denied",
        "cannot read the prediction log: database down (and 4 times more since it was last logged)",
    ]
