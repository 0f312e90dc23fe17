"""Fixtures for monitoring: one migrated store of each kind per test."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from serving.artifact import Metadata
from tests.serving.monitoring.helpers import migrate, reference_of, save_version
from training.data import Dataset, load_builtin
from training.train import TrainedModel, build_metadata, fit


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated store: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'db' / 'predictions.db'}"
    else:
        url = str(request.getfixturevalue("pg_url"))
    migrate(url)
    return url


@dataclass(frozen=True)
class Zoo:
    """A registry of real tiny models of one dataset, each with its training split."""

    models_dir: Path
    dataset: Dataset
    versions: list[tuple[Metadata, TrainedModel]]
    """Oldest first; the last is current."""


def _zoo(root: Path, name: str, estimators: list[tuple[str, dict[str, Any]]]) -> Zoo:
    dataset = load_builtin(name)
    versions = []
    for estimator, params in estimators:
        trained = fit(dataset, estimator=estimator, params=params, seed=0, cv_folds=0)
        metadata = build_metadata(trained, dataset, name=name)
        predicted = trained.pipeline.predict(trained.X_train)
        reference = reference_of(
            trained.X_train, dataset.feature_names, predicted, task=dataset.task
        )
        saved = save_version(root, metadata, trained.pipeline, reference=reference)
        versions.append((saved, trained))
    return Zoo(root, dataset, versions)


@pytest.fixture(scope="session")
def classifiers(tmp_path_factory: pytest.TempPathFactory) -> Zoo:
    """breast_cancer: a logistic regression, then a small random forest (current)."""
    return _zoo(
        tmp_path_factory.mktemp("classifiers"),
        "breast_cancer",
        [("logistic_regression", {}), ("random_forest", {"n_estimators": 10})],
    )


@pytest.fixture(scope="session")
def regressors(tmp_path_factory: pytest.TempPathFactory) -> Zoo:
    """diabetes: one ridge regression."""
    return _zoo(tmp_path_factory.mktemp("regressors"), "diabetes", [("ridge", {})])
