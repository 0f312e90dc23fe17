"""The Open Inference Protocol (KServe V2) with the reference client, tritonclient[http],
and the request fixtures of MLServer's and KServe's own test suites."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton

from serving import artifact
from tests.live import LiveServer, live_server
from training.data import Dataset, load_builtin
from training.train import fit, save

# MLServer tests/testdata/inference-request.json (a [1, 3] INT32 tensor), verbatim.
MLSERVER_REQUEST = {
    "inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "INT32", "data": [1, 2, 3]}]
}
# KServe's iris_input_v2.json (nested data, FP32), verbatim.
KSERVE_IRIS_REQUEST = {
    "inputs": [
        {
            "name": "input-0",
            "shape": [2, 4],
            "datatype": "FP32",
            "data": [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]],
        }
    ]
}


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A classifier, a regressor, iris and a 3-feature model, with their offline pipelines."""
    root = tmp_path_factory.mktemp("v2-models")
    iris = load_builtin("iris")
    three = Dataset(iris.X[:, :3], iris.y, iris.feature_names[:3], "target", "classification",
                    "sklearn:iris[:3]")  # fmt: skip
    pipelines = {}
    for name, data in (
        ("breast_cancer", load_builtin("breast_cancer")),
        ("diabetes", load_builtin("diabetes")),
        ("iris", iris),
        ("iris3", three),
    ):
        trained = fit(data, cv_folds=0)
        path = save(trained, data, root, name=name)
        artifact.write_current(root, name, path.name)
        pipelines[name] = trained.pipeline
    return {"root": root, "pipelines": pipelines}


@pytest.fixture(scope="module")
def server(
    registry: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    workdir = tmp_path_factory.mktemp("v2")
    with live_server(registry["root"], workdir, env={"MODEL_NAME": "breast_cancer"}) as live:
        yield live


@pytest.fixture
def client(server: LiveServer) -> Iterator[triton.InferenceServerClient]:
    with triton.InferenceServerClient(url=f"127.0.0.1:{server.port}") as c:
        yield c


def test_health_and_readiness_with_the_reference_client(
    client: triton.InferenceServerClient,
) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("breast_cancer")
    assert client.is_model_ready("diabetes")
    assert not client.is_model_ready("nope")


def test_model_metadata_has_datatypes_and_shapes_from_the_schema(
    client: triton.InferenceServerClient,
) -> None:
    meta = client.get_model_metadata("breast_cancer")
    assert meta["name"] == "breast_cancer"
    assert len(meta["inputs"]) == 30
    assert meta["inputs"][0] == {"name": "mean radius", "datatype": "FP64", "shape": [-1]}
    assert {o["name"]: (o["datatype"], o["shape"]) for o in meta["outputs"]} == {
        "predict": ("BYTES", [-1]),
        "predict_proba": ("FP64", [-1, 2]),
    }
    regressor = client.get_model_metadata("diabetes")
    assert regressor["outputs"] == [{"name": "predict", "datatype": "FP64", "shape": [-1]}]


def test_infer_with_one_2d_fp64_tensor_equals_the_offline_pipeline(
    client: triton.InferenceServerClient, registry: dict[str, Any]
) -> None:
    X = load_builtin("breast_cancer").X[:7]
    tensor = triton.InferInput("input-0", list(X.shape), "FP64")
    tensor.set_data_from_numpy(X, binary_data=False)
    outputs = [
        triton.InferRequestedOutput("predict", binary_data=False),
        triton.InferRequestedOutput("predict_proba", binary_data=False),
    ]
    result = client.infer("breast_cancer", [tensor], outputs=outputs, request_id="trace-1")
    pipeline = registry["pipelines"]["breast_cancer"]
    np.testing.assert_allclose(result.as_numpy("predict_proba"), pipeline.predict_proba(X), 1e-12)
    labels = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("predict")]
    assert labels == list(pipeline.predict(X))
    response = result.get_response()
    assert response["id"] == "trace-1"
    assert response["model_version"] == artifact.read_current(registry["root"], "breast_cancer")


def test_infer_with_one_tensor_per_feature_on_a_regressor(
    client: triton.InferenceServerClient, registry: dict[str, Any]
) -> None:
    data = load_builtin("diabetes")
    X = data.X[:5]
    inputs = []
    for j, name in enumerate(data.feature_names):
        tensor = triton.InferInput(name, [5], "FP64")
        tensor.set_data_from_numpy(X[:, j].copy(), binary_data=False)
        inputs.append(tensor)
    result = client.infer("diabetes", inputs)
    np.testing.assert_allclose(
        result.as_numpy("predict"), registry["pipelines"]["diabetes"].predict(X), 1e-12
    )


def test_kserve_and_mlserver_fixtures_are_answered(
    server: LiveServer, registry: dict[str, Any]
) -> None:
    iris = httpx.post(f"{server.base_url}/v2/models/iris/infer", json=KSERVE_IRIS_REQUEST)
    three = httpx.post(f"{server.base_url}/v2/models/iris3/infer", json=MLSERVER_REQUEST)
    assert iris.status_code == three.status_code == 200
    X = np.array(KSERVE_IRIS_REQUEST["inputs"][0]["data"], dtype=np.float32).astype(np.float64)
    predict = next(o for o in iris.json()["outputs"] if o["name"] == "predict")
    assert predict["data"] == list(registry["pipelines"]["iris"].predict(X))
    expected = registry["pipelines"]["iris3"].predict_proba(np.array([[1.0, 2.0, 3.0]]))
    proba = next(o for o in three.json()["outputs"] if o["name"] == "predict_proba")
    assert proba["shape"] == [1, 3]
    np.testing.assert_allclose(proba["data"], expected.ravel(), 1e-12)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"inputs": [{"name": "x", "shape": [1, 30], "datatype": "BYTES", "data": ["a"] * 30}]},
            "datatype must be numeric",
        ),
        (
            {"inputs": [{"name": "x", "shape": [2, 30], "datatype": "FP64", "data": [1.0] * 30}]},
            "holds 60 values, data has 30",
        ),
        (
            {"inputs": [{"name": "x", "shape": [1, 29], "datatype": "FP64", "data": [1.0] * 29}]},
            "expected shape [n, 30]",
        ),
        (
            {"inputs": [{"name": "mean radius", "shape": [1], "datatype": "FP64", "data": [1.0]}]},
            "missing input(s)",
        ),
        (
            {
                "inputs": [{"name": "x", "shape": [1, 30], "datatype": "FP64", "data": [1.0] * 30}],
                "outputs": [{"name": "probability"}],
            },
            "unknown output 'probability'",
        ),
        (
            {"inputs": [{"name": "x", "shape": [1, 30], "datatype": "FP64", "data": [1e300] * 30}]},
            "input 'x', row 0",
        ),
        ({"inputs": []}, "'inputs' must be a non-empty list"),
        (
            {"inputs": [{"name": "x", "shape": [1, 30], "datatype": "FP99", "data": [1.0] * 30}]},
            "datatype 'FP99'",
        ),
    ],
)
def test_bad_requests_are_400_naming_the_input(
    server: LiveServer, body: dict[str, Any], message: str
) -> None:
    response = httpx.post(f"{server.base_url}/v2/models/breast_cancer/infer", json=body)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


def test_unknown_model_and_version_are_404(server: LiveServer) -> None:
    body = KSERVE_IRIS_REQUEST
    assert httpx.post(f"{server.base_url}/v2/models/nope/infer", json=body).status_code == 404
    versioned = f"{server.base_url}/v2/models/iris/versions/20000101-000000-000000/infer"
    response = httpx.post(versioned, json=body)
    assert response.status_code == 404
    assert "error" in response.json()


def test_every_v2_answer_is_logged_once_under_its_model(
    server: LiveServer, registry: dict[str, Any]
) -> None:
    response = httpx.post(
        f"{server.base_url}/v2/models/iris/infer", json={**KSERVE_IRIS_REQUEST, "id": "log-me"}
    )
    request_id = response.json()["parameters"]["request_id"]
    db = server.workdir / "predictions.db"
    server.wait(lambda _: _rows(db, request_id) == 2, "/health", 10)
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT model_name, client_request_id FROM predictions WHERE request_id = ?",
            (request_id,),
        ).fetchall()
    assert rows == [("iris", "log-me"), ("iris", "log-me")]


def _rows(db: Path, request_id: str) -> int:
    with sqlite3.connect(db) as conn:
        (count,) = conn.execute(
            "SELECT count(*) FROM predictions WHERE request_id = ?", (request_id,)
        ).fetchone()
    return int(count)


@pytest.fixture(scope="module")
def penguins_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LiveServer, Any, Any]]:
    """A typed model (categories with nulls) behind a live server."""
    root = tmp_path_factory.mktemp("v2-penguins")
    data = load_builtin("penguins")
    trained = fit(data, cv_folds=0)
    path = save(trained, data, root, name="penguins")
    artifact.write_current(root, "penguins", path.name)
    with live_server(root, tmp_path_factory.mktemp("v2p")) as live:
        yield live, trained.pipeline, data


def test_infer_with_per_feature_bytes_and_fp64_inputs_on_a_typed_model(
    penguins_server: tuple[LiveServer, Any, Any],
) -> None:
    server, pipeline, data = penguins_server
    X = data.X.dropna().iloc[:6]
    inputs = []
    for spec_name, column in X.items():
        if column.dtype.kind in "fi":
            tensor = triton.InferInput(str(spec_name), [len(X)], "FP64")
            tensor.set_data_from_numpy(column.to_numpy(dtype=np.float64), binary_data=False)
        else:
            tensor = triton.InferInput(str(spec_name), [len(X)], "BYTES")
            tensor.set_data_from_numpy(column.to_numpy(dtype=object), binary_data=False)
        inputs.append(tensor)
    with triton.InferenceServerClient(url=f"127.0.0.1:{server.port}") as client:
        meta = client.get_model_metadata("penguins")
        result = client.infer(
            "penguins",
            inputs,
            outputs=[triton.InferRequestedOutput("predict_proba", binary_data=False)],
        )
    kinds = {i["name"]: i["datatype"] for i in meta["inputs"]}
    assert (kinds["island"], kinds["bill_length_mm"]) == ("BYTES", "FP64")
    np.testing.assert_allclose(
        result.as_numpy("predict_proba"), pipeline.predict_proba(X), atol=1e-9
    )


def test_a_typed_model_refuses_one_2d_tensor_naming_its_inputs(
    penguins_server: tuple[LiveServer, Any, Any],
) -> None:
    server, _, _ = penguins_server
    body = {"inputs": [{"name": "x", "shape": [1, 7], "datatype": "FP64", "data": [1.0] * 7}]}
    response = httpx.post(f"{server.base_url}/v2/models/penguins/infer", json=body)
    assert response.status_code == 400
    assert "one tensor per feature" in response.json()["error"]
