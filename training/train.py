"""Fit, evaluate and save: the one training function the notebook and ``make train`` share.

Same dataset, estimator, parameters and seed give the same pipeline, the same metrics and
the same predictions, wherever it runs.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from serving import artifact
from training.data import Dataset
from training.evaluate import FoldProgress, confusion, cross_validate, score
from training.pipelines import build_pipeline, default_estimator


@dataclass(frozen=True)
class TrainedModel:
    """A pipeline fitted on the training part, with its held-out and CV metrics."""

    pipeline: Any
    estimator: str
    params: dict[str, Any]
    seed: int
    test_size: float
    metrics: dict[str, float]
    cv_metrics: dict[str, dict[str, float]]
    confusion_matrix: list[list[int]] | None
    X_train: np.ndarray = field(repr=False)


def fit(
    dataset: Dataset,
    *,
    estimator: str | None = None,
    params: dict[str, Any] | None = None,
    seed: int = 0,
    test_size: float = 0.2,
    cv_folds: int = 5,
    progress: FoldProgress | None = None,
) -> TrainedModel:
    """Split (stratified for classifiers), cross-validate, fit, score on the held-out part."""
    estimator = estimator or default_estimator(dataset.task)
    params = dict(params or {})
    pipeline = build_pipeline(estimator, dataset.task, seed=seed, params=params)
    stratify = dataset.y if dataset.task == "classification" else None
    X_train, X_test, y_train, y_test = train_test_split(
        dataset.X, dataset.y, test_size=test_size, random_state=seed, stratify=stratify
    )
    cv_metrics = (
        cross_validate(
            pipeline, X_train, y_train, dataset.task, folds=cv_folds, seed=seed, progress=progress
        )
        if cv_folds >= 2
        else {}
    )
    pipeline.fit(X_train, y_train)
    return TrainedModel(
        pipeline=pipeline,
        estimator=estimator,
        params=params,
        seed=seed,
        test_size=test_size,
        metrics=score(pipeline, X_test, y_test, dataset.task),
        cv_metrics=cv_metrics,
        confusion_matrix=(
            confusion(pipeline, X_test, y_test) if dataset.task == "classification" else None
        ),
        X_train=X_train,
    )


def build_metadata(
    trained: TrainedModel, dataset: Dataset, *, name: str, created_at: datetime | None = None
) -> artifact.Metadata:
    """Everything DESIGN.md asks of metadata.json except the digests (added when saving)."""
    created_at = created_at or datetime.now(UTC)
    X = trained.X_train
    features = [
        artifact.FeatureSpec(
            name=feature,
            min=float(X[:, i].min()),
            max=float(X[:, i].max()),
            mean=float(X[:, i].mean()),
            std=float(X[:, i].std()),
        )
        for i, feature in enumerate(dataset.feature_names)
    ]
    classes = getattr(trained.pipeline, "classes_", None)
    return artifact.Metadata(
        name=artifact.check_name(name),
        version=artifact.new_version(created_at),
        created_at=created_at,
        task=dataset.task,
        estimator=trained.estimator,
        features=features,
        target=dataset.target,
        classes=[str(c) for c in classes] if classes is not None else None,
        metrics=trained.metrics,
        cv_metrics=trained.cv_metrics,
        confusion_matrix=trained.confusion_matrix,
        params={**trained.params, "test_size": trained.test_size},
        seed=trained.seed,
        dataset=artifact.DatasetInfo(
            source=dataset.source,
            target=dataset.target,
            fingerprint=dataset.fingerprint,
            n_rows=int(dataset.X.shape[0]),
            n_features=int(dataset.X.shape[1]),
        ),
        libraries=artifact.installed_versions(),
        git_commit=git_commit(),
    )


def save(
    trained: TrainedModel,
    dataset: Dataset,
    models_dir: Path,
    *,
    name: str,
    signing_key: bytes | None = None,
) -> Path:
    """Write a new version of ``name`` (not yet current) and return its folder."""
    metadata = build_metadata(trained, dataset, name=name)
    return artifact.save(models_dir, metadata, trained.pipeline, signing_key=signing_key)


def git_commit() -> str | None:
    """The checkout's commit, with ``-dirty`` when it has local changes; None outside git."""
    git = shutil.which("git")
    if git is None:
        return None
    try:
        commit = subprocess.run(
            [git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            [git, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if dirty else commit
