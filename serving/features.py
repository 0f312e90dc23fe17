"""A model's inputs: typed features, what values each accepts, and how a pipeline gets them.

Every protocol (our REST API, the Open Inference Protocol) turns its payload into the same
thing, validated against this schema: a float64 matrix for a model whose features are all
non-nullable numbers (the fast path), or rows of JSON values in feature order for a typed
model (numbers, strings for categories, booleans, ``None`` where nullable). The model then
feeds its pipeline what it was fitted on: the matrix itself, or a pandas DataFrame whose
columns have the dtypes recorded at training (docs/architecture.md, "Typed features").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from serving.artifact import FeatureSpec

if TYPE_CHECKING:
    import pandas as pd

MAX_ABS_VALUE = 1e15
"""Largest magnitude accepted for a number: beyond it float64 arithmetic inside a pipeline
(scaling, exp) can overflow, and no real measurement is that large."""

MAX_CATEGORY_CHARS = 1000
"""Longest string accepted for a category (the log stores what was sent)."""

Rows = list[list[Any]]
"""Typed instances: one list of JSON values per row, in feature order."""
Inputs = np.ndarray | Rows
"""What a model predicts on: a float64 matrix (numeric models) or typed rows."""

Problem = tuple[str, str]
"""(message, type) of one invalid value, in FastAPI's vocabulary."""


class FeatureSchema:
    """The model's input columns, in the order the pipeline expects them."""

    __slots__ = (
        "_numbers",
        "_unseen",
        "known",
        "names",
        "numeric_only",
        "pick",
        "specs",
        "train_max",
        "train_min",
        "width",
    )

    def __init__(self, specs: Sequence[FeatureSpec]) -> None:
        self.specs = tuple(specs)
        self.names = tuple(spec.name for spec in specs)
        self.known = frozenset(self.names)
        self.width = len(self.names)
        self.numeric_only = all(s.type == "number" and not s.nullable for s in specs)
        getter = itemgetter(*self.names)
        # itemgetter of one key returns the value itself, not a 1-tuple.
        self.pick: Callable[[dict[str, Any]], Sequence[Any]] = (
            getter if self.width > 1 else lambda row: (getter(row),)
        )
        self._numbers = [i for i, s in enumerate(specs) if s.type == "number"]
        self.train_min = np.array([_or_nan(specs[i].min) for i in self._numbers])
        self.train_max = np.array([_or_nan(specs[i].max) for i in self._numbers])
        self._unseen = [
            (i, frozenset(s.categories or ())) for i, s in enumerate(specs) if s.type == "category"
        ]

    def problem(self, index: int, value: Any) -> Problem | None:
        """Why ``value`` cannot be feature ``index``, or None when it can."""
        spec = self.specs[index]
        if value is None:
            if spec.nullable:
                return None
            return f"Input should be {_WANTED[spec.type]}, not null", _TYPE_ERROR[spec.type]
        if spec.type == "number":
            return number_problem(value)
        if spec.type == "category":
            return _category_problem(value)
        if type(value) is not bool:
            return f"Input should be true or false, not {json_type(value)}", "bool_type"
        return None

    def outside(self, inputs: Inputs) -> np.ndarray | None:
        """(rows, features) mask of values outside the training range, or categories not seen
        in training; None when there are none (the common case, cheaply)."""
        if isinstance(inputs, np.ndarray):
            flagged = (inputs < self.train_min) | (inputs > self.train_max)
            return flagged if flagged.any() else None
        mask = np.zeros((len(inputs), self.width), dtype=bool)
        for column, index in enumerate(self._numbers):
            values = np.array(
                [np.nan if row[index] is None else row[index] for row in inputs], dtype=np.float64
            )
            low, high = self.train_min[column], self.train_max[column]
            mask[:, index] = (values < low) | (values > high)
        for index, seen in self._unseen:
            if seen:
                mask[:, index] = [
                    row[index] is not None and row[index] not in seen for row in inputs
                ]
        return mask if mask.any() else None

    def probe(self) -> Inputs:
        """Rows spanning the training data, for warm-up and for verifying shortcuts."""
        if self.numeric_only:
            low, high = self.train_min, self.train_max
            mean = np.array([s.mean for s in self.specs], dtype=np.float64)
            random = np.random.default_rng(0).uniform(low, high, size=(64, len(low)))
            return np.vstack([mean, low, high, random])
        rows: Rows = [[_typical(spec) for spec in self.specs]]
        if any(spec.nullable for spec in self.specs):
            rows.append([None if s.nullable else _typical(s) for s in self.specs])
        return rows

    def to_frame(self, inputs: Inputs) -> pd.DataFrame:
        """The inputs as a DataFrame with the dtypes the pipeline was fitted with."""
        import pandas as pd  # noqa: PLC0415 - only typed models pay for importing pandas

        if isinstance(inputs, np.ndarray):
            return pd.DataFrame(inputs, columns=list(self.names), copy=False)
        columns = list(zip(*inputs, strict=True)) if inputs else [()] * self.width
        data = {
            spec.name: _column(pd, spec, values)
            for spec, values in zip(self.specs, columns, strict=True)
        }
        return pd.DataFrame(data)


def number_problem(value: Any) -> Problem | None:
    """Why ``value`` is not an acceptable number, or None."""
    kind = type(value)
    if kind is bool:
        return "Input should be a number, not a boolean", "float_type"
    if kind is not int and kind is not float:
        return f"Input should be a number, not {json_type(value)}", "float_type"
    try:
        finite = math.isfinite(value)
    except OverflowError:
        finite = False
    if not finite:
        return (
            "Input should be a finite number (NaN and Infinity are not accepted)",
            "finite_number",
        )
    if abs(value) > MAX_ABS_VALUE:
        return f"Input should be between -{MAX_ABS_VALUE:g} and {MAX_ABS_VALUE:g}", "number_range"
    return None


def _category_problem(value: Any) -> Problem | None:
    if type(value) is not str:
        return f"Input should be a string (a category), not {json_type(value)}", "string_type"
    if len(value) > MAX_CATEGORY_CHARS:
        return f"A category has at most {MAX_CATEGORY_CHARS} characters", "string_too_long"
    return None


def json_type(value: Any) -> str:
    """How a JSON value's type reads in an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "a number" if isinstance(value, int | float) else type(value).__name__


_WANTED = {"number": "a number", "category": "a string (a category)", "boolean": "true or false"}
_TYPE_ERROR = {"number": "float_type", "category": "string_type", "boolean": "bool_type"}


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else value


def _typical(spec: FeatureSpec) -> Any:
    if spec.type == "number":
        return spec.mean
    if spec.type == "category":
        return (spec.categories or [""])[0]
    return False


def _column(pd: Any, spec: FeatureSpec, values: Sequence[Any]) -> Any:
    """One column in the recorded dtype; nulls as NaN (what imputers and encoders expect)."""
    if spec.type == "number":
        array = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        if spec.dtype.startswith(("int", "uint")) and not np.isnan(array).any():
            return array.astype(spec.dtype)
        return array
    if spec.dtype == "category":
        return pd.Series(values, dtype=pd.CategoricalDtype(spec.categories))
    if spec.dtype == "boolean":
        return pd.Series(values, dtype="boolean")
    if spec.dtype == "bool" and None not in values:
        return np.array(values, dtype=bool)
    dtype = spec.dtype if spec.dtype in ("str", "string", "object") else object
    return pd.Series([np.nan if v is None else v for v in values], dtype=dtype)
