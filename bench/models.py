"""The benchmark's models and request bodies, made with training's own functions.

Three registries of one models folder: ``bench_logreg`` (the default StandardScaler +
LogisticRegression pipeline) and ``bench_rf`` (a 100-tree RandomForest, random_state 0), both
on the 30-feature breast-cancer data, and ``bench_penguins`` (the default pipeline for mixed
data: impute, one-hot encode, logistic regression) on penguins, with its text columns and
missing values. Request rows are drawn from the model's own data set; bodies are made in
our REST protocol (``{"instances": ...}``) or the Open Inference Protocol's (tensors).

The registry saves skops files; the ``naive`` reference app loads a pickle with
``joblib.load``, as tutorials do, so each pipeline is also dumped to
``<models_dir>/../naive/<name>.joblib`` for it (outside the registry: never served).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import joblib
import numpy as np
import orjson

from serving import artifact
from training.data import load_builtin
from training.train import fit, save

DATASET = "breast_cancer"
Protocol = Literal["rest", "v2"]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    """Its registry name."""
    estimator: str | None
    """None: the task's default pipeline."""
    dataset: str


MODELS: dict[str, ModelSpec] = {
    "logreg": ModelSpec("bench_logreg", None, DATASET),
    "rf": ModelSpec("bench_rf", "random_forest", DATASET),
    "penguins": ModelSpec("bench_penguins", None, "penguins"),
}
NUMERIC_DATASETS = frozenset({DATASET})
"""Data the naive reference app can take (it reads lists of floats)."""


@dataclass(frozen=True)
class BenchModel:
    """One trained, saved and current model, plus the in-memory pipeline to check against."""

    key: str
    name: str
    version_dir: Path
    pipeline: Any
    model_file: Path
    """A joblib dump of ``pipeline`` for the naive app (the registry holds skops)."""
    dataset: str = DATASET

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in self.pipeline.classes_]


def train_models(models_dir: Path, keys: list[str]) -> dict[str, BenchModel]:
    """Fit, save and promote each model (no cross-validation: only the pipeline matters)."""
    trained: dict[str, BenchModel] = {}
    naive_dir = Path(models_dir).parent / "naive"
    naive_dir.mkdir(parents=True, exist_ok=True)
    for key in keys:
        spec = MODELS[key]
        dataset = load_builtin(spec.dataset)
        model = fit(dataset, estimator=spec.estimator, seed=0, cv_folds=0)
        path = save(model, dataset, models_dir, name=spec.name)
        artifact.write_current(models_dir, spec.name, path.name)
        pickled = naive_dir / f"{spec.name}.joblib"
        joblib.dump(model.pipeline, pickled)
        trained[key] = BenchModel(key, spec.name, path, model.pipeline, pickled, spec.dataset)
    return trained


def sample_rows(rows: int, count: int, *, seed: int = 0) -> list[np.ndarray]:
    """``count`` matrices of ``rows`` real breast-cancer rows each (drawn with replacement)."""
    return sample_inputs(DATASET, rows, count, seed=seed)


def sample_inputs(dataset: str, rows: int, count: int, *, seed: int = 0) -> list[Any]:
    """``count`` draws of ``rows`` real rows of ``dataset`` each (with replacement): float
    matrices for numeric data, DataFrame slices for typed data."""
    X = load_builtin(dataset).X
    rng = np.random.default_rng(seed + rows)
    picks = [rng.integers(0, len(X), size=rows) for _ in range(count)]
    if isinstance(X, np.ndarray):
        return [X[pick] for pick in picks]
    return [X.iloc[pick].reset_index(drop=True) for pick in picks]


def body(inputs: Any, protocol: Protocol = "rest") -> bytes:
    """A request body: ``{"instances": [...]}`` (arrays, or objects of typed values), or an
    Open Inference Protocol request (one [n, 30] FP64 tensor, or one tensor per feature)."""
    if isinstance(inputs, np.ndarray):
        if protocol == "rest":
            return orjson.dumps({"instances": inputs.tolist()})
        tensor = {"name": "input-0", "shape": list(inputs.shape), "datatype": "FP64"}
        return orjson.dumps({"inputs": [{**tensor, "data": inputs.ravel().tolist()}]})
    frame = inputs.astype(object).where(inputs.notna(), None)
    if protocol == "rest":
        return orjson.dumps({"instances": frame.to_dict(orient="records")})
    tensors = [
        {
            "name": str(name),
            "shape": [len(frame)],
            "datatype": "FP64" if inputs[name].dtype.kind in "fi" else "BYTES",
            "data": column.tolist(),
        }
        for name, column in frame.items()
    ]
    return orjson.dumps({"inputs": tensors})
