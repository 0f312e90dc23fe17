"""The estimators a model can be: always one scikit-learn ``Pipeline`` ending in "model".

Serving unpickles the pipeline and calls ``predict`` / ``predict_proba`` on a float
matrix in the metadata's feature order; everything the model needs (scaling included)
lives inside the pipeline, so the notebook, the training job and the service agree.
"""

from __future__ import annotations

from typing import Any

from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from training.data import Task

# name -> (classifier factory, regressor factory); None where the task does not apply.
_ESTIMATORS: dict[str, tuple[Any, Any]] = {
    "logistic_regression": (
        lambda seed: LogisticRegression(max_iter=5000, random_state=seed),
        None,
    ),
    "ridge": (None, lambda seed: Ridge(random_state=seed)),
    "random_forest": (
        lambda seed: RandomForestClassifier(n_estimators=100, random_state=seed),
        lambda seed: RandomForestRegressor(n_estimators=100, random_state=seed),
    ),
    "hist_gradient_boosting": (
        lambda seed: HistGradientBoostingClassifier(random_state=seed),
        lambda seed: HistGradientBoostingRegressor(random_state=seed),
    ),
}
ESTIMATORS = tuple(_ESTIMATORS)
_SCALED = {"logistic_regression", "ridge"}


class PipelineError(ValueError):
    """An unknown estimator, one that does not fit the task, or a bad hyper-parameter."""


def default_estimator(task: Task) -> str:
    return "logistic_regression" if task == "classification" else "ridge"


def build_pipeline(
    estimator: str, task: Task, *, seed: int, params: dict[str, Any] | None = None
) -> Pipeline:
    """A fresh, unfitted pipeline; ``params`` are the final estimator's hyper-parameters."""
    if estimator not in _ESTIMATORS:
        raise PipelineError(f"unknown model {estimator!r}; choose one of {', '.join(ESTIMATORS)}")
    factory = _ESTIMATORS[estimator][0 if task == "classification" else 1]
    if factory is None:
        usable = [n for n, f in _ESTIMATORS.items() if f[0 if task == "classification" else 1]]
        raise PipelineError(
            f"model {estimator!r} does not do {task}; for {task} choose one of {', '.join(usable)}"
        )
    model = factory(seed)
    if params:
        known = model.get_params()
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise PipelineError(
                f"unknown parameter(s) for {estimator}: {', '.join(unknown)}; "
                f"valid: {', '.join(sorted(known))}"
            )
        model.set_params(**params)
    steps: list[tuple[str, Any]] = []
    if estimator in _SCALED:
        steps.append(("scale", StandardScaler()))
    steps.append(("model", model))
    return Pipeline(steps)
