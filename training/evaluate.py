"""Metrics on a held-out split and k-fold cross-validation on the training part.

Features may be a float64 matrix or a DataFrame; a classifier without ``predict_proba``
gets the metrics that need only labels (no log loss, no ROC AUC).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)
from sklearn.model_selection import KFold, StratifiedKFold

from training.dataset import Task

# Called after each fold: (fold number from 1, number of folds, that fold's metrics).
FoldProgress = Callable[[int, int, dict[str, float]], None]

PRIMARY_METRIC: dict[Task, str] = {"classification": "balanced_accuracy", "regression": "r2"}


def score(pipeline: Any, X: Any, y: np.ndarray, task: Task) -> dict[str, float]:
    """Every metric of the task for a fitted pipeline on (X, y)."""
    predicted = pipeline.predict(X)
    if task == "regression":
        return {
            "r2": float(r2_score(y, predicted)),
            "mae": float(mean_absolute_error(y, predicted)),
            "rmse": float(root_mean_squared_error(y, predicted)),
        }
    classes = list(pipeline.classes_)
    metrics = {
        "accuracy": float(accuracy_score(y, predicted)),
        "balanced_accuracy": float(balanced_accuracy_score(y, predicted)),
        "f1_macro": float(f1_score(y, predicted, average="macro", labels=classes)),
    }
    if not hasattr(pipeline, "predict_proba"):
        return metrics
    proba = pipeline.predict_proba(X)
    metrics["log_loss"] = float(log_loss(y, proba, labels=classes))
    if len(set(y.tolist())) == len(classes):
        if len(classes) == 2:
            auc = roc_auc_score(y == classes[1], proba[:, 1])
        else:
            auc = roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=classes)
        metrics["roc_auc"] = float(auc)
    return metrics


def confusion(pipeline: Any, X: Any, y: np.ndarray) -> list[list[int]]:
    """Rows are true classes, columns predicted, both in ``pipeline.classes_`` order."""
    matrix = confusion_matrix(y, pipeline.predict(X), labels=pipeline.classes_)
    return [[int(v) for v in row] for row in matrix]


def cross_validate(
    pipeline: Any,
    X: Any,
    y: np.ndarray,
    task: Task,
    *,
    folds: int,
    seed: int,
    progress: FoldProgress | None = None,
) -> dict[str, dict[str, float]]:
    """Mean and standard deviation of each metric over ``folds`` shuffled folds."""
    if task == "classification":
        splitter: StratifiedKFold | KFold = StratifiedKFold(folds, shuffle=True, random_state=seed)
    else:
        splitter = KFold(folds, shuffle=True, random_state=seed)
    per_fold: list[dict[str, float]] = []
    for number, (train_idx, test_idx) in enumerate(splitter.split(X, y), start=1):
        fold_model = clone(pipeline).fit(_rows(X, train_idx), y[train_idx])
        metrics = score(fold_model, _rows(X, test_idx), y[test_idx], task)
        per_fold.append(metrics)
        if progress is not None:
            progress(number, folds, metrics)
    names = set.intersection(*(set(m) for m in per_fold))
    return {
        name: {
            "mean": float(np.mean([m[name] for m in per_fold])),
            "std": float(np.std([m[name] for m in per_fold])),
        }
        for name in sorted(names)
    }


def _rows(X: Any, index: np.ndarray) -> Any:
    """Rows by position, of a matrix or a DataFrame."""
    return X.iloc[index] if isinstance(X, pd.DataFrame) else X[index]
