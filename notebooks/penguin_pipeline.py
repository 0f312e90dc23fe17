"""The penguin classifier's pipeline: code that the notebook and the training job share.

The notebook imports this module to fit and register the pipeline; the training job
rebuilds it from the same code:

    python -m training train --dataset penguins \
        --pipeline notebooks/penguin_pipeline.py:build_pipeline --trust penguin_pipeline.BillShape

Both see the module as ``penguin_pipeline`` (the job imports ``FILE.py`` under its stem,
with its folder on ``sys.path``), so the custom transformer is saved under the same name,
``penguin_pipeline.BillShape``: the one type to trust (``--trust``, ``trusted=[...]``, and
``MODEL_TRUSTED_TYPES`` for the service, which also needs this folder on ``PYTHONPATH``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

BILL = ["bill_length_mm", "bill_depth_mm"]
BODY = ["flipper_length_mm", "body_mass_g"]
CATEGORIES = ["island", "sex"]


class BillShape(TransformerMixin, BaseEstimator):
    """Bill length and depth plus their ratio: Gentoo bills are long and thin, Adelie ones
    short and deep, Chinstrap ones long and deep; the ratio separates the first two."""

    def fit(self, X: Any, y: Any = None) -> BillShape:
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def transform(self, X: Any) -> np.ndarray:
        values = np.asarray(X, dtype=np.float64)
        return np.hstack([values, values[:, [0]] / values[:, [1]]])

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        names = list(input_features) if input_features is not None else BILL
        return np.asarray([*names, "bill_ratio"], dtype=object)


def build_pipeline(seed: int = 0) -> Pipeline:
    """Impute, add the bill ratio, scale; one-hot the island and sex; logistic regression."""
    bill = Pipeline(
        [
            ("impute", SimpleImputer(strategy="median")),
            ("shape", BillShape()),
            ("scale", StandardScaler()),
        ]
    )
    body = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    categories = Pipeline(
        [
            ("impute", SimpleImputer(strategy="most_frequent")),
            ("onehot", OneHotEncoder(handle_unknown="ignore")),
        ]
    )
    prepare = ColumnTransformer(
        [("bill", bill, BILL), ("body", body, BODY), ("categories", categories, CATEGORIES)]
    )
    model = LogisticRegression(C=0.5, max_iter=5000, random_state=seed)
    return Pipeline([("prepare", prepare), ("model", model)])
