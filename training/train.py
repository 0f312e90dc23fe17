"""Fit, evaluate and save: the one training function the notebook and ``make train`` share.

Same dataset, estimator (or ``--pipeline`` function), parameters and seed give the same
fitted model — the same predictions, metrics and model fingerprint — wherever it runs.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sklearn.base import clone
from sklearn.model_selection import train_test_split

from serving import artifact
from training.custom import seeded
from training.dataset import Dataset
from training.evaluate import FoldProgress, confusion, cross_validate, score
from training.pipelines import build_pipeline, default_estimator
from training.profile import reference_profile
from training.schema import column_type, feature_specs


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
    X_train: Any = field(repr=False)
    """The training part: a float64 matrix or a DataFrame, as the pipeline was fitted on."""


def split(dataset: Dataset, *, seed: int = 0, test_size: float = 0.2) -> tuple[Any, ...]:
    """(X_train, X_test, y_train, y_test): the held-out split :func:`fit` makes (stratified
    for classifiers), for a notebook that fits on exactly the job's training rows."""
    stratify = dataset.y if dataset.task == "classification" else None
    return tuple(
        train_test_split(
            dataset.X, dataset.y, test_size=test_size, random_state=seed, stratify=stratify
        )
    )


def fit(
    dataset: Dataset,
    *,
    estimator: str | None = None,
    params: dict[str, Any] | None = None,
    seed: int = 0,
    test_size: float = 0.2,
    cv_folds: int = 5,
    progress: FoldProgress | None = None,
    pipeline: Any = None,
    pipeline_spec: str | None = None,
) -> TrainedModel:
    """Split, cross-validate, fit, score on the held-out part.

    ``pipeline``: the user's own unfitted estimator (``--pipeline``), used instead of a
    built-in one; a copy is fitted, every ``random_state`` left None set to ``seed``.
    ``pipeline_spec`` is recorded as where it came from.
    """
    params = dict(params or {})
    if pipeline is None:
        estimator = estimator or default_estimator(dataset.task)
        pipeline = build_pipeline(
            estimator, dataset.task, seed=seed, params=params, columns=columns_of(dataset)
        )
    else:
        pipeline = seeded(clone(pipeline), seed)
        estimator = type(final_step(pipeline)).__name__
        params = {"pipeline": pipeline_spec} if pipeline_spec else {}
    X_train, X_test, y_train, y_test = split(dataset, seed=seed, test_size=test_size)
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


def columns_of(dataset: Dataset) -> dict[str, artifact.FeatureType] | None:
    """name -> feature type of a DataFrame's columns; None for a float64 matrix."""
    if not dataset.is_frame:
        return None
    return {name: column_type(dataset.X[name])[0] for name in dataset.feature_names}


def final_step(model: Any) -> Any:
    """The last step of a Pipeline (the estimator itself otherwise)."""
    steps = getattr(model, "steps", None)
    return steps[-1][1] if steps else model


def build_metadata(
    trained: TrainedModel, dataset: Dataset, *, name: str, created_at: datetime | None = None
) -> artifact.Metadata:
    """Everything metadata.json holds except what saving adds (format, digests, fingerprint)."""
    created_at = created_at or datetime.now(UTC)
    features = feature_specs(trained.X_train, dataset.X, dataset.feature_names)
    classes = getattr(trained.pipeline, "classes_", None)
    class_names = [str(c) for c in classes] if classes is not None else None
    reference = reference_profile(
        trained.X_train,
        features,
        trained.pipeline.predict(trained.X_train),
        source="training",
        classes=class_names,
    )
    return artifact.Metadata(
        name=artifact.check_name(name),
        version=artifact.new_version(created_at),
        created_at=created_at,
        origin="trained",
        task=dataset.task,
        estimator=trained.estimator,
        features=features,
        target=dataset.target,
        classes=class_names,
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
        reference=reference,
    )


def save(
    trained: TrainedModel,
    dataset: Dataset,
    models_dir: Path,
    *,
    name: str,
    signing_key: bytes | None = None,
    trusted: Sequence[str] = (),
) -> Path:
    """Write a new version of ``name`` (not yet current) as skops and return its folder.

    ``trusted``: types beyond the safe list the model may need (``--trust``); a model that
    needs another one is refused before anything is written.
    """
    metadata = build_metadata(trained, dataset, name=name)
    return artifact.save(
        models_dir, metadata, trained.pipeline, signing_key=signing_key, trusted=trusted
    )


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
