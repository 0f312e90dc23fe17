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
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import psycopg
from prometheus_client import CollectorRegistry
from sklearn.datasets import load_breast_cancer

from serving.predlog import frames, legacy, open_log
from serving.predlog.log import DurablePredictionLog
from serving.predlog.postgres import PostgresStore
from serving.predlog.reader import Rows
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
    """Write rows as they would be logged, around the log: for shapes and times a test needs
    exactly. ``created_at`` is ISO 8601 UTC text with microseconds and Z; features and
    probabilities are JSON text."""
    write_as_logged(url, rows)


def write_as_logged(url: str, rows: Sequence[dict[str, Any]]) -> None:
    """Write rows to the store the way the server does: records (a request's rows are those
    of one request_id, row_index 0, 1, ...), encoded as the spool does, through the store.

    A classifier logged without probabilities gets the labels seen so far as its classes
    (those already stored first, so stored label indexes keep their meaning)."""
    ordered = sorted(rows, key=lambda r: (str(r["request_id"]), int(r["row_index"])))
    fields = [[_copy_text(name, row.get(name)) for name in COLUMN_NAMES] for row in ordered]
    lost: dict[str, int] = {}
    records = legacy.to_records(fields, lost)
    assert not lost, f"rows that a server could not have logged: {lost}"
    for record in records:
        indexes = [int(r["row_index"]) for r in ordered if r["request_id"] == record.request_id]
        assert indexes == list(range(len(indexes))), "a request's rows are 0, 1, ..."
    if not url.startswith("sqlite:///"):
        with psycopg.connect(url, autocommit=True) as conn:
            records = [_known_classes(conn, record) for record in records]
    by_model: dict[ModelSchema, list[PredictionRecord]] = {}
    for record in records:
        by_model.setdefault(record.model, []).append(record)
    batch = Rows()
    for schema, group in by_model.items():
        encoder = frames.RequestEncoder(schema)
        batch.models[encoder.model.key] = encoder.model
        batch.add(encoder.encode(group), sum(len(r.predictions) for r in group))
    store = SqliteStore(url) if url.startswith("sqlite:///") else PostgresStore(url)
    store.open()
    try:
        store.write(store.encode(batch))
    finally:
        store.close()


def _copy_text(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if name == "created_at":
        moment = (
            datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            if isinstance(value, str)
            else value
        )
        return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")
    if name in ("features", "probabilities") and not isinstance(value, str):
        return orjson.dumps(value).decode()
    return str(value)


def _known_classes(conn: psycopg.Connection[Any], record: PredictionRecord) -> PredictionRecord:
    schema = record.model
    if schema.classes is None or record.probabilities is not None:
        return record
    found = conn.execute(
        "SELECT classes FROM prediction_models WHERE model_key = %s",
        (frames.model_key(schema.name, schema.version),),
    ).fetchone()
    stored = list(found[0]) if found and found[0] else []
    classes = tuple(stored + [c for c in schema.classes if c not in stored])
    if stored and list(classes) != stored:
        conn.execute(
            "UPDATE prediction_models SET classes = %s WHERE model_key = %s",
            (list(classes), frames.model_key(schema.name, schema.version)),
        )
    return replace(record, model=replace(schema, classes=classes))


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
