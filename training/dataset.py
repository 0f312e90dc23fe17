"""The data one model is trained or evaluated on: features, targets, where they came from."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

Task = Literal["classification", "regression"]


class DataError(ValueError):
    """The data cannot be used for training; the message names the file, column or row."""


@dataclass(frozen=True)
class Dataset:
    """Features (a float64 matrix, or a typed DataFrame) and targets (class-name strings for
    classification, floats for regression)."""

    X: Any
    """A float64 ``numpy.ndarray`` (rows, features), or a ``pandas.DataFrame``."""
    y: np.ndarray
    feature_names: list[str]
    target: str
    task: Task
    source: str

    @property
    def is_frame(self) -> bool:
        """True when the features are a DataFrame (typed columns, maybe missing values)."""
        return isinstance(self.X, pd.DataFrame)

    @property
    def fingerprint(self) -> str:
        """sha256 of the exact content: names, feature values (and dtypes) and targets."""
        digest = hashlib.sha256()
        digest.update("\x1f".join([*self.feature_names, self.target, self.task]).encode())
        if isinstance(self.X, pd.DataFrame):
            digest.update("\x1f".join(str(t) for t in self.X.dtypes).encode())
            hashed = pd.util.hash_pandas_object(self.X, index=False).to_numpy()
            digest.update(np.ascontiguousarray(hashed, dtype="<u8").tobytes())
        else:
            digest.update(np.ascontiguousarray(self.X, dtype="<f8").tobytes())
        digest.update("\x1f".join(map(str, self.y.tolist())).encode())
        return f"sha256:{digest.hexdigest()}"
