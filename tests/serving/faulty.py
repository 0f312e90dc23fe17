"""A real estimator that fails the way a buggy user pipeline does: RuntimeError on a value.

Importable by the server process (tests are a package), so it can be saved in an artifact.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

TRIGGER = -13.0
"""A first feature equal to this (never in the training data) makes predict_proba raise."""


class FailsOnThirteen(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    def fit(self, X: np.ndarray, y: np.ndarray) -> FailsOnThirteen:
        self.classes_ = np.unique(y)
        self.n_features_in_ = X.shape[1]
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if (X[:, 0] == TRIGGER).any():
            raise RuntimeError("a bug in the user's estimator")
        return np.full((X.shape[0], len(self.classes_)), 1.0 / len(self.classes_))

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]  # type: ignore[no-any-return]
