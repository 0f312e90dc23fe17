"""Training data: a built-in dataset or a CSV file, as features plus a target.

Features come in one of two shapes (docs/training.md, "Data types"):

- numbers only, none missing (breast_cancer, iris, wine, diabetes, numeric CSVs): one
  float64 matrix, as the service's fast path feeds it;
- anything else (penguins, CSVs with text, true/false or empty cells): a pandas DataFrame
  whose column dtypes are the ones the service rebuilds from JSON: ``float64`` numbers with
  NaN for missing, ``str`` categories with NaN for missing, ``object`` booleans
  (True/False, NaN for missing).

Feature names are the dataset's own, unchanged (scikit-learn's names, or the CSV header):
they are what clients send to ``/predict`` and what the prediction log stores.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from palmerpenguins import load_penguins
from sklearn import datasets as sk_datasets

from training.csvfile import read_csv
from training.dataset import DataError, Dataset, Task

__all__ = ["BUILTIN_DATASETS", "DataError", "Dataset", "Task", "load_builtin", "load_csv"]

BUILTIN_DATASETS: dict[str, Task] = {
    "breast_cancer": "classification",
    "iris": "classification",
    "wine": "classification",
    "diabetes": "regression",
    "penguins": "classification",
}


def load_builtin(name: str) -> Dataset:
    """One of the built-in datasets; classes become their names ("benign", "Adelie")."""
    if name not in BUILTIN_DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(BUILTIN_DATASETS)}")
    if name == "penguins":
        return _penguins()
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


def _penguins() -> Dataset:
    """The palmerpenguins package's data (CC-0): 344 penguins, 3 species, missing values."""
    frame = load_penguins()
    y = frame.pop("species").to_numpy().astype(str)
    for column in frame.columns:
        if pd.api.types.is_numeric_dtype(frame[column]):
            frame[column] = frame[column].astype("float64")
        else:
            frame[column] = frame[column].astype("str")
    return Dataset(
        X=frame.reset_index(drop=True),
        y=y,
        feature_names=[str(c) for c in frame.columns],
        target="species",
        task="classification",
        source="palmerpenguins:penguins",
    )


def load_csv(path: Path, target: str, task: Task | None = None) -> Dataset:
    """A CSV with a header row; see :mod:`training.csvfile` for its rules."""
    return read_csv(Path(path), target, task)
