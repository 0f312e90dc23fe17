"""Live quality from a real log and real labels equals scikit-learn's on the same rows."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    log_loss,
    mean_absolute_error,
    r2_score,
    root_mean_squared_error,
)

from serving.monitoring.quality import quality, quality_over_time
from serving.monitoring.queries import Window
from serving.monitoring.registry import MonitoringInputError, Registry
from serving.predlog.feedback import FeedbackRecord
from serving.predlog.log import is_postgres
from serving.predlog.postgres import PostgresStore
from serving.predlog.records import ModelSchema, PredictionRecord
from serving.predlog.sqlite import SqliteStore
from tests.serving.monitoring.conftest import Zoo
from tests.serving.monitoring.helpers import at, source
from tests.serving.predlog.helpers import open_started

T0 = 1_790_000_000.0
BATCH = 10


@dataclass
class Served:
    """What was logged for one version: rows' keys, predictions, probabilities, true labels."""

    keys: list[tuple[str, int]]
    predicted: np.ndarray
    probabilities: np.ndarray | None
    truth: np.ndarray
    times: list[float]


def _serve(zoo: Zoo, url: str, spool: Path, version: int, rows: slice, start: float) -> Served:
    """Predict ``rows`` with a version's pipeline and log them through the real log."""
    metadata, trained = zoo.versions[version]
    X, y = zoo.dataset.X[rows], zoo.dataset.y[rows]
    pipeline = trained.pipeline
    classes = tuple(str(c) for c in pipeline.classes_) if hasattr(pipeline, "classes_") else None
    schema = ModelSchema(metadata.name, metadata.version, tuple(zoo.dataset.feature_names), classes)
    predicted = pipeline.predict(X)
    probabilities = pipeline.predict_proba(X) if classes else None
    records, keys, times = [], [], []
    for first in range(0, len(X), BATCH):
        rid, moment = str(uuid.uuid4()), start + 60.0 * first
        part = slice(first, first + BATCH)
        records.append(
            PredictionRecord(
                request_id=rid, created_at=moment, model=schema, features=X[part],
                predictions=[str(p) for p in predicted[part]] if classes else predicted[part],
                probabilities=None if probabilities is None else probabilities[part],
                latency_ms=1.0,
            )
        )  # fmt: skip
        keys += [(rid, i) for i in range(len(X[part]))]
        times += [moment] * len(X[part])
    log = open_started(url, spool)
    log.append(records)
    log.close(timeout=30)
    return Served(keys, predicted, probabilities, y, times)


def _label(url: str, records: list[FeedbackRecord]) -> None:
    store = PostgresStore(url) if is_postgres(url) else SqliteStore(url)
    store.open()
    try:
        store.write_feedback(records)
    finally:
        store.close()


def _labels(
    served: Served, chosen: list[int], value: Any = None, at: float = T0
) -> list[FeedbackRecord]:
    return [
        FeedbackRecord(*served.keys[i], served.truth[i].item() if value is None else value, at)
        for i in chosen
    ]


@pytest.fixture
def classified(classifiers: Zoo, store_url: str, tmp_path: Path) -> tuple[Served, Served]:
    """v1 answers rows 0-149 from T0, v2 rows 150-299 from T0 + 4 h; some labels replaced."""
    v1 = _serve(classifiers, store_url, tmp_path / "s1", 0, slice(0, 150), T0)
    v2 = _serve(classifiers, store_url, tmp_path / "s2", 1, slice(150, 300), T0 + 4 * 3600)
    wrong = [i for i in range(0, 150, 2) if i % 10 == 0]
    _label(store_url, _labels(v1, wrong, value="surely wrong", at=T0 + 1))
    _label(store_url, _labels(v1, list(range(0, 150, 2)), at=T0 + 2))  # replaces the wrong
    _label(store_url, _labels(v2, [i for i in range(150) if i % 4]))
    return v1, v2


def _expected_classifier(served: Served, chosen: list[int], classes: list[str]) -> dict[str, float]:
    y_true = served.truth[chosen]
    y_pred = served.predicted[chosen]
    assert served.probabilities is not None
    return {
        "accuracy": accuracy_score(y_true, y_pred),
        "balanced_accuracy": balanced_accuracy_score(y_true, y_pred),
        "log_loss": log_loss(y_true, served.probabilities[chosen], labels=classes),
    }


def test_live_classifier_metrics_equal_scikit_learns(
    classifiers: Zoo, store_url: str, classified: tuple[Served, Served]
) -> None:
    v1, v2 = classified
    found = quality(source(store_url), Registry(classifiers.models_dir), "breast_cancer")
    assert found.task == "classification"
    assert found.metrics == ["accuracy", "balanced_accuracy", "log_loss"]
    (m1, _), (m2, _) = classifiers.versions
    assert [v.version for v in found.versions] == [m1.version, m2.version]
    first, second = found.versions
    classes = list(m1.classes or [])
    assert (first.predictions, first.labelled) == (150, 75)
    assert (second.predictions, second.labelled) == (150, 112)
    expected_1 = _expected_classifier(v1, list(range(0, 150, 2)), classes)
    expected_2 = _expected_classifier(v2, [i for i in range(150) if i % 4], classes)
    assert first.live == pytest.approx(expected_1, rel=1e-9)
    assert second.live == pytest.approx(expected_2, rel=1e-9)
    assert first.held_out == {k: m1.metrics[k] for k in found.metrics}
    assert second.held_out == {k: m2.metrics[k] for k in found.metrics}


def test_the_window_is_on_the_predictions_time(
    classifiers: Zoo, store_url: str, classified: tuple[Served, Served]
) -> None:
    v1, _ = classified
    since = at(T0 + 60 * 100)  # v1's rows 100-149 and all of v2
    found = quality(
        source(store_url), Registry(classifiers.models_dir), "breast_cancer",
        Window(since, at(T0 + 3600 * 4)), version=classifiers.versions[0][0].version,
    )  # fmt: skip
    (only,) = found.versions
    chosen = list(range(100, 150, 2))
    assert (only.predictions, only.labelled) == (50, len(chosen))
    classes = list(classifiers.versions[0][0].classes or [])
    assert only.live == pytest.approx(_expected_classifier(v1, chosen, classes), rel=1e-9)


def test_quality_over_time_buckets_each_version(
    classifiers: Zoo, store_url: str, classified: tuple[Served, Served]
) -> None:
    v1, _ = classified
    points = quality_over_time(source(store_url), "classification", "breast_cancer", Window(), 3600)
    version = classifiers.versions[0][0].version
    mine = [p for p in points if p.version == version]
    assert sum(p.predictions for p in mine) == 150
    hour = [p for p in mine if p.start == at(T0 // 3600 * 3600)]
    chosen = [i for i in range(0, 150, 2) if int(v1.times[i] // 3600) == int(T0 // 3600)]
    (point,) = hour
    assert point.labelled == len(chosen)
    expected = accuracy_score(v1.truth[chosen], v1.predicted[chosen])
    assert point.live["accuracy"] == pytest.approx(expected)


def test_versions_without_labels_have_no_live_metrics(
    classifiers: Zoo, store_url: str, tmp_path: Path
) -> None:
    _serve(classifiers, store_url, tmp_path / "s", 0, slice(0, 20), T0)
    (found,) = quality(
        source(store_url), Registry(classifiers.models_dir), "breast_cancer"
    ).versions
    assert (found.predictions, found.labelled) == (20, 0)
    assert found.live == {"accuracy": None, "balanced_accuracy": None, "log_loss": None}


def test_live_regressor_metrics_equal_scikit_learns(
    regressors: Zoo, store_url: str, tmp_path: Path
) -> None:
    served = _serve(regressors, store_url, tmp_path / "s", 0, slice(0, 120), T0)
    chosen = list(range(0, 120, 3))
    _label(store_url, _labels(served, chosen))
    found = quality(source(store_url), Registry(regressors.models_dir), "diabetes")
    assert found.metrics == ["mae", "rmse", "r2"]
    (version,) = found.versions
    y_true, y_pred = served.truth[chosen], served.predicted[chosen]
    expected = {
        "mae": mean_absolute_error(y_true, y_pred),
        "rmse": root_mean_squared_error(y_true, y_pred),
        "r2": r2_score(y_true, y_pred),
    }
    assert version.labelled == len(chosen)
    assert version.live == pytest.approx(expected, rel=1e-9)


def test_an_unknown_model_or_version_is_bad_input(classifiers: Zoo, store_url: str) -> None:
    registry = Registry(classifiers.models_dir)
    with pytest.raises(MonitoringInputError, match="no model 'nope'"):
        quality(source(store_url), registry, "nope")
    with pytest.raises(MonitoringInputError, match="20990101-000000-000000"):
        quality(source(store_url), registry, "breast_cancer", version="20990101-000000-000000")


def test_an_empty_window_has_no_versions(classifiers: Zoo, store_url: str) -> None:
    since = at(time.time() + timedelta(days=1).total_seconds())
    found = quality(
        source(store_url), Registry(classifiers.models_dir), "breast_cancer", Window(since)
    )
    assert found.versions == []
