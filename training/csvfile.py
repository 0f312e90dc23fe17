"""A CSV file as training (or evaluation) data: typed columns and a target (docs/training.md,
"CSV rules").

- The first row is the header; names must be unique; blank lines are skipped.
- A cell is missing when it is empty or, ignoring case and surrounding spaces, one of
  pandas' default missing-value strings (``NA``, ``NaN``, ``null``, ``None``, ``N/A``, …).
- A column whose present cells are all ``true``/``false`` (any case) is boolean; one whose
  present cells all parse as finite numbers is a number; any other is a category.
- A column with no present cell, a target with missing cells or with one value only,
  fewer than two rows, or a row with the wrong number of fields is refused (DataError).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pandas as pd

from training.dataset import DataError, Dataset, Task

MISSING = frozenset(
    {"", "#n/a", "#n/a n/a", "#na", "-1.#ind", "-1.#qnan", "-nan", "1.#ind", "1.#qnan"}
    | {"<na>", "n/a", "na", "nan", "null", "none"}
)
_BOOLEANS = {"true": True, "false": False}
# A numeric CSV target with more distinct values than this is treated as regression.
_MAX_CLASSES_FOR_NUMERIC_TARGET = 20


def read_csv(path: Path, target: str, task: Task | None = None) -> Dataset:
    """Read, type and check a CSV; the target's cells become labels or numbers."""
    header, body = _read(path)
    if target not in header:
        raise DataError(
            f"{path}: target column {target!r} not found; columns are: {', '.join(header)}"
        )
    columns = {name: [row[i] for row in body] for i, name in enumerate(header)}
    raw_y = columns.pop(target)
    if not columns:
        raise DataError(f"{path}: no feature columns besides the target {target!r}")
    y, task = _target(raw_y, path, target, task)
    typed = {name: _column(cells, path, name) for name, cells in columns.items()}
    names = list(typed)
    source = f"csv:{path.name}"
    if all(series.dtype == np.float64 and not series.isna().any() for series in typed.values()):
        matrix = np.column_stack([typed[n].to_numpy(dtype=np.float64) for n in names])
        return Dataset(np.ascontiguousarray(matrix), y, names, target, task, source)
    return Dataset(pd.DataFrame(typed), y, names, target, task, source)


def _read(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except csv.Error as exc:
        raise DataError(f"{path}: not a readable CSV file ({exc})") from None
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise DataError(f"{path}: empty file, expected a header row")
    header = [cell.strip() for cell in rows[0]]
    if len(set(header)) != len(header):
        duplicated = sorted({c for c in header if header.count(c) > 1})
        raise DataError(f"{path}: duplicated column names: {', '.join(duplicated)}")
    body: list[list[str]] = []
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise DataError(f"{path}, line {line}: {len(row)} fields, header has {len(header)}")
        body.append([cell.strip() for cell in row])
    if len(body) < 2:
        raise DataError(f"{path}: needs at least two data rows, found {len(body)}")
    return header, body


def is_missing(cell: str) -> bool:
    return cell.strip().lower() in MISSING


def _column(cells: list[str], path: Path, name: str) -> pd.Series:
    """The column as float64 numbers, object booleans or str categories (NaN for missing)."""
    present = [cell for cell in cells if not is_missing(cell)]
    if not present:
        raise DataError(f"{path}: column {name!r} has no values (every cell is missing)")
    if all(cell.lower() in _BOOLEANS for cell in present):
        values = [np.nan if is_missing(c) else _BOOLEANS[c.lower()] for c in cells]
        return pd.Series(values, dtype=object, name=name)
    numbers = [_number(cell) for cell in present]
    if all(n is not None for n in numbers):
        for cell, number in zip(present, numbers, strict=True):
            if number is not None and not math.isfinite(number):
                raise DataError(f"{path}: column {name!r} holds {cell!r}, not a finite number")
        values_f = [np.nan if is_missing(c) else float(c) for c in cells]
        return pd.Series(values_f, dtype=np.float64, name=name)
    return pd.Series([np.nan if is_missing(c) else c for c in cells], dtype="str", name=name)


def _number(cell: str) -> float | None:
    if "_" in cell:  # float() reads "1_000"; a CSV reader would not
        return None
    try:
        return float(cell)
    except ValueError:
        return None


def _target(raw: list[str], path: Path, target: str, task: Task | None) -> tuple[np.ndarray, Task]:
    missing = [line for line, cell in enumerate(raw, start=2) if is_missing(cell)]
    if missing:
        lines = ", ".join(map(str, missing[:5])) + (", …" if len(missing) > 5 else "")
        raise DataError(
            f"{path}: target {target!r} is missing in {len(missing)} row(s) (lines {lines}); "
            "drop those rows or choose another target"
        )
    task = task or _infer_task(raw)
    if task == "regression":
        numbers = [_number(cell) for cell in raw]
        bad = next((c for c, n in zip(raw, numbers, strict=True) if n is None), None)
        if bad is not None:
            raise DataError(f"{path}: target {target!r} holds {bad[:40]!r}, not a number")
        y = np.asarray(numbers, dtype=np.float64)
        if not np.isfinite(y).all():
            raise DataError(f"{path}: target {target!r} holds a value that is not finite")
    else:
        y = np.asarray([_label(v) for v in raw]).astype(str)
    if len(np.unique(y)) < 2:
        raise DataError(
            f"{path}: target {target!r} has one value only ({str(y[0])[:40]!r}); "
            "a model needs at least two"
        )
    return y, task


def _label(value: str) -> str:
    """Class labels as strings; "1.0" and "1" are the same class."""
    number = _number(value)
    if number is None or not math.isfinite(number):
        return value
    return str(int(number)) if number.is_integer() else value


def _infer_task(labels: list[str]) -> Task:
    numbers = [_number(v) for v in labels]
    if any(n is None or not math.isfinite(n) for n in numbers):
        return "classification"
    values = [n for n in numbers if n is not None]
    all_integers = all(n.is_integer() for n in values)
    few = len(set(values)) <= _MAX_CLASSES_FOR_NUMERIC_TARGET
    return "classification" if all_integers and few else "regression"
