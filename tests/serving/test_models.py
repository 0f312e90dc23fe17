"""Many models in one process: each served, described, reloaded and logged on its own."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from serving import artifact
from serving.app import create_app
from tests.serving.conftest import make_settings
from training.data import load_builtin
from training.train import fit, save

JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def two_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """breast_cancer (classifier, two versions) and diabetes (regressor)."""
    root = tmp_path_factory.mktemp("two-models")
    for name, params in (("breast_cancer", {}), ("breast_cancer", {"C": 0.05}), ("diabetes", {})):
        data = load_builtin(name)
        path = save(fit(data, params=params, cv_folds=0), data, root, name=name)
        if name == "diabetes" or not params:
            artifact.write_current(root, name, path.name)
    return root


@pytest.fixture
def registry(two_models: Path, tmp_path: Path) -> Path:
    root = tmp_path / "models"
    shutil.copytree(two_models, root)
    return root


def _client(registry: Path, tmp_path: Path, **settings: object) -> TestClient:
    values = {"model_name": "breast_cancer", **settings}
    return TestClient(create_app(make_settings(registry, tmp_path, **values)))


def test_every_model_with_a_current_version_is_served(registry: Path, tmp_path: Path) -> None:
    with _client(registry, tmp_path) as client:
        listed = client.get("/models").json()["models"]
        assert [(m["name"], m["ready"], m["default"], m["task"]) for m in listed] == [
            ("breast_cancer", True, True, "classification"),
            ("diabetes", True, False, "regression"),
        ]
        cancer = load_builtin("breast_cancer").X[:3].tolist()
        diabetes = load_builtin("diabetes").X[:3].tolist()
        a = client.post("/models/breast_cancer/predict", json={"instances": cancer})
        b = client.post("/models/diabetes/predict", json={"instances": diabetes})
        default = client.post("/predict", json={"instances": cancer})
    assert a.status_code == b.status_code == default.status_code == 200
    assert a.json()["predictions"] == default.json()["predictions"]
    assert "probabilities" in a.json()
    assert "probabilities" not in b.json()
    assert all(isinstance(v, float) for v in b.json()["predictions"])
    assert b.json()["model"]["name"] == "diabetes"


def test_each_model_describes_itself(registry: Path, tmp_path: Path) -> None:
    with _client(registry, tmp_path) as client:
        diabetes = client.get("/models/diabetes").json()
        unknown = client.get("/models/nope")
    assert diabetes["task"] == "regression"
    assert diabetes["classes"] is None
    assert [f["name"] for f in diabetes["features"]] == load_builtin("diabetes").feature_names
    assert unknown.status_code == 404


def test_predicting_with_an_unknown_model_is_404_naming_the_served_ones(
    registry: Path, tmp_path: Path
) -> None:
    with _client(registry, tmp_path) as client:
        response = client.post("/models/nope/predict", json={"instances": [[1.0]]})
    assert response.status_code == 404
    assert "breast_cancer, diabetes" in response.json()["detail"]


def test_model_names_limits_what_is_served(registry: Path, tmp_path: Path) -> None:
    with _client(registry, tmp_path, model_names="diabetes", model_name="diabetes") as client:
        names = [m["name"] for m in client.get("/models").json()["models"]]
    assert names == ["diabetes"]


def test_a_pinned_version_stays_pinned_across_a_bodiless_reload(
    registry: Path, tmp_path: Path
) -> None:
    versions = artifact.list_versions(registry, "breast_cancer")
    old, new = versions
    artifact.write_current(registry, "breast_cancer", new)
    with _client(registry, tmp_path, model_version=old) as client:
        assert client.get("/model").json()["version"] == old
        reloaded = client.post("/admin/reload").json()["models"]
        assert client.get("/model").json()["version"] == old
        unpinned = client.post("/admin/reload", json={"version": "current"})
        assert client.get("/model").json()["version"] == new
    cancer = next(r for r in reloaded if r["name"] == "breast_cancer")
    assert (cancer["outcome"], cancer["pinned"], cancer["version"]) == ("unchanged", True, old)
    assert unpinned.json()["models"][0]["pinned"] is False


def test_a_model_that_fails_to_load_makes_only_itself_unready(
    registry: Path, tmp_path: Path
) -> None:
    version = artifact.read_current(registry, "diabetes")
    assert version is not None
    model_file = registry / "diabetes" / version / artifact.MODEL_FILE
    model_file.write_bytes(model_file.read_bytes()[:-10])  # truncated
    with _client(registry, tmp_path) as client:
        ready = client.get("/ready")
        listed = {m["name"]: m for m in client.get("/models").json()["models"]}
        broken = client.post("/models/diabetes/predict", json={"instances": [[0.0] * 10]})
        fine = client.post(
            "/predict", json={"instances": load_builtin("breast_cancer").X[:1].tolist()}
        )
    assert ready.status_code == 200
    models = {m["name"]: m for m in ready.json()["models"]}
    assert models["diabetes"]["ready"] is False
    assert "sha256" in models["diabetes"]["error"]
    assert listed["diabetes"]["ready"] is False
    assert broken.status_code == 503
    assert fine.status_code == 200


def test_a_half_written_model_is_not_loaded(registry: Path, tmp_path: Path) -> None:
    # A version folder being written (no metadata yet) and a staging folder are never served.
    (registry / "iris" / "20990101-000000-000000").mkdir(parents=True)
    (registry / "iris" / ".incoming-x").mkdir()
    (registry / "iris" / "current").write_text("20990101-000000-000000\n")
    with _client(registry, tmp_path) as client:
        listed = {m["name"]: m for m in client.get("/models").json()["models"]}
        assert client.get("/ready").status_code == 200
    assert listed["iris"]["ready"] is False


def test_a_model_promoted_later_appears_on_reload(registry: Path, tmp_path: Path) -> None:
    data = load_builtin("iris")
    with _client(registry, tmp_path) as client:
        assert client.get("/models/iris").status_code == 404
        path = save(fit(data, cv_folds=0), data, registry, name="iris")
        artifact.write_current(registry, "iris", path.name)
        results = client.post("/admin/reload").json()["models"]
        assert client.get("/models/iris").status_code == 200
        served = client.post("/models/iris/predict", json={"instances": data.X[:2].tolist()})
    assert {r["name"]: r["outcome"] for r in results}["iris"] == "loaded"
    assert served.json()["predictions"] == list(np.asarray(data.y[:2]))


def test_reloading_an_unknown_model_is_404_and_adds_nothing(registry: Path, tmp_path: Path) -> None:
    with _client(registry, tmp_path) as client:
        response = client.post("/admin/reload", json={"model": "nope"})
        bad_version = client.post("/admin/reload", json={"model": "diabetes", "version": "0.2"})
        names = [m["name"] for m in client.get("/models").json()["models"]]
        diabetes = client.get("/models").json()["models"][1]
    assert response.status_code == bad_version.status_code == 404
    assert names == ["breast_cancer", "diabetes"]
    assert diabetes["pinned"] is None
    assert diabetes["error"] is None


def test_a_server_started_before_training_serves_once_a_model_is_promoted(
    tmp_path: Path,
) -> None:
    root = tmp_path / "empty"
    data = load_builtin("iris")
    settings = make_settings(root, tmp_path, model_name="iris", model_retry_seconds=0.2)
    with TestClient(create_app(settings)) as client:
        assert client.get("/ready").status_code == 503
        path = save(fit(data, cv_folds=0), data, root, name="iris")
        artifact.write_current(root, "iris", path.name)
        deadline = time.monotonic() + 10
        while client.get("/ready").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        served = client.post("/predict", json={"instances": data.X[:1].tolist()})
    assert served.status_code == 200
