"""Open Inference Protocol (KServe V2) tensors to a model's inputs, and outputs to tensors.

Inputs (docs/serving.md, "Open Inference Protocol"): either one 2-D tensor ``[n,
n_features]`` of any name, in feature order (numeric models), or one tensor per feature,
named by the feature, of shape ``[n]`` or ``[n, 1]``: FP64/FP32/FP16 or an integer type for
numbers, BYTES (strings) for categories, BOOL for booleans; ``null`` where the feature is
nullable. ``data`` may be flat (row-major) or nested. Outputs: ``predict`` (``[n]``; BYTES
for string labels, INT64 for integer labels, FP64 for regression) and ``predict_proba``
(``[n, n_classes]``, FP64, class order as in the model's metadata).

Every problem is a ``V2InputError`` naming the input (and the row where there is one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np

from serving.features import MAX_ABS_VALUE, FeatureSchema, Inputs, number_problem
from serving.model import LoadedModel, Prediction

FLOATS = frozenset({"FP64", "FP32", "FP16"})
INTEGERS = frozenset({"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"})
NUMBERS = FLOATS | INTEGERS
DATATYPES = NUMBERS | {"BOOL", "BYTES"}
OUTPUTS = ("predict", "predict_proba")
_NUMBER_TYPES = frozenset({int, float})


class V2InputError(ValueError):
    """A request the protocol or the model's schema refuses; 400 with this message."""


@dataclass(frozen=True)
class Tensor:
    name: str
    shape: tuple[int, ...]
    datatype: str
    data: list[Any]
    """Flattened, row-major."""


def decode(document: Any, schema: FeatureSchema, max_rows: int) -> tuple[Inputs, list[str]]:
    """The request's inputs for the model, and the outputs it asks for (names)."""
    if type(document) is not dict:
        raise V2InputError("the body must be a JSON object with an 'inputs' list")
    unknown = sorted(set(document) - {"id", "parameters", "inputs", "outputs"})
    if unknown:
        raise V2InputError(f"unknown field(s) in the request: {', '.join(unknown)}")
    raw = document.get("inputs")
    if type(raw) is not list or not raw:
        raise V2InputError("'inputs' must be a non-empty list of tensors")
    tensors = [_tensor(item, i) for i, item in enumerate(raw)]
    inputs: Inputs
    if len(tensors) == 1 and tensors[0].name not in schema.known:
        inputs = _matrix(tensors[0], schema)
    else:
        inputs = _columns(tensors, schema)
    rows = len(inputs)
    if rows > max_rows:
        raise V2InputError(f"at most {max_rows} rows per request, got {rows}")
    return inputs, _outputs(document.get("outputs"))


def encode(model: LoadedModel, result: Prediction, wanted: Sequence[str]) -> list[dict[str, Any]]:
    """The requested output tensors."""
    rows = len(result.labels)
    outputs = []
    for name in wanted:
        if name == "predict":
            datatype, data = _labels(model, result.labels)
            outputs.append({"name": name, "shape": [rows], "datatype": datatype, "data": data})
        elif result.probabilities is None:
            raise V2InputError("output 'predict_proba' exists for classifiers with probabilities")
        else:
            proba = result.probabilities
            outputs.append(
                {
                    "name": name,
                    "shape": [rows, int(proba.shape[1])],
                    "datatype": "FP64",
                    "data": proba.ravel().tolist(),
                }
            )
    return outputs


def default_outputs(model: LoadedModel) -> list[str]:
    return ["predict", "predict_proba"] if model.classes is not None else ["predict"]


def label_datatype(model: LoadedModel) -> str:
    if model.classes is None:
        return "FP64"
    return "INT64" if all(_is_int(c) for c in model.classes) else "BYTES"


def input_datatype(kind: str) -> str:
    return {"number": "FP64", "category": "BYTES", "boolean": "BOOL"}[kind]


def _tensor(item: Any, index: int) -> Tensor:
    if type(item) is not dict:
        raise V2InputError(f"inputs[{index}] must be an object")
    name = item.get("name")
    if type(name) is not str or not name:
        raise V2InputError(f"inputs[{index}] needs a 'name'")
    extra = sorted(set(item) - {"name", "shape", "datatype", "parameters", "data"})
    if extra:
        raise V2InputError(f"input {name!r}: unknown field(s) {', '.join(extra)}")
    shape = item.get("shape")
    if type(shape) is not list or not shape or not all(type(d) is int and d >= 0 for d in shape):
        raise V2InputError(f"input {name!r}: 'shape' must be a list of non-negative integers")
    datatype = item.get("datatype")
    if datatype not in DATATYPES:
        raise V2InputError(
            f"input {name!r}: datatype {str(datatype)[:20]!r} is not one of "
            f"{', '.join(sorted(DATATYPES))}"
        )
    data = _flat(item.get("data"), name)
    expected = int(np.prod(shape))
    if len(data) != expected:
        raise V2InputError(
            f"input {name!r}: shape {shape} holds {expected} values, data has {len(data)}"
        )
    return Tensor(name, tuple(shape), datatype, data)


def _flat(data: Any, name: str) -> list[Any]:
    if type(data) is not list:
        raise V2InputError(f"input {name!r}: 'data' must be a list")
    while data and any(type(v) is list for v in data):
        if not all(type(v) is list for v in data):
            raise V2InputError(f"input {name!r}: 'data' mixes lists and values")
        data = list(chain.from_iterable(data))
    return list(data)


def _matrix(tensor: Tensor, schema: FeatureSchema) -> np.ndarray:
    if not schema.numeric_only:
        raise V2InputError(
            f"input {tensor.name!r}: this model has typed features; send one tensor per "
            f"feature, named {', '.join(schema.names)}"
        )
    if len(tensor.shape) != 2 or tensor.shape[1] != schema.width:
        raise V2InputError(
            f"input {tensor.name!r}: expected shape [n, {schema.width}] (the features in "
            f"order, see GET /v2/models/<name>), got {list(tensor.shape)}; or name each "
            "input by its feature"
        )
    if tensor.datatype not in NUMBERS:
        raise V2InputError(f"input {tensor.name!r}: datatype must be numeric, not BOOL or BYTES")
    return _check_numbers(tensor, tensor.name, schema.width).reshape(tensor.shape)


def _columns(tensors: list[Tensor], schema: FeatureSchema) -> Inputs:
    by_name = {t.name: t for t in tensors}
    if len(by_name) != len(tensors):
        raise V2InputError("each input may appear only once")
    extra = [t.name for t in tensors if t.name not in schema.known]
    if extra:
        raise V2InputError(f"unknown input(s) {', '.join(map(repr, extra))}; the model's "
                           f"features are {', '.join(schema.names)}")  # fmt: skip
    missing = [n for n in schema.names if n not in by_name]
    if missing:
        raise V2InputError(f"missing input(s) {', '.join(map(repr, missing))}")
    rows = None
    columns = []
    for index, name in enumerate(schema.names):
        tensor = by_name[name]
        if len(tensor.shape) > 2 or (len(tensor.shape) == 2 and tensor.shape[1] != 1):
            raise V2InputError(f"input {name!r}: expected shape [n] or [n, 1]")
        if rows is None:
            rows = tensor.shape[0]
        elif tensor.shape[0] != rows:
            raise V2InputError(f"input {name!r} has {tensor.shape[0]} rows, others {rows}")
        _check_feature(tensor, schema, index)
        columns.append(tensor.data)
    if not rows:
        raise V2InputError("at least one row is required")
    if schema.numeric_only:
        return np.array(columns, dtype=np.float64).T.copy()
    return [list(row) for row in zip(*columns, strict=True)]


def _check_feature(tensor: Tensor, schema: FeatureSchema, index: int) -> None:
    kind = schema.specs[index].type
    allowed = NUMBERS if kind == "number" else {input_datatype(kind)}
    if tensor.datatype not in allowed:
        wanted = "a numeric datatype (FP64, FP32, INT64, ...)" if kind == "number" else (
            next(iter(allowed)))  # fmt: skip
        raise V2InputError(f"input {tensor.name!r}: a {kind} feature needs {wanted}")
    if kind == "number":
        _check_numbers(tensor, tensor.name, 1, nullable=schema.specs[index].nullable)
        return
    for row, value in enumerate(tensor.data):
        problem = schema.problem(index, value)
        if problem is not None:
            raise V2InputError(f"input {tensor.name!r}, row {row}: {problem[0]}")


def _check_numbers(tensor: Tensor, name: str, width: int, *, nullable: bool = False) -> np.ndarray:
    """Every value a number of the datatype within range (null where allowed), or a
    V2InputError naming the row. Valid data passes in a few C-level passes; only data with
    a problem is walked value by value, to say where."""
    integers = tensor.datatype in INTEGERS
    kinds = set(map(type, tensor.data))
    if kinds <= ({int} if integers else _NUMBER_TYPES) and kinds:
        array = np.array(tensor.data, dtype=np.float64)
        if (np.abs(array) <= MAX_ABS_VALUE).all():  # NaN fails this too
            return array
    for position, value in enumerate(tensor.data):
        if value is None and nullable:
            continue
        problem = number_problem(value) if value is not None else ("a value is null", "null")
        if problem is None and integers and type(value) is not int:
            problem = (f"{tensor.datatype} needs integers", "int_type")
        if problem is not None:
            raise V2InputError(f"input {name!r}, row {position // width}: {problem[0]}")
    return np.array([np.nan if v is None else v for v in tensor.data], dtype=np.float64)


def _outputs(requested: Any) -> list[str]:
    if requested is None:
        return []
    if type(requested) is not list:
        raise V2InputError("'outputs' must be a list")
    names = []
    for item in requested:
        name = item.get("name") if type(item) is dict else None
        if name not in OUTPUTS:
            raise V2InputError(
                f"unknown output {str(name)[:40]!r}; outputs are {', '.join(OUTPUTS)}"
            )
        names.append(name)
    return names


def _labels(model: LoadedModel, labels: list[Any]) -> tuple[str, list[Any]]:
    datatype = label_datatype(model)
    if datatype == "INT64":
        return datatype, [int(label) for label in labels]
    return datatype, labels


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit()
