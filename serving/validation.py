"""Turn a /predict body into a float matrix in the model's feature order, or say what is wrong.

Two paths. The fast one handles valid input with a handful of C-level passes (orjson,
one type scan, one ``numpy.array``, one ``isfinite``). Anything it does not accept falls
through to the slow one, which walks the input and names every problem by row and
feature. Valid input never pays for the error reporting; invalid input is never served.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np
import orjson

from serving.errors import ErrorEntry, InvalidInputError, entry

MAX_ABS_VALUE = 1e15
"""Largest magnitude accepted for a feature: beyond it float64 arithmetic inside a
pipeline (scaling, exp) can overflow, and no real measurement is that large."""

MAX_PROBLEMS = 100
"""Most problems reported for one request; a note says when there were more."""

_NUMBER_TYPES = frozenset({int, float})
_LOC = ["body", "instances"]


class FeatureSchema:
    """The model's input columns, in the order the pipeline expects them."""

    __slots__ = ("known", "names", "pick", "width")

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        self.known = frozenset(self.names)
        self.width = len(self.names)
        getter = itemgetter(*self.names)
        # itemgetter of one key returns the value itself, not a 1-tuple.
        self.pick: Callable[[dict[str, Any]], Sequence[Any]] = (
            getter if self.width > 1 else lambda row: (getter(row),)
        )


def parse_instances(body: bytes, schema: FeatureSchema, max_rows: int) -> np.ndarray:
    """The ``instances`` of a /predict body as a (rows, features) float64 matrix.

    Raises InvalidInputError (422) listing each problem by row and feature.
    """
    document = decode_json(body)
    if type(document) is not dict:
        raise InvalidInputError(
            [entry(["body"], "Input should be an object with an 'instances' list", "dict_type")]
        )
    problems = [
        entry(["body", key], "Extra inputs are not permitted", "extra_forbidden")
        for key in document
        if key != "instances"
    ]
    if "instances" not in document:
        problems.append(entry(_LOC, "Field required", "missing"))
        raise InvalidInputError(problems)
    instances = document["instances"]
    if type(instances) is not list:
        problems.append(entry(_LOC, "Input should be a list of instances", "list_type"))
    elif not instances:
        problems.append(entry(_LOC, "At least one instance is required", "too_short"))
    elif len(instances) > max_rows:
        problems.append(
            entry(
                _LOC, f"At most {max_rows} instances per request, got {len(instances)}", "too_long"
            )
        )
    if problems:
        raise InvalidInputError(problems)
    matrix = _fast_path(instances, schema, _only_numbers(body))
    if matrix is None:
        problems = _problems(instances, schema)
        if problems:
            raise InvalidInputError(problems)
        # Valid, only unusual for the fast path: a mix of named and positional instances.
        rows = [schema.pick(row) if type(row) is dict else row for row in instances]
        matrix = np.array(rows, dtype=np.float64)
    return matrix


def decode_json(body: bytes) -> Any:
    """orjson, or Python's json for what orjson rejects (NaN, Infinity) so that those are
    reported by row and feature instead of as a syntax error."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidInputError(
            [entry(["body"], "Body is not valid UTF-8 JSON", "json_invalid")]
        ) from None
    except json.JSONDecodeError as exc:
        raise InvalidInputError(
            [entry(["body", exc.pos], f"JSON decode error: {exc.msg}", "json_invalid")]
        ) from None
    except RecursionError:
        raise InvalidInputError(
            [entry(["body"], "JSON nested too deeply", "json_invalid")]
        ) from None


def _only_numbers(body: bytes) -> bool:
    """True when the body's only string is the "instances" key and it holds no boolean:
    then every leaf is a number, null or an array, which numpy, the shape check and the
    finiteness check below settle without looking at each value's type."""
    return body.count(b'"') == 2 and b"true" not in body and b"false" not in body


def _fast_path(
    instances: list[Any], schema: FeatureSchema, only_numbers: bool
) -> np.ndarray | None:
    """The matrix, or None when anything at all is unusual (the slow path then explains)."""
    try:
        if type(instances[0]) is dict:
            width = schema.width
            rows: Iterable[Sequence[Any]] = [
                schema.pick(row) if len(row) == width else _raise() for row in instances
            ]
        else:
            rows = instances
        # One C pass over every value, unless the raw body already rules out strings
        # and booleans (numpy would read "1.5" and true as numbers).
        if not only_numbers and not set(map(type, chain.from_iterable(rows))) <= _NUMBER_TYPES:
            return None
        matrix = np.array(rows, dtype=np.float64)
    except (KeyError, TypeError, ValueError, OverflowError):
        return None
    if matrix.ndim != 2 or matrix.shape[1] != schema.width:
        return None
    # One pass rejects NaN (comparisons are False), ±Inf and absurd magnitudes.
    if not (np.abs(matrix) <= MAX_ABS_VALUE).all():
        return None
    return matrix


def _raise() -> Sequence[Any]:
    raise KeyError


def _problems(instances: list[Any], schema: FeatureSchema) -> list[ErrorEntry]:
    problems: list[ErrorEntry] = []
    for i, row in enumerate(instances):
        problems.extend(_row_problems(i, row, schema))
        if len(problems) > MAX_PROBLEMS:
            return [
                *problems[:MAX_PROBLEMS],
                entry(_LOC, f"More than {MAX_PROBLEMS} problems; the first are listed", "too_many"),
            ]
    return problems


def _row_problems(i: int, row: Any, schema: FeatureSchema) -> list[ErrorEntry]:
    loc: list[str | int] = [*_LOC, i]
    if type(row) is dict:
        problems = [
            entry([*loc, name], "Field required", "missing")
            for name in schema.names
            if name not in row
        ]
        problems += [
            entry([*loc, str(key)], "Unknown feature (see GET /model)", "extra_forbidden")
            for key in row
            if key not in schema.known
        ]
        pairs = [(name, row[name]) for name in schema.names if name in row]
    elif type(row) is list:
        if len(row) != schema.width:
            return [
                entry(
                    loc,
                    f"Expected {schema.width} values in the model's feature order "
                    f"(see GET /model), got {len(row)}",
                    "too_short" if len(row) < schema.width else "too_long",
                )
            ]
        problems = []
        pairs = list(zip(schema.names, row, strict=True))
    else:
        msg = "Input should be an object keyed by feature name or an array of numbers"
        return [entry(loc, msg, "instance_type")]
    for name, value in pairs:
        problem = _value_problem(value)
        if problem is not None:
            problems.append(entry([*loc, name], *problem))
    return problems


def _value_problem(value: Any) -> tuple[str, str] | None:
    kind = type(value)
    if kind is bool:
        return "Input should be a number, not a boolean", "float_type"
    if value is None:
        return "Input should be a number, not null", "float_type"
    if kind not in _NUMBER_TYPES:
        return f"Input should be a number, not {_json_type(value)}", "float_type"
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


def _json_type(value: Any) -> str:
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
