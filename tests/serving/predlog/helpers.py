"""Helpers for prediction log tests: real records, settings, and what a store holds.

Reading the store back goes around the log (plain psycopg / sqlite3 as the owner), so a
test checks what is really in the table, not what the log's own queries say.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import psycopg
from prometheus_client import CollectorRegistry
from sklearn.datasets import load_breast_cancer

from serving.predlog import open_log
from serving.predlog.log import DurablePredictionLog
from serving.predlog.postgres import PostgresStore
from serving.predlog.records import ModelSchema, PredictionRecord
from serving.predlog.sql import COLUMN_NAMES
from serving.predlog.sqlite import SqliteStore
from serving.settings import Settings

_DATA = load_breast_cancer()
FEATURES: tuple[str, ...] = tuple(_DATA.feature_names)
CLASSES = ("malignant", "benign")
SCHEMA = ModelSchema("breast_cancer", "20240101-000000-000000", FEATURES, CLASSES)


def make_record(
    rows: int = 1,
    *,
    request_id: str | None = None,
    schema: ModelSchema = SCHEMA,
    seed: int | None = None,
    client_id: str | None = None,
) -> PredictionRecord:
    """A record like the API builds: real breast-cancer rows, probabilities summing to 1."""
    rng = np.random.default_rng(seed)
    features = _DATA.data[rng.integers(0, len(_DATA.data), size=rows)][
        :, : len(schema.feature_names)
    ]
    p = rng.random(rows)
    classes = schema.classes
    return PredictionRecord(
        request_id=request_id or str(uuid.uuid4()),
        created_at=time.time(),
        model=schema,
        features=np.ascontiguousarray(features, dtype=np.float64),
        predictions=[CLASSES[int(x > 0.5)] for x in p] if classes else list(p * 10),
        probabilities=np.column_stack([1 - p, p]) if classes else None,
        latency_ms=float(rng.uniform(0.5, 20)),
        client_id=client_id,
    )


def settings_for(url: str, spool_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": url,
        "spool_dir": spool_dir,
        "log_flush_interval_seconds": 0.05,
        "log_retry_max_seconds": 1.0,
        **overrides,
    }
    return Settings(**values)


def open_started(
    url: str, spool_dir: Path, registry: CollectorRegistry | None = None, **overrides: Any
) -> DurablePredictionLog:
    log = open_log(settings_for(url, spool_dir, **overrides), registry or CollectorRegistry())
    assert isinstance(log, DurablePredictionLog)
    log.start()
    return log


def expected_keys(records: Sequence[PredictionRecord]) -> Counter[tuple[str, int]]:
    return Counter((r.request_id, i) for r in records for i in range(len(r.features)))


def _sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite:///")


def query(url: str, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Run one SELECT as the owner; ``?`` placeholders on SQLite, ``%s`` on PostgreSQL."""
    if url.startswith("sqlite:///"):
        with sqlite3.connect(_sqlite_path(url)) as conn:
            return conn.execute(statement.replace("%s", "?"), params).fetchall()
    with psycopg.connect(url) as conn:
        return conn.execute(statement, params).fetchall()


def stored_keys(url: str) -> Counter[tuple[str, int]]:
    rows = query(url, "SELECT request_id, row_index FROM predictions")
    return Counter((str(rid), int(index)) for rid, index in rows)


def wait_for_rows(url: str, count: int, timeout: float = 30.0) -> int:
    """Poll until the table holds ``count`` rows; returns what it holds at the end."""
    deadline = time.monotonic() + timeout
    found = -1
    while time.monotonic() < deadline:
        try:
            found = int(query(url, "SELECT count(*) FROM predictions")[0][0])
        except (psycopg.Error, sqlite3.Error):
            found = -1
        if found >= count:
            return found
        time.sleep(0.05)
    return found


def metric(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def migrate(url: str) -> None:
    """Create the store's tables (no server needed)."""
    store = PostgresStore(url) if url.startswith("postgresql://") else SqliteStore(url)
    try:
        store.open()
        store.prepare()
    finally:
        store.close()


def insert_rows(url: str, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows as they would be logged, around the log: for values the API cannot send yet
    (typed features) and shapes a test needs exactly. ``created_at`` is ISO 8601 UTC text
    with microseconds and Z; features and probabilities are JSON text."""
    names = ", ".join(COLUMN_NAMES)
    if url.startswith("sqlite:///"):
        marks = ", ".join(f":{name}" for name in COLUMN_NAMES)
        with sqlite3.connect(_sqlite_path(url)) as conn:
            conn.executemany(f"INSERT INTO predictions ({names}) VALUES ({marks})", rows)
        return
    casts = {"features": "::json", "probabilities": "::json", "created_at": "::timestamptz"}
    marks = ", ".join(f"%({name})s{casts.get(name, '')}" for name in COLUMN_NAMES)
    with psycopg.connect(url) as pg, pg.cursor() as cur:
        cur.executemany(f"INSERT INTO predictions ({names}) VALUES ({marks})", rows)


PENGUIN = {
    "island": "Biscoe",
    "bill_length_mm": None,
    "flipper_length_mm": 181.0,
    "sex": "female",
    "tagged": True,
}
"""Typed features as the API logs them: a category, a missing number, a number, a boolean."""


def row(
    *,
    request_id: str | None = None,
    row_index: int = 0,
    created_at: str = "2026-11-28T06:14:47.555610Z",
    model_name: str = "penguins",
    model_version: str = "v1",
    features: dict[str, Any] | None = None,
    prediction: str = "Adelie",
    probabilities: dict[str, float] | None = None,
    latency_ms: float = 1.25,
    client_id: str | None = None,
    client_request_id: str | None = None,
) -> dict[str, Any]:
    """One logged row for ``insert_rows``, typed penguin features by default."""
    return {
        "request_id": request_id or str(uuid.uuid4()),
        "row_index": row_index,
        "created_at": created_at,
        "model_name": model_name,
        "model_version": model_version,
        "features": orjson.dumps(PENGUIN if features is None else features).decode(),
        "prediction": prediction,
        "probabilities": None if probabilities is None else orjson.dumps(probabilities).decode(),
        "latency_ms": latency_ms,
        "client_id": client_id,
        "client_request_id": client_request_id,
    }
