"""Serving fixtures: settings for a tmp workdir, an in-process client, a sample of rows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from serving import artifact
from serving.app import create_app
from serving.settings import Settings
from training.data import load_builtin


def make_settings(models_dir: Path, workdir: Path, **overrides: Any) -> Settings:
    """Settings that depend on nothing in the environment but what is given here."""
    values: dict[str, Any] = {
        "models_dir": models_dir,
        "model_name": "breast_cancer",
        "database_url": f"sqlite:///{workdir / 'predictions.db'}",
        "spool_dir": workdir / "spool",
        **overrides,
    }
    return Settings(**values)


@pytest.fixture
def settings(models_dir: Path, tmp_path: Path) -> Settings:
    return make_settings(models_dir, tmp_path)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def rows() -> list[list[float]]:
    """Real breast-cancer rows, in the model's feature order."""
    data = load_builtin("breast_cancer")
    return [[float(v) for v in row] for row in data.X[:50]]


@pytest.fixture(scope="session")
def feature_names(models_dir: Path) -> list[str]:
    return artifact.read_metadata(artifact.resolve(models_dir, "breast_cancer")).feature_names
