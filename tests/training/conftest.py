"""Fixtures for training tests: the real CLI in a subprocess, and private registries."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Settings a developer may have exported; tests pass what they mean explicitly.
_TRAINING_ENV = (
    "MODELS_DIR",
    "MODEL_NAME",
    "ARTIFACT_SIGNING_KEY",
    "TRAIN_MIN_SCORE",
    "TRAIN_TOLERANCE",
    "TRAIN_FORCE",
)

Cli = Callable[..., subprocess.CompletedProcess[str]]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _TRAINING_ENV}
    return {**env, **extra}


@pytest.fixture
def cli() -> Cli:
    """Run ``python -m training ARGS`` with this interpreter (the .venv), like a user would."""

    def run(
        *args: str | Path, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "training", *map(str, args)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=clean_env(**(env or {})),
            timeout=300,
            check=False,
        )

    return run


@pytest.fixture
def registry(models_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the shared registry (one current breast_cancer version)."""
    return Path(shutil.copytree(models_dir, tmp_path / "models"))
