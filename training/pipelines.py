"""The built-in estimators: always one scikit-learn ``Pipeline`` ending in "model".

Serving calls ``predict`` / ``predict_proba`` on the features in the metadata's order;
everything the model needs (imputing, encoding, scaling) lives inside the pipeline, so the
notebook, the training job and the service agree (docs/training.md, "Default pipelines").

- Numbers only, none missing (a float64 matrix): the estimator, after a StandardScaler for
  the linear ones.
- Typed columns (a DataFrame): a ColumnTransformer ``prepare`` first. Numbers: median
  imputation (+ StandardScaler for the linear estimators); categories and booleans: most
  frequent value imputation + one-hot encoding that ignores unknown categories.
  ``hist_gradient_boosting`` instead uses its native categorical support: categories and
  booleans are ordinal-encoded (unknown and missing both become NaN, which it treats as
  missing), numbers pass through (it handles NaN itself), and ``categorical_features``
  names the encoded columns.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from serving.artifact import FeatureType
from training.dataset import Task

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
    estimator: str,
    task: Task,
    *,
    seed: int,
    params: dict[str, Any] | None = None,
    columns: dict[str, FeatureType] | None = None,
) -> Pipeline:
    """A fresh, unfitted pipeline; ``params`` are the final estimator's hyper-parameters.

    ``columns`` (name -> type) when the data is a DataFrame; None for a float64 matrix.
    """
    if estimator not in _ESTIMATORS:
        raise PipelineError(f"unknown model {estimator!r}; choose one of {', '.join(ESTIMATORS)}")
    factory = _ESTIMATORS[estimator][0 if task == "classification" else 1]
    if factory is None:
        usable = [n for n, f in _ESTIMATORS.items() if f[0 if task == "classification" else 1]]
        raise PipelineError(
            f"model {estimator!r} does not do {task}; for {task} choose one of {', '.join(usable)}"
        )
    model = factory(seed)
    if columns is not None and estimator == "hist_gradient_boosting":
        others = [name for name, kind in columns.items() if kind != "number"]
        model.set_params(categorical_features=list(range(len(others))) or None)
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
    if columns is not None:
        steps.append(("prepare", _prepare(estimator, columns)))
    elif estimator in _SCALED:
        steps.append(("scale", StandardScaler()))
    steps.append(("model", model))
    return Pipeline(steps)


def _prepare(estimator: str, columns: dict[str, FeatureType]) -> ColumnTransformer:
    numbers = [name for name, kind in columns.items() if kind == "number"]
    others = [name for name, kind in columns.items() if kind != "number"]
    if estimator == "hist_gradient_boosting":  # categories first: categorical_features 0..k-1
        encode = OrdinalEncoder(
            handle_unknown="use_encoded_value", unknown_value=np.nan, encoded_missing_value=np.nan
        )
        return ColumnTransformer(
            [("categories", encode, others), ("numbers", "passthrough", numbers)]
        )
    number_steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median"))]
    if estimator in _SCALED:
        number_steps.append(("scale", StandardScaler()))
    category_steps = [
        ("impute", SimpleImputer(strategy="most_frequent")),
        ("onehot", OneHotEncoder(handle_unknown="ignore")),
    ]
    return ColumnTransformer(
        [
            ("numbers", Pipeline(number_steps), numbers),
            ("categories", Pipeline(category_steps), others),
        ]
    )
