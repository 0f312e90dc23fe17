"""The forest shortcut gives the pipeline's own answers, bit for bit, or is not used."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from serving import artifact, fastpath
from serving.app import create_app
from tests.serving.conftest import make_settings
from training.data import load_builtin
from training.train import fit, save


def _probe(X: np.ndarray) -> np.ndarray:
    """Rows like serving's own probe: the means, the bounds and random points between."""
    low, high = X.min(axis=0), X.max(axis=0)
    random = np.random.default_rng(0).uniform(low, high, size=(64, X.shape[1]))
    return np.vstack([X.mean(axis=0), low, high, random])


@pytest.mark.parametrize("dataset", ["breast_cancer", "iris", "diabetes"])
def test_forest_shortcut_equals_the_pipeline_exactly(dataset: str) -> None:
    data = load_builtin(dataset)
    pipeline = fit(data, estimator="random_forest", cv_folds=0).pipeline
    proba, predict = fastpath.faster(pipeline, _probe(data.X))
    rows = np.vstack([data.X, _probe(data.X) * 3 - 1])  # training rows and far outside
    if data.task == "classification":
        assert proba is not pipeline.predict_proba  # the shortcut is in use
        assert proba is not None
        np.testing.assert_array_equal(proba(rows), pipeline.predict_proba(rows))
    else:
        assert predict is not pipeline.predict
        np.testing.assert_array_equal(predict(rows), pipeline.predict(rows))


def test_forest_shortcut_runs_the_steps_before_the_forest() -> None:
    data = load_builtin("wine")
    forest = RandomForestClassifier(n_estimators=20, random_state=0)
    pipeline = Pipeline([("scale", StandardScaler()), ("model", forest)]).fit(data.X, data.y)
    proba, _ = fastpath.faster(pipeline, _probe(data.X))
    assert proba is not pipeline.predict_proba
    assert proba is not None
    np.testing.assert_array_equal(proba(data.X), pipeline.predict_proba(data.X))


def test_parallel_forest_and_other_models_keep_their_own_methods() -> None:
    data = load_builtin("breast_cancer")
    parallel = fit(data, estimator="random_forest", params={"n_jobs": 2}, cv_folds=0).pipeline
    linear = fit(data, cv_folds=0).pipeline
    for pipeline in (parallel, linear):
        proba, predict = fastpath.faster(pipeline, _probe(data.X))
        assert proba == pipeline.predict_proba
        assert predict == pipeline.predict


def test_a_shortcut_that_disagrees_is_not_used() -> None:
    probe = np.ones((3, 2))
    assert not fastpath._same(lambda X: X + 1e-12, lambda X: X, probe)
    assert not fastpath._same(lambda X: 1 / 0, lambda X: X, probe)  # type: ignore[arg-type,return-value]
    assert fastpath._same(lambda X: X * 1.0, lambda X: X, probe)


def test_api_serves_a_forest_exactly_as_the_artifact_offline(tmp_path: Path) -> None:
    data = load_builtin("breast_cancer")
    root = tmp_path / "models"
    path = save(fit(data, estimator="random_forest", cv_folds=0), data, root, name="rf")
    artifact.write_current(root, "rf", path.name)
    pipeline = artifact.load(path).pipeline
    rows = data.X[:40]
    with TestClient(create_app(make_settings(root, tmp_path, model_name="rf"))) as client:
        body = client.post("/predict", json={"instances": rows.tolist()}).json()
    got = np.array([[p["benign"], p["malignant"]] for p in body["probabilities"]])
    np.testing.assert_array_equal(got, pipeline.predict_proba(rows))
    assert body["predictions"] == pipeline.predict(rows).tolist()
