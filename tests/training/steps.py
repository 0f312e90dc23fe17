"""A user's own pipeline code, as a test imports it: a custom transformer class, a function
for a FunctionTransformer, and builders for ``--pipeline`` and ``register``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

NUMBERS = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
CATEGORIES = ["island", "sex"]


class BillRatio(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Adds bill length / bill depth, a feature the species differ in."""

    def fit(self, X: pd.DataFrame, y: Any = None) -> BillRatio:
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        values = np.asarray(X, dtype=np.float64)
        ratio = values[:, [0]] / values[:, [1]]
        return np.hstack([values, ratio])


def log_mass(X: Any) -> Any:
    return np.log(np.asarray(X, dtype=np.float64))


def build_pipeline(seed: int = 0) -> Pipeline:
    """Imputer, the custom ratio, scaling; one-hot categories; a logistic regression."""
    numbers = Pipeline(
        [("impute", SimpleImputer()), ("ratio", BillRatio()), ("scale", StandardScaler())]
    )
    categories = Pipeline(
        [
            ("impute", SimpleImputer(strategy="most_frequent")),
            ("onehot", OneHotEncoder(handle_unknown="ignore")),
        ]
    )
    prepare = ColumnTransformer(
        [("numbers", numbers, NUMBERS), ("categories", categories, CATEGORIES)]
    )
    return Pipeline(
        [("prepare", prepare), ("model", LogisticRegression(max_iter=5000, random_state=seed))]
    )


def build_with_function() -> Pipeline:
    """No seed parameter; a FunctionTransformer over this module's function; a forest whose
    random_state is left None (the job sets it to the seed)."""
    prepare = ColumnTransformer(
        [
            (
                "mass",
                Pipeline([("impute", SimpleImputer()), ("log", FunctionTransformer(log_mass))]),
                ["body_mass_g"],
            ),
            ("numbers", SimpleImputer(), NUMBERS[:3]),
            ("categories", OneHotEncoder(handle_unknown="ignore"), ["island"]),
        ]
    )
    return Pipeline([("prepare", prepare), ("model", RandomForestClassifier(n_estimators=20))])


def not_an_estimator() -> str:
    return "a string"


class NoPredict(BaseEstimator):  # type: ignore[misc]
    def fit(self, X: Any, y: Any = None) -> NoPredict:
        return self


def no_predict() -> NoPredict:
    return NoPredict()


def broken(seed: int) -> Pipeline:
    raise RuntimeError(f"cannot build with seed {seed}")
