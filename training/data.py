"""Training data: scikit-learn's built-in datasets or a CSV file, as one numeric matrix.

Feature names are the dataset's own, unchanged (scikit-learn's names, or the CSV header):
they are what clients send to ``/predict`` and what the prediction log stores.
"""

from __future__ import annotations

import csv
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from sklearn import datasets as sk_datasets

Task = Literal["classification", "regression"]

BUILTIN_DATASETS: dict[str, Task] = {
    "breast_cancer": "classification",
    "iris": "classification",
    "wine": "classification",
    "diabetes": "regression",
}

# A numeric CSV target with more distinct values than this is treated as regression.
_MAX_CLASSES_FOR_NUMERIC_TARGET = 20


class DataError(ValueError):
    """The data cannot be used for training; the message names the file, column or row."""


@dataclass(frozen=True)
class Dataset:
    """Features as float64, targets as class-name strings (classification) or floats."""

    X: np.ndarray
    y: np.ndarray
    feature_names: list[str]
    target: str
    task: Task
    source: str

    @property
    def fingerprint(self) -> str:
        """sha256 of the exact content: names, feature values and targets."""
        digest = hashlib.sha256()
        digest.update("\x1f".join([*self.feature_names, self.target, self.task]).encode())
        digest.update(np.ascontiguousarray(self.X, dtype="<f8").tobytes())
        digest.update("\x1f".join(map(str, self.y.tolist())).encode())
        return f"sha256:{digest.hexdigest()}"


def load_builtin(name: str) -> Dataset:
    """One of the datasets scikit-learn ships; classes become their names ("benign")."""
    if name not in BUILTIN_DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(BUILTIN_DATASETS)}")
    bunch = getattr(sk_datasets, f"load_{name}")()
    task = BUILTIN_DATASETS[name]
    target_names = getattr(bunch, "target_names", None)
    if task == "classification" and target_names is not None:
        y = np.asarray(target_names)[bunch.target].astype(str)
    else:
        y = np.asarray(bunch.target, dtype=np.float64)
    return Dataset(
        X=np.asarray(bunch.data, dtype=np.float64),
        y=y,
        feature_names=[str(n) for n in bunch.feature_names],
        target="target",
        task=task,
        source=f"sklearn:{name}",
    )


def load_csv(path: Path, target: str, task: Task | None = None) -> Dataset:
    """A CSV with a header row: every column but ``target`` must be numeric."""
    path = Path(path)
    rows = _read_rows(path)
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise DataError(f"{path}: empty file, expected a header row")
    header = [cell.strip() for cell in rows[0]]
    if target not in header:
        raise DataError(
            f"{path}: target column {target!r} not found; columns are: {', '.join(header)}"
        )
    if len(set(header)) != len(header):
        duplicated = sorted({c for c in header if header.count(c) > 1})
        raise DataError(f"{path}: duplicated column names: {', '.join(duplicated)}")
    target_index = header.index(target)
    feature_names = [c for i, c in enumerate(header) if i != target_index]
    if not feature_names:
        raise DataError(f"{path}: no feature columns besides the target {target!r}")
    body = [row for row in rows[1:] if any(cell.strip() for cell in row)]
    if len(body) < 2:
        raise DataError(f"{path}: needs at least two data rows, found {len(body)}")
    X = np.empty((len(body), len(feature_names)), dtype=np.float64)
    raw_y: list[str] = []
    for r, row in enumerate(body):
        line = r + 2
        if len(row) != len(header):
            raise DataError(f"{path}, line {line}: {len(row)} fields, header has {len(header)}")
        values = [cell for i, cell in enumerate(row) if i != target_index]
        for c, cell in enumerate(values):
            X[r, c] = _parse_number(cell, path, line, feature_names[c])
        label = row[target_index].strip()
        if not label:
            raise DataError(f"{path}, line {line}: empty target {target!r}")
        raw_y.append(label)
    task = task or _infer_task(raw_y)
    if task == "regression":
        y = np.asarray([_parse_number(v, path, i + 2, target) for i, v in enumerate(raw_y)])
    else:
        y = np.asarray([_label(v) for v in raw_y]).astype(str)
    return Dataset(X, y, feature_names, target, task, f"csv:{path.name}")


def _read_rows(path: Path) -> list[list[str]]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return list(csv.reader(handle))
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason})") from None


def _parse_number(cell: str, path: Path, line: int, column: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        raise DataError(
            f"{path}, line {line}, column {column!r}: {cell.strip()[:40]!r} is not a number; "
            "features must be numeric (encode categories before training)"
        ) from None
    if not math.isfinite(value):
        raise DataError(f"{path}, line {line}, column {column!r}: {cell!r} is not finite")
    return value


def _label(value: str) -> str:
    """Class labels as strings; "1.0" and "1" are the same class."""
    try:
        number = float(value)
    except ValueError:
        return value
    return str(int(number)) if number.is_integer() else value


def _infer_task(labels: list[str]) -> Task:
    try:
        numbers = [float(v) for v in labels]
    except ValueError:
        return "classification"
    all_integers = all(n.is_integer() for n in numbers)
    few = len(set(numbers)) <= _MAX_CLASSES_FOR_NUMERIC_TARGET
    return "classification" if all_integers and few else "regression"
