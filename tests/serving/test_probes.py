"""/health, /ready, /model and /metrics tell the truth about the process."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from serving import artifact
from serving.app import create_app
from tests.serving.conftest import make_settings


def test_health_is_ok_while_serving(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_names_the_model_and_the_log(client: TestClient, models_dir: Path) -> None:
    response = client.get("/ready")
    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "ready"
    assert body["model"]["version"] == artifact.read_current(models_dir, "breast_cancer")
    assert body["log"]["accepting"] is True


def test_without_a_model_ready_and_predict_answer_503_with_the_reason(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path / "empty-registry", tmp_path))
    with TestClient(app) as client:
        ready = client.get("/ready")
        predict = client.post(
            "/predict",
            json={"instances": [[1.0] * 30]},
            headers={"content-type": "application/json"},
        )
        model = client.get("/model")
        health = client.get("/health")
    assert ready.status_code == 503
    assert "no model 'breast_cancer'" in ready.json()["reasons"][0]
    assert predict.status_code == 503
    assert predict.headers["retry-after"] == "5"
    assert "'breast_cancer' is not loaded" in predict.json()["detail"]
    assert model.status_code == 503
    assert health.status_code == 200


def test_model_describes_version_schema_metrics_and_digest(
    client: TestClient, models_dir: Path
) -> None:
    path = artifact.resolve(models_dir, "breast_cancer")
    meta = artifact.read_metadata(path)
    body = client.get("/model").json()
    assert body["version"] == meta.version
    assert [f["name"] for f in body["features"]] == meta.feature_names
    assert set(body["features"][0]) == set(artifact.FeatureSpec.model_fields)
    assert body["classes"] == ["benign", "malignant"]
    assert body["metrics"] == meta.metrics
    assert body["libraries"]["scikit_learn"] == meta.libraries.scikit_learn
    assert body["digest"] == f"sha256:{meta.files[meta.model_file]}"


def test_metrics_expose_requests_latency_and_model_version(
    client: TestClient, rows: list[list[float]]
) -> None:
    client.post("/predict", json={"instances": [rows[0]]})
    client.get("/nowhere")
    text = client.get("/metrics").text
    assert 'skship_http_requests_total{method="POST",route="/predict",status="200"} 1.0' in text
    assert 'skship_http_requests_total{method="GET",route="unmatched",status="404"} 1.0' in text
    assert 'skship_http_request_duration_seconds_count{route="/predict"} 1.0' in text
    assert "skship_model_info{" in text
    assert "skship_predict_batch_rows_count 1.0" in text
