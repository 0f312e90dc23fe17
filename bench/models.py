"""The benchmark's models and request bodies, made with training's own functions.

Two registries of one models folder: ``bench_logreg`` (the default StandardScaler +
LogisticRegression pipeline) and ``bench_rf`` (a 100-tree RandomForest, random_state 0), both
on the 30-feature breast-cancer data. Request rows are drawn from that same data set.

The registry saves skops files; the ``naive`` reference app loads a pickle with
``joblib.load``, as tutorials do, so each pipeline is also dumped to
``<models_dir>/../naive/<name>.joblib`` for it (outside the registry: never served).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import orjson

from serving import artifact
from training.data import load_builtin
from training.train import fit, save

DATASET = "breast_cancer"
# workload model key -> (registry name, estimator; None = the task's default pipeline)
MODELS: dict[str, tuple[str, str | None]] = {
    "logreg": ("bench_logreg", None),
    "rf": ("bench_rf", "random_forest"),
}


@dataclass(frozen=True)
class BenchModel:
    """One trained, saved and current model, plus the in-memory pipeline to check against."""

    key: str
    name: str
    version_dir: Path
    pipeline: Any
    model_file: Path
    """A joblib dump of ``pipeline`` for the naive app (the registry holds skops)."""

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in self.pipeline.classes_]


def train_models(models_dir: Path, keys: list[str]) -> dict[str, BenchModel]:
    """Fit, save and promote each model (no cross-validation: only the pipeline matters)."""
    dataset = load_builtin(DATASET)
    trained: dict[str, BenchModel] = {}
    naive_dir = Path(models_dir).parent / "naive"
    naive_dir.mkdir(parents=True, exist_ok=True)
    for key in keys:
        name, estimator = MODELS[key]
        model = fit(dataset, estimator=estimator, seed=0, cv_folds=0)
        path = save(model, dataset, models_dir, name=name)
        artifact.write_current(models_dir, name, path.name)
        pickled = naive_dir / f"{name}.joblib"
        joblib.dump(model.pipeline, pickled)
        trained[key] = BenchModel(key, name, path, model.pipeline, pickled)
    return trained


def sample_rows(rows: int, count: int, *, seed: int = 0) -> list[np.ndarray]:
    """``count`` matrices of ``rows`` real breast-cancer rows each (drawn with replacement)."""
    X = load_builtin(DATASET).X
    rng = np.random.default_rng(seed + rows)
    return [X[rng.integers(0, X.shape[0], size=rows)] for _ in range(count)]


def body(matrix: np.ndarray) -> bytes:
    """The request body every app takes: ``{"instances": [[30 floats], ...]}``."""
    return orjson.dumps({"instances": matrix.tolist()})
