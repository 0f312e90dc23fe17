"""POST /predict answers with the exact model's outputs, its version and a request id."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import numpy as np
import orjson
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving import artifact
from serving.app import create_app
from tests.serving.conftest import make_settings
from training.data import load_builtin
from training.train import fit, save

JSON = {"content-type": "application/json"}


def _post(client: TestClient, body: object, **headers: str) -> dict:  # type: ignore[type-arg]
    response = client.post("/predict", content=orjson.dumps(body), headers={**JSON, **headers})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_predict_accepts_positional_arrays(client: TestClient, rows: list[list[float]]) -> None:
    body = _post(client, {"instances": rows[:3]})
    assert len(body["predictions"]) == 3
    assert set(body["predictions"]) <= {"benign", "malignant"}
    assert all(set(p) == {"benign", "malignant"} for p in body["probabilities"])


def test_predict_accepts_objects_keyed_by_feature_name(
    client: TestClient, rows: list[list[float]], feature_names: list[str]
) -> None:
    named = [dict(zip(feature_names, row, strict=True)) for row in rows[:2]]
    by_name = _post(client, {"instances": named})
    by_position = _post(client, {"instances": rows[:2]})
    assert by_name["predictions"] == by_position["predictions"]
    assert by_name["probabilities"] == by_position["probabilities"]


def test_predict_accepts_key_order_that_differs_from_the_model(
    client: TestClient, rows: list[list[float]], feature_names: list[str]
) -> None:
    shuffled = dict(reversed(list(zip(feature_names, rows[0], strict=True))))
    assert (
        _post(client, {"instances": [shuffled]})["predictions"]
        == _post(client, {"instances": [rows[0]]})["predictions"]
    )


def test_predict_names_the_model_version(
    client: TestClient, rows: list[list[float]], models_dir: Path
) -> None:
    body = _post(client, {"instances": [rows[0]]})
    assert body["model"] == {
        "name": "breast_cancer",
        "version": artifact.read_current(models_dir, "breast_cancer"),
    }


def test_predict_generates_a_request_id_and_echoes_it(
    client: TestClient, rows: list[list[float]]
) -> None:
    response = client.post("/predict", content=orjson.dumps({"instances": [rows[0]]}), headers=JSON)
    request_id = response.json()["request_id"]
    assert uuid.UUID(request_id).version == 7  # time-ordered: the log's index grows at one end
    assert uuid.UUID(request_id).variant == uuid.RFC_4122
    assert response.headers["x-request-id"] == request_id


def test_predict_makes_its_own_request_id_and_echoes_the_clients(
    client: TestClient, rows: list[list[float]]
) -> None:
    chosen = "order-42/retry 1"
    first, second = (
        client.post(
            "/predict",
            content=orjson.dumps({"instances": [rows[0]]}),
            headers={**JSON, "X-Request-ID": chosen},
        )
        for _ in range(2)
    )
    assert first.headers["x-request-id"] == second.headers["x-request-id"] == chosen
    ids = {uuid.UUID(r.json()["request_id"]) for r in (first, second)}
    assert len(ids) == 2  # a retry is a second answer with its own id
    assert all(i.version == 7 for i in ids)


def test_predict_flags_values_outside_the_training_range(
    client: TestClient, rows: list[list[float]], feature_names: list[str]
) -> None:
    odd = list(rows[0])
    odd[3] = 1e6
    body = _post(client, {"instances": [rows[0], odd]})
    assert body["out_of_range"] == [{"row": 1, "features": [feature_names[3]]}]
    assert len(body["predictions"]) == 2
    metrics = client.get("/metrics").text
    line = f'skship_out_of_range_values_total{{feature="{feature_names[3]}",model="breast_cancer"}}'
    assert f"{line} 1.0" in metrics


def test_predict_omits_out_of_range_when_everything_is_in_range(
    client: TestClient, rows: list[list[float]]
) -> None:
    assert "out_of_range" not in _post(client, {"instances": [rows[0]]})


def test_predict_counts_predictions_by_class(client: TestClient, rows: list[list[float]]) -> None:
    body = _post(client, {"instances": rows[:20]})
    metrics = client.get("/metrics").text
    version = body["model"]["version"]
    for label in set(body["predictions"]):
        count = body["predictions"].count(label)
        line = (
            f'skship_predictions_total{{model="breast_cancer",model_version="{version}",'
            f'prediction="{label}"}}'
        )
        assert f"{line} {float(count)}" in metrics


def test_predict_serves_regressors_without_probabilities(tmp_path: Path) -> None:
    data = load_builtin("diabetes")
    path = save(fit(data, cv_folds=0), data, tmp_path / "models", name="diabetes")
    artifact.write_current(tmp_path / "models", "diabetes", path.name)
    loaded = artifact.load(path)
    app = create_app(make_settings(tmp_path / "models", tmp_path, model_name="diabetes"))
    with TestClient(app) as client:
        body = _post(client, {"instances": data.X[:3].tolist()})
    assert "probabilities" not in body
    assert body["predictions"] == loaded.pipeline.predict(data.X[:3]).tolist()


_values = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch=st.lists(st.lists(_values, min_size=30, max_size=30), min_size=1, max_size=20))
def test_predict_equals_the_artifact_run_offline(
    client: TestClient, models_dir: Path, batch: list[list[float]]
) -> None:
    pipeline = artifact.load(artifact.resolve(models_dir, "breast_cancer")).pipeline
    body = _post(client, {"instances": batch})
    expected_proba = pipeline.predict_proba(np.array(batch))
    assert body["predictions"] == pipeline.predict(np.array(batch)).tolist()
    got = np.array([[p["benign"], p["malignant"]] for p in body["probabilities"]])
    np.testing.assert_array_equal(got, expected_proba)


def test_predict_accepts_a_mix_of_named_and_positional_instances(
    client: TestClient, rows: list[list[float]], feature_names: list[str]
) -> None:
    mixed = [rows[0], dict(zip(feature_names, rows[1], strict=True))]
    assert (
        _post(client, {"instances": mixed})["predictions"]
        == _post(client, {"instances": rows[:2]})["predictions"]
    )


def test_generated_request_ids_sort_by_time(client: TestClient, rows: list[list[float]]) -> None:
    ids = []
    for _ in range(3):
        ids.append(_post(client, {"instances": [rows[0]]})["request_id"])
        time.sleep(0.002)
    assert ids == sorted(ids)
