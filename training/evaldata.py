"""The evaluation data of a model being registered, in the shape its schema will have.

A DataFrame keeps its columns (in the model's ``feature_names_in_`` order when it has one);
an array needs ``feature_names=`` and holds numbers. A model fitted on an array (no
``feature_names_in_``) and given numbers only is evaluated on a float64 matrix: the
service's fast path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from training.dataset import DataError


def evaluation_features(
    model: Any, X: Any, y: Any, feature_names: Sequence[str] | None
) -> tuple[Any, np.ndarray, list[str]]:
    """(features as a DataFrame or float64 matrix, y as a 1-D array, feature names)."""
    fitted_names = getattr(model, "feature_names_in_", None)
    expected = [str(n) for n in fitted_names] if fitted_names is not None else None
    if isinstance(X, pd.DataFrame):
        features, names = _frame(X, feature_names, expected)
    else:
        features, names = _array(X, feature_names, expected)
    n_expected = getattr(model, "n_features_in_", None)
    if n_expected is not None and len(names) != n_expected:
        raise DataError(f"the model expects {n_expected} features, X has {len(names)}")
    labels = np.asarray(y.to_numpy() if isinstance(y, pd.Series | pd.DataFrame) else y)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels.ravel()
    if labels.ndim != 1:
        raise DataError(f"y must be one column of targets, got shape {labels.shape}")
    if len(labels) != len(features):
        raise DataError(f"X has {len(features)} rows but y has {len(labels)}")
    if len(labels) < 2:
        raise DataError(f"the evaluation data needs at least two rows, found {len(labels)}")
    if pd.isna(pd.Series(labels)).any():
        raise DataError("y has missing values; drop those rows")
    return features, labels, names


def _frame(
    X: pd.DataFrame, feature_names: Sequence[str] | None, expected: list[str] | None
) -> tuple[Any, list[str]]:
    if not all(isinstance(c, str) for c in X.columns):
        raise DataError("X's column names must be strings (they become the feature names)")
    names = list(X.columns)
    if len(set(names)) != len(names):
        raise DataError("X has duplicated column names")
    if feature_names is not None and list(feature_names) != names:
        raise DataError("feature_names differ from X's columns; leave it out for a DataFrame")
    if expected is not None:
        missing = [n for n in expected if n not in names]
        extra = [n for n in names if n not in expected]
        if missing or extra:
            raise DataError(
                "X's columns differ from those the model was fitted on: "
                f"missing {missing or 'none'}, unexpected {extra or 'none'}"
            )
        return X[expected].reset_index(drop=True), expected
    numeric = all(
        pd.api.types.is_numeric_dtype(X[n]) and not pd.api.types.is_bool_dtype(X[n]) for n in names
    )
    if numeric:
        return np.ascontiguousarray(X.to_numpy(dtype=np.float64)), names
    return X.reset_index(drop=True), names


def _array(
    X: Any, feature_names: Sequence[str] | None, expected: list[str] | None
) -> tuple[Any, list[str]]:
    try:
        matrix = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(
            "an array X must hold numbers; pass a DataFrame for categories or booleans"
        ) from None
    if matrix.ndim != 2:
        raise DataError(f"X must be two-dimensional (rows, features), got shape {matrix.shape}")
    names = [str(n) for n in feature_names] if feature_names is not None else expected
    if names is None:
        raise DataError("an array X needs feature_names=[...] (or pass a DataFrame)")
    if len(names) != matrix.shape[1]:
        raise DataError(f"{len(names)} feature_names for {matrix.shape[1]} columns of X")
    if len(set(names)) != len(names):
        raise DataError("feature_names has duplicates")
    if expected is not None:  # fitted on a DataFrame: feed it one
        if names != expected:
            raise DataError(f"feature_names differ from the model's: {expected}")
        return pd.DataFrame(matrix, columns=names), names
    return np.ascontiguousarray(matrix), names
