"""Turn a REST predict body into a model's inputs, or say what is wrong, row by row.

Numeric models take two paths. The fast one handles valid input with a handful of C-level
passes (orjson, one type scan, one ``numpy.array``, one bounds check). Anything it does not
accept falls through to the slow one, which walks the input and names every problem by row
and feature. Valid input never pays for the error reporting; invalid input is never served.
Typed models (categories, booleans, nulls) always walk the values: each is checked against
its feature's type (serving/features.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from itertools import chain
from typing import Any

import numpy as np
import orjson

from serving.errors import ErrorEntry, InvalidInputError, entry
from serving.features import MAX_ABS_VALUE, FeatureSchema, Inputs, Rows

MAX_PROBLEMS = 100
"""Most problems reported for one request; a note says when there were more."""

_NUMBER_TYPES = frozenset({int, float})
_LOC = ["body", "instances"]


def parse_instances(body: bytes, schema: FeatureSchema, max_rows: int) -> Inputs:
    """The ``instances`` of a predict body: a (rows, features) float64 matrix for a numeric
    model, typed rows in feature order otherwise.

    Raises InvalidInputError (422) listing each problem by row and feature.
    """
    instances = _instances(decode_json(body), max_rows)
    if schema.numeric_only:
        matrix = _fast_path(instances, schema, _only_numbers(body))
        if matrix is not None:
            return matrix
    rows: Rows = []
    problems: list[ErrorEntry] = []
    for i, instance in enumerate(instances):
        row, found = _row(i, instance, schema)
        rows.append(row)
        problems.extend(found)
        if len(problems) > MAX_PROBLEMS:
            note = f"More than {MAX_PROBLEMS} problems; the first are listed"
            raise InvalidInputError([*problems[:MAX_PROBLEMS], entry(_LOC, note, "too_many")])
    if problems:
        raise InvalidInputError(problems)
    if schema.numeric_only:  # valid, only unusual for the fast path (named and positional)
        return np.array(rows, dtype=np.float64)
    return rows


def decode_json(body: bytes) -> Any:
    """orjson, or Python's json for what orjson rejects (NaN, Infinity, integers beyond 64
    bits) so that those are reported by row and feature instead of as a syntax error."""
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
    except ValueError:  # an integer literal longer than Python's 4,300-digit limit
        raise InvalidInputError(
            [entry(["body"], "A number in the body is too long to read", "json_invalid")]
        ) from None


def _instances(document: Any, max_rows: int) -> list[Any]:
    if type(document) is not dict:
        raise InvalidInputError(
            [entry(["body"], "Input should be an object with an 'instances' list", "dict_type")]
        )
    problems = [
        entry(["body", key], "Extra inputs are not permitted", "extra_forbidden")
        for key in document
        if key != "instances"
    ]
    instances = document.get("instances")
    if "instances" not in document:
        problems.append(entry(_LOC, "Field required", "missing"))
    elif type(instances) is not list:
        problems.append(entry(_LOC, "Input should be a list of instances", "list_type"))
    elif not instances:
        problems.append(entry(_LOC, "At least one instance is required", "too_short"))
    elif len(instances) > max_rows:
        msg = f"At most {max_rows} instances per request, got {len(instances)}"
        problems.append(entry(_LOC, msg, "too_long"))
    if problems:
        raise InvalidInputError(problems)
    return instances if type(instances) is list else []


def _only_numbers(body: bytes) -> bool:
    """True when the body's only string is the "instances" key and it holds no boolean:
    then every leaf is a number, null or an array, which numpy, the shape check and the
    bounds check below settle without looking at each value's type."""
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


def _row(i: int, instance: Any, schema: FeatureSchema) -> tuple[list[Any], list[ErrorEntry]]:
    """The instance's values in feature order, and what is wrong with them."""
    loc: list[str | int] = [*_LOC, i]
    if type(instance) is dict:
        problems = [
            entry([*loc, name], "Field required", "missing")
            for name in schema.names
            if name not in instance
        ]
        problems += [
            entry([*loc, str(key)], "Unknown feature (see GET /model)", "extra_forbidden")
            for key in instance
            if key not in schema.known
        ]
        values = [instance.get(name) for name in schema.names]
        present = [name in instance for name in schema.names]
    elif type(instance) is list:
        if len(instance) != schema.width:
            msg = (
                f"Expected {schema.width} values in the model's feature order "
                f"(see GET /model), got {len(instance)}"
            )
            kind = "too_short" if len(instance) < schema.width else "too_long"
            return [], [entry(loc, msg, kind)]
        problems, values, present = [], instance, [True] * schema.width
    else:
        msg = "Input should be an object keyed by feature name or an array of values"
        return [], [entry(loc, msg, "instance_type")]
    for index, (name, value) in enumerate(zip(schema.names, values, strict=True)):
        problem = schema.problem(index, value) if present[index] else None
        if problem is not None:
            problems.append(entry([*loc, name], *problem))
    return values, problems
