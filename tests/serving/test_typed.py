"""Typed models end to end: categories, booleans and nulls in, equal to the offline
pipeline out, flagged when unseen, refused by row and feature when wrong, logged as sent."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from serving import artifact
from serving.app import create_app
from tests.serving.conftest import make_settings
from training import register
from training.data import load_builtin, load_csv
from training.train import fit, save

JSON = {"content-type": "application/json"}
FIRST = {
    "island": "Biscoe",
    "bill_length_mm": None,
    "bill_depth_mm": 18.1,
    "flipper_length_mm": 200.0,
    "body_mass_g": 4200.0,
    "sex": "female",
    "year": 2008,
}


def json_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    rows = [
        {k: (None if pd.isna(v) else v) for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]
    return list(orjson.loads(orjson.dumps(rows)))


@pytest.fixture(scope="module")
def penguins_registry(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """penguins trained by the job's own functions (default pipeline and gradient boosting)."""
    root = tmp_path_factory.mktemp("penguins")
    data = load_builtin("penguins")
    pipelines = {}
    for name, estimator in (("penguins", None), ("penguins_hgb", "hist_gradient_boosting")):
        trained = fit(data, estimator=estimator, cv_folds=0)
        path = save(trained, data, root, name=name)
        artifact.write_current(root, name, path.name)
        pipelines[name] = trained.pipeline
    return {"root": root, "pipelines": pipelines, "data": data}


@pytest.fixture
def client(penguins_registry: dict[str, Any], tmp_path: Path) -> Iterator[TestClient]:
    settings = make_settings(penguins_registry["root"], tmp_path, model_name="penguins")
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.mark.parametrize("name", ["penguins", "penguins_hgb"])
def test_typed_rows_are_served_equal_to_the_offline_pipeline(
    client: TestClient, penguins_registry: dict[str, Any], name: str
) -> None:
    X = penguins_registry["data"].X
    rows = json_rows(X.iloc[:40])
    response = client.post(f"/models/{name}/predict", json={"instances": rows})
    assert response.status_code == 200, response.text
    body = response.json()
    expected = penguins_registry["pipelines"][name].predict_proba(X.iloc[:40])
    served = np.array([[p[c] for c in body["probabilities"][0]] for p in body["probabilities"]])
    np.testing.assert_allclose(served, expected, rtol=0, atol=1e-9)


def test_the_issues_example_with_a_null_is_served(client: TestClient) -> None:
    response = client.post("/predict", json={"instances": [FIRST]})
    assert response.status_code == 200, response.text
    assert response.json()["predictions"][0] in {"Adelie", "Chinstrap", "Gentoo"}
    positional = client.post("/predict", json={"instances": [list(FIRST.values())]})
    assert positional.json()["predictions"] == response.json()["predictions"]


def test_an_unseen_category_is_served_and_flagged(client: TestClient) -> None:
    for name in ("penguins", "penguins_hgb"):
        row = {**FIRST, "island": "Atlantis"}
        response = client.post(f"/models/{name}/predict", json={"instances": [FIRST, row]})
        assert response.status_code == 200, response.text
        assert response.json()["out_of_range"] == [{"row": 1, "features": ["island"]}]


@pytest.mark.parametrize(
    ("value", "feature", "kind"),
    [
        ("42", "bill_depth_mm", "float_type"),
        (True, "bill_depth_mm", "float_type"),
        (None, "year", "float_type"),
        (7, "island", "string_type"),
        (None, "island", "string_type"),
        ("x" * 1001, "sex", "string_too_long"),
    ],
)
def test_wrong_types_are_422_naming_row_and_feature(
    client: TestClient, value: Any, feature: str, kind: str
) -> None:
    response = client.post("/predict", json={"instances": [FIRST, {**FIRST, feature: value}]})
    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert (problem["loc"], problem["type"]) == (["body", "instances", 1, feature], kind)


def test_the_model_document_shows_the_typed_schema(client: TestClient) -> None:
    features = {f["name"]: f for f in client.get("/model").json()["features"]}
    assert features["island"]["type"] == "category"
    assert features["island"]["categories"] == ["Biscoe", "Dream", "Torgersen"]
    assert features["bill_length_mm"]["nullable"] is True
    assert features["year"]["nullable"] is False
    schema = client.get("/openapi.json").json()["components"]["schemas"]["PredictRequest"]
    example = schema["example"]["instances"][0]
    assert client.post("/predict", json={"instances": [example]}).status_code == 200


def test_typed_rows_are_logged_as_sent(client: TestClient, tmp_path: Path) -> None:
    answer = client.post("/predict", json={"instances": [FIRST]}).json()
    deadline = time.monotonic() + 10
    items: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not items:
        page = client.get("/predictions", params={"limit": 10}).json()
        items = [i for i in page["items"] if i["request_id"] == answer["request_id"]]
        time.sleep(0.1)
    assert items[0]["features"] == FIRST


def test_a_pipeline_that_cannot_take_an_unseen_category_refuses_it_by_name(
    penguins_registry: dict[str, Any], tmp_path: Path
) -> None:
    data = penguins_registry["data"]
    strict = Pipeline(
        [
            (
                "encode",
                ColumnTransformer(
                    [
                        ("cat", OneHotEncoder(handle_unknown="error"), ["island", "sex"]),
                        ("num", SimpleImputer(), ["bill_length_mm", "body_mass_g"]),
                    ]
                ),
            ),
            ("model", LogisticRegression(max_iter=2000)),
        ]
    )
    X = data.X.dropna(subset=["sex"])
    y = data.y[X.index]
    strict.fit(X, y)
    root = tmp_path / "models"
    register(strict, X, y, name="strict", models_dir=root)
    settings = make_settings(root, tmp_path, model_name="strict")
    with TestClient(create_app(settings)) as client:
        row = json_rows(X.iloc[:1])[0]
        refused = client.post("/predict", json={"instances": [row, {**row, "island": "Atlantis"}]})
    assert refused.status_code == 422
    assert refused.json()["detail"] == [
        {
            "loc": ["body", "instances", 1, "island"],
            "msg": "A category not seen in training, which this model cannot take",
            "type": "category_unknown",
        }
    ]


def test_the_same_from_the_csv_through_data(tmp_path: Path) -> None:
    root = tmp_path / "models"
    data = load_csv(Path(__file__).resolve().parents[2] / "examples" / "penguins.csv", "species")
    trained = fit(data, cv_folds=0)
    artifact.write_current(root, "penguins", save(trained, data, root, name="penguins").name)
    with TestClient(create_app(make_settings(root, tmp_path, model_name="penguins"))) as client:
        response = client.post("/predict", json={"instances": [FIRST]})
    assert response.status_code == 200, response.text
    expected = trained.pipeline.predict(pd.DataFrame([FIRST]).astype({"bill_length_mm": float}))
    assert response.json()["predictions"] == list(expected)
