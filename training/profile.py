"""The reference profile saved with every version: what "normal" input and output looked like.

Drift is measured against it (docs/training.md, "Reference profile"). A number is
summarised by counts between fixed bin edges — the deciles of its non-missing reference
values, made unique, so at most 10 bins, the first edge its minimum and the last its
maximum (``numpy.histogram``'s bins: each includes its left edge, the last also its right
one) — plus its missing count, mean and standard deviation. A category or boolean is
summarised by the count of each value (booleans as ``"true"``/``"false"``) and its missing
count. Predictions are profiled the same way: class counts for a classifier, a number
profile of the predicted values for a regressor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from serving.artifact import (
    CategoryProfile,
    FeatureProfile,
    FeatureSpec,
    NumberProfile,
    ReferenceProfile,
)

DECILES = np.linspace(0.0, 1.0, 11)


def reference_profile(
    X: Any,
    specs: Sequence[FeatureSpec],
    predictions: np.ndarray,
    *,
    source: Literal["training", "evaluation"],
    classes: Sequence[str] | None,
) -> ReferenceProfile:
    """Profile ``X`` (a float64 matrix or a DataFrame in ``specs`` order) and ``predictions``."""
    features: dict[str, FeatureProfile] = {}
    for i, spec in enumerate(specs):
        if isinstance(X, pd.DataFrame):
            column: Any = X[spec.name]
        else:
            column = np.asarray(X[:, i], dtype=np.float64)
        if spec.type == "number":
            features[spec.name] = number_profile(np.asarray(column, dtype=np.float64))
        elif spec.type == "boolean":
            values = pd.Series(column, dtype=object)
            present = values.dropna()
            counts = {"true": 0, "false": 0}
            for value in present:
                counts["true" if bool(value) else "false"] += 1
            features[spec.name] = CategoryProfile(counts=counts, missing=len(values) - len(present))
        else:
            features[spec.name] = category_profile(pd.Series(column), spec.categories or [])
    if classes is not None:
        predicted = category_profile(pd.Series(np.asarray(predictions).astype(str)), classes)
        profile: FeatureProfile = predicted
    else:
        profile = number_profile(np.asarray(predictions, dtype=np.float64))
    return ReferenceProfile(
        source=source, rows=len(predictions), features=features, predictions=profile
    )


def number_profile(values: np.ndarray) -> NumberProfile:
    present = values[~np.isnan(values)]
    missing = int(values.size - present.size)
    if present.size == 0:  # the schema refuses such a column before profiling
        raise ValueError("cannot profile a number with no values")
    edges = np.unique(np.quantile(present, DECILES))
    counts = np.histogram(present, bins=edges)[0] if edges.size > 1 else np.array([], dtype=int)
    return NumberProfile(
        edges=[float(e) for e in edges],
        counts=[int(c) for c in counts],
        missing=missing,
        mean=float(present.mean()),
        std=float(present.std()),
    )


def category_profile(values: pd.Series, known: Sequence[str]) -> CategoryProfile:
    """Counts of each value, with every ``known`` value present (zero when unseen)."""
    present = values.dropna().astype(str)
    counts = dict.fromkeys(known, 0)
    for value, count in present.value_counts(sort=False).items():
        counts[str(value)] = int(count)
    ordered = {k: counts[k] for k in [*known, *sorted(set(counts) - set(known))]}
    return CategoryProfile(counts=ordered, missing=int(len(values) - len(present)))
