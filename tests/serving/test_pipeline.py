"""The request pipeline: every route, the predict fast path included, gets an id, limits,
auth, metrics and error rendering — an unexpected error too."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sklearn.pipeline import Pipeline

from serving import artifact
from serving.app import create_app
from tests.serving.conftest import make_settings
from tests.serving.faulty import TRIGGER, FailsOnThirteen
from training.data import load_builtin
from training.train import TrainedModel, build_metadata

JSON = {"content-type": "application/json"}


@pytest.fixture
def faulty_client(models_dir: Path, tmp_path: Path) -> Iterator[TestClient]:
    """The shared registry plus a model 'faulty' whose estimator raises RuntimeError."""
    root = tmp_path / "models"
    shutil.copytree(models_dir, root)
    data = load_builtin("breast_cancer")
    pipeline = Pipeline([("model", FailsOnThirteen().fit(data.X, data.y))])
    trained = TrainedModel(pipeline, "fails", {}, 0, 0.2, {"balanced_accuracy": 0.5}, {}, None,
                           data.X)  # fmt: skip
    meta = build_metadata(trained, data, name="faulty")
    trusted = ["tests.serving.faulty.FailsOnThirteen"]
    path = artifact.save(root, meta, pipeline, trusted=trusted)
    artifact.write_current(root, "faulty", path.name)
    settings = make_settings(root, tmp_path, model_trusted_types=",".join(trusted))
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def test_an_unexpected_error_is_a_500_with_a_request_id_counted_and_logged(
    faulty_client: TestClient, rows: list[list[float]], caplog: pytest.LogCaptureFixture
) -> None:
    row = [TRIGGER, *rows[0][1:]]
    response = faulty_client.post(
        "/models/faulty/predict",
        json={"instances": [row]},
        headers={**JSON, "X-Request-ID": "trace-500"},
    )
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error; see the server log"}
    assert response.headers["x-request-id"] == "trace-500"
    metrics = faulty_client.get("/metrics").text
    assert (
        'skship_http_requests_total{method="POST",route="/models/{name}/predict",status="500"} 1.0'
        in metrics
    )
    assert "a bug in the user's estimator" in caplog.text
    assert "Traceback" in caplog.text
    # The same model still answers other rows.
    fine = faulty_client.post("/models/faulty/predict", json={"instances": [rows[0]]})
    assert fine.status_code == 200


def test_content_encoding_is_refused_with_415(faulty_client: TestClient) -> None:
    response = faulty_client.post(
        "/predict", content=b"\x1f\x8b...", headers={**JSON, "Content-Encoding": "gzip"}
    )
    assert response.status_code == 415
    assert "Content-Encoding" in response.json()["detail"]


def test_an_integer_literal_of_5000_digits_is_a_422_and_counted(faulty_client: TestClient) -> None:
    body = b'{"instances": [[' + b"9" * 5000 + b"]]}"
    response = faulty_client.post("/predict", content=body, headers=JSON)
    assert response.status_code == 422
    assert "x-request-id" in response.headers
    metrics = faulty_client.get("/metrics").text
    assert 'route="/predict",status="422"} 1.0' in metrics


def test_reload_refuses_a_json_body_without_content_type_and_bad_json(
    faulty_client: TestClient,
) -> None:
    no_type = faulty_client.post("/admin/reload", content=b'{"model": "faulty"}')
    assert no_type.status_code == 415
    broken = faulty_client.post("/admin/reload", content=b"{", headers=JSON)
    assert broken.status_code == 400
    unknown = faulty_client.post("/admin/reload", json={"modle": "x"})
    assert unknown.status_code == 422


def test_unknown_routes_and_methods_answer_json(faulty_client: TestClient) -> None:
    missing = faulty_client.get("/nothing-here")
    assert (missing.status_code, missing.json()) == (404, {"detail": "Not Found"})
    wrong = faulty_client.get("/predict")
    assert wrong.status_code == 405
    assert "x-request-id" in wrong.headers
    v2_missing = faulty_client.get("/v2/models/nope")
    assert v2_missing.status_code == 404
    assert "error" in v2_missing.json()
