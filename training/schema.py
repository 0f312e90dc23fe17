"""The feature schema: each column's type, nullability, dtype and statistics (docs/training.md,
"Data types").

The service rebuilds a DataFrame from JSON with exactly the recorded dtypes, so what is
recorded here is also what the pipeline must have been fitted on: :func:`conform` makes
evaluation data look like that before a registered model is scored on it.

| data                               | type     | dtype recorded                         |
|------------------------------------|----------|----------------------------------------|
| float64 (any float)                | number   | ``float64``                            |
| int64 without missing values       | number   | ``int64`` (other integers: ``float64``)|
| bool / pandas ``boolean``          | boolean  | ``bool`` / ``boolean``                 |
| object of True/False (NaN)         | boolean  | ``object``                             |
| pandas ``str`` / ``string``        | category | ``str``                                |
| object of strings (NaN)            | category | ``object``                             |
| pandas ``category`` of strings     | category | ``category`` (categories in its order) |
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from serving.artifact import FeatureSpec, FeatureType
from training.dataset import DataError


def column_type(series: pd.Series) -> tuple[FeatureType, str]:
    """(type, dtype to record) of one column; DataError for a dtype the service cannot feed."""
    dtype = series.dtype
    name = series.name
    if isinstance(dtype, pd.CategoricalDtype):
        if not all(isinstance(c, str) for c in dtype.categories):
            raise DataError(f"column {name!r}: a category dtype needs string categories")
        return "category", "category"
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean", "boolean" if isinstance(dtype, pd.BooleanDtype) else "bool"
    if pd.api.types.is_numeric_dtype(dtype):
        exact_int = dtype == np.int64 and not series.isna().any()
        return "number", "int64" if exact_int else "float64"
    is_object = pd.api.types.is_object_dtype(dtype)
    if pd.api.types.is_string_dtype(dtype) and not is_object:
        return "category", "str"
    if is_object:
        present = series.dropna()
        if len(present) and all(isinstance(v, bool | np.bool_) for v in present):
            return "boolean", "object"
        if all(isinstance(v, str) for v in present):
            return "category", "object"
        raise DataError(f"column {name!r}: values must all be strings or all True/False")
    raise DataError(
        f"column {name!r}: dtype {dtype} is not supported; use numbers, strings or booleans"
    )


def feature_specs(fit: Any, every: Any, names: Sequence[str]) -> list[FeatureSpec]:
    """Specs of every column: statistics from ``fit`` (the rows a model learned from, or was
    evaluated on), nullability from ``every`` (all rows seen, training and held-out)."""
    if not isinstance(fit, pd.DataFrame):
        matrix, all_rows = np.asarray(fit, dtype=np.float64), np.asarray(every, dtype=np.float64)
        return [
            _number(name, matrix[:, i], "float64", bool(np.isnan(all_rows[:, i]).any()))
            for i, name in enumerate(names)
        ]
    specs = []
    for name in names:
        series = fit[name]
        kind, dtype = column_type(series)
        nullable = bool(every[name].isna().any())
        if kind == "number":
            specs.append(_number(name, series.to_numpy(dtype=np.float64), dtype, nullable))
        elif kind == "boolean":
            specs.append(FeatureSpec(name=name, type=kind, nullable=nullable, dtype=dtype))
        else:
            if isinstance(series.dtype, pd.CategoricalDtype):
                categories = [str(c) for c in series.dtype.categories]
            else:
                categories = sorted({str(v) for v in series.dropna()})
            specs.append(
                FeatureSpec(
                    name=name, type=kind, nullable=nullable, dtype=dtype, categories=categories
                )
            )
    return specs


def _number(name: str, values: np.ndarray, dtype: str, nullable: bool) -> FeatureSpec:
    present = values[~np.isnan(values)]
    if present.size == 0:
        raise DataError(f"column {name!r} has no values in the rows the model learned from")
    return FeatureSpec(
        name=name,
        type="number",
        nullable=nullable,
        dtype=dtype,
        min=float(present.min()),
        max=float(present.max()),
        mean=float(present.mean()),
        std=float(present.std()),
    )


def conform(frame: pd.DataFrame, specs: Sequence[FeatureSpec]) -> pd.DataFrame:
    """``frame``'s columns in schema order with exactly the recorded dtypes, as the service
    builds them (NaN for a missing number, category or object boolean)."""
    columns = {}
    for spec in specs:
        series = frame[spec.name]
        if spec.dtype == "category":
            dtype: Any = pd.CategoricalDtype(spec.categories)
            columns[spec.name] = series.astype(dtype)
        elif spec.dtype in ("str", "object") and spec.type == "category":
            values = [v if isinstance(v, str) else np.nan for v in series.tolist()]
            columns[spec.name] = pd.Series(values, dtype=spec.dtype, index=frame.index)
        elif spec.dtype == "object":
            values = [bool(v) if isinstance(v, bool | np.bool_) else np.nan for v in series]
            columns[spec.name] = pd.Series(values, dtype=object, index=frame.index)
        else:
            columns[spec.name] = series.astype(spec.dtype)
    return pd.DataFrame(columns, index=frame.index)
