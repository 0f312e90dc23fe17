"""GET /monitoring/drift and /monitoring/quality, and the gauges a dashboard alerts on."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from serving.app import app_state, create_app
from tests.serving.conftest import make_settings
from training.data import load_builtin


@pytest.fixture
def client(models_dir: Path, tmp_path: Path) -> Iterator[TestClient]:
    settings = make_settings(models_dir, tmp_path, monitoring_interval_seconds=0)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _post(client: TestClient, X: np.ndarray) -> None:
    for start in range(0, len(X), 100):
        response = client.post("/predict", json={"instances": X[start : start + 100].tolist()})
        assert response.status_code == 200


def _logged(client: TestClient, rows: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        stats = client.get("/monitoring/quality").json()
        if sum(v["predictions"] for v in stats["versions"]) >= rows:
            return
        time.sleep(0.2)
    raise AssertionError(f"fewer than {rows} rows logged in time")


def test_drift_flags_exactly_the_shifted_features(client: TestClient) -> None:
    data = load_builtin("breast_cancer")
    rng = np.random.default_rng(1)
    sample = data.X[rng.integers(0, len(data.X), size=600)]
    _post(client, sample)
    _logged(client, 600)
    calm = client.get("/monitoring/drift", params={"min_rows": 500}).json()
    assert calm["status"] == "ok"
    assert [f["name"] for f in calm["features"] if f["drifted"]] == []
    shifted = sample.copy()
    for j in (0, 11, 24):
        shifted[:, j] += data.X[:, j].std()
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 1)) + "Z"
    time.sleep(1.1)
    _post(client, shifted)
    _logged(client, 1200)
    report = client.get("/monitoring/drift", params={"min_rows": 500, "since": since}).json()
    flagged = sorted(f["name"] for f in report["features"] if f["drifted"])
    assert flagged == sorted(data.feature_names[j] for j in (0, 11, 24))


def test_too_few_rows_is_insufficient_data_not_a_verdict(client: TestClient) -> None:
    _post(client, load_builtin("breast_cancer").X[:20])
    report = client.get("/monitoring/drift").json()
    assert report["status"] == "insufficient_data"
    assert all(f["drifted"] is None for f in report["features"])


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"model": "nope"}, 404),
        ({"version": "20990101-000000-000000"}, 404),
        ({"since": "yesterday"}, 422),
        ({"since": "2026-11-28T10:00:00Z", "until": "2026-11-28T09:00:00Z"}, 422),
        ({"since": "0001-01-01T00:00:00+14:00"}, 422),
        ({"min_rows": 0}, 422),
    ],
)
def test_bad_questions_are_4xx(client: TestClient, params: dict[str, object], status: int) -> None:
    assert client.get("/monitoring/drift", params=params).status_code == status


def test_quality_without_labels_counts_predictions(client: TestClient) -> None:
    _post(client, load_builtin("breast_cancer").X[:50])
    _logged(client, 50)
    report = client.get("/monitoring/quality").json()
    [version] = report["versions"]
    assert (version["predictions"], version["labelled"]) == (50, 0)
    assert version["held_out"]["balanced_accuracy"] > 0.9


def test_the_gauges_show_drift_verdicts(client: TestClient) -> None:
    data = load_builtin("breast_cancer")
    _post(client, data.X[np.random.default_rng(2).integers(0, len(data.X), size=600)])
    _logged(client, 600)
    state = app_state(client.app)  # type: ignore[arg-type]
    model = state.catalog.models["breast_cancer"].model
    assert model is not None
    refresher = state.refresher
    client.portal.call(refresher.refresh, "breast_cancer", model.metadata)  # type: ignore[union-attr]
    metrics = client.get("/metrics").text
    assert 'skship_drift_detected{column="mean radius",model="breast_cancer"} 0.0' in metrics
    assert 'skship_drift_rows{model="breast_cancer"} 600.0' in metrics
    assert "skship_monitoring_refreshed_timestamp_seconds" in metrics
