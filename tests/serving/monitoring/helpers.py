"""Helpers for monitoring tests: reference profiles, registry versions, a real log's rows.

Profiles are built as metadata schema 2 defines them (serving/artifact/metadata.py): deciles
of the non-missing values made unique as edges, numpy's histogram as counts. Rows go into
the store through ``write_as_logged``: in its documented columns, encoded and written as
the server logs them (features keyed by name with values typed as sent).
"""

from __future__ import annotations

import sqlite3
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from serving import artifact
from serving.artifact import CategoryProfile, Metadata, NumberProfile, ReferenceProfile
from serving.monitoring.queries import LiveSource, open_source
from serving.predlog import sqlite as sqlite_store
from serving.predlog.log import is_postgres
from serving.predlog.postgres import PostgresStore
from serving.predlog.sqlite import SqliteStore
from tests.serving.predlog.helpers import write_as_logged


def number_profile(values: Iterable[float | None]) -> NumberProfile:
    array = np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
    present = array[~np.isnan(array)]
    edges = np.unique(np.quantile(present, np.linspace(0, 1, 11)))
    counts = np.histogram(present, edges)[0] if edges.size >= 2 else np.array([], dtype=int)
    return NumberProfile(
        edges=[float(e) for e in edges],
        counts=[int(c) for c in counts],
        missing=int(np.isnan(array).sum()),
        mean=float(present.mean()),
        std=float(present.std()),
    )


def category_profile(values: Iterable[str | None]) -> CategoryProfile:
    found = list(values)
    counts = Counter(v for v in found if v is not None)
    return CategoryProfile(counts={k: counts[k] for k in sorted(counts)}, missing=found.count(None))


def save_version(
    models_dir: Path,
    metadata: Metadata,
    pipeline: Any,
    *,
    version: str | None = None,
    reference: ReferenceProfile | None = None,
    current: bool = True,
) -> Metadata:
    """Save ``pipeline`` as a new version with ``metadata`` (version and reference replaced)."""
    changes: dict[str, Any] = {"reference": reference}
    if version is not None:
        changes["version"] = version
    saved = metadata.model_copy(update=changes)
    artifact.save(models_dir, saved, pipeline)
    if current:
        artifact.write_current(models_dir, saved.name, saved.version)
    return saved


def migrate(url: str) -> None:
    store = PostgresStore(url) if is_postgres(url) else SqliteStore(url)
    store.open()
    try:
        store.prepare()
    finally:
        store.close()


@dataclass(frozen=True)
class Logged:
    """One ``predictions`` row."""

    model_name: str
    model_version: str
    features: dict[str, Any]
    prediction: str
    created_at: datetime
    probabilities: dict[str, float] | None = None
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    row_index: int = 0


_INSERT = (
    "INSERT INTO predictions (request_id, row_index, created_at, model_name, model_version,"
    " features, prediction, probabilities, latency_ms) VALUES ({})"
)


def insert_predictions(url: str, rows: Sequence[Logged]) -> None:
    """Write ``rows`` to the (migrated) store in one transaction."""
    params = [_params(r) for r in rows]
    if is_postgres(url):
        names = (
            "request_id", "row_index", "created_at", "model_name", "model_version", "features",
            "prediction", "probabilities", "latency_ms",
        )  # fmt: skip
        write_as_logged(url, [dict(zip(names, p, strict=True)) for p in params])
        return
    texts = [(p[0], p[1], sqlite_store.to_text(p[2]), *p[3:]) for p in params]
    with sqlite3.connect(sqlite_store.path_of(url)) as lite:
        lite.executemany(_INSERT.format(", ".join("?" * 9)), texts)


def _params(row: Logged) -> tuple[Any, ...]:
    probabilities = None if row.probabilities is None else orjson.dumps(row.probabilities)
    return (
        row.request_id, row.row_index, row.created_at, row.model_name, row.model_version,
        orjson.dumps(row.features).decode(), row.prediction,
        None if probabilities is None else probabilities.decode(), 1.0,
    )  # fmt: skip


def source(url: str) -> LiveSource:
    return open_source(url)


def at(unix: float) -> datetime:
    return datetime.fromtimestamp(unix, UTC)


def reference_of(
    X: np.ndarray, feature_names: Sequence[str], predictions: Sequence[Any], *, task: str
) -> ReferenceProfile:
    """A training reference profile of a numeric matrix and the model's predictions on it."""
    features: dict[str, NumberProfile | CategoryProfile] = {
        name: number_profile(X[:, i].tolist()) for i, name in enumerate(feature_names)
    }
    predicted = (
        category_profile([str(p) for p in predictions])
        if task == "classification"
        else number_profile([float(p) for p in predictions])
    )
    return ReferenceProfile(
        source="training", rows=int(X.shape[0]), features=features, predictions=predicted
    )
