"""fit + save produce an artifact whose metadata says everything docs/training.md promises, and the
same inputs and seed give the same model."""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import subprocess
from datetime import UTC
from pathlib import Path

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from serving import artifact
from tests.training.conftest import Cli
from training.data import load_builtin
from training.train import fit, save


def _git_head() -> str | None:
    git = shutil.which("git")
    if git is None:
        return None
    done = subprocess.run([git, "rev-parse", "HEAD"], capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else None


def test_metadata_has_every_field_and_each_is_right(tmp_path: Path) -> None:
    dataset = load_builtin("breast_cancer")
    trained = fit(dataset, seed=3, cv_folds=3, test_size=0.25, params={"C": 0.5})
    path = save(trained, dataset, tmp_path, name="bc")
    raw = json.loads((path / artifact.METADATA_FILE).read_text())
    meta = artifact.read_metadata(path)

    assert set(raw) == set(artifact.Metadata.model_fields)
    assert meta.schema_version == artifact.SCHEMA_VERSION
    assert (meta.name, meta.version) == ("bc", path.name)
    assert meta.created_at.tzinfo is not None
    assert artifact.new_version(meta.created_at.astimezone(UTC)) == meta.version
    assert (meta.task, meta.estimator, meta.target) == (
        "classification",
        "logistic_regression",
        "target",
    )
    assert meta.classes == ["benign", "malignant"]
    assert meta.params == {"C": 0.5, "test_size": 0.25}
    assert meta.seed == 3
    # Features: the dataset's own names, with statistics of the training part only.
    X_train, X_test, _, _ = train_test_split(
        dataset.X, dataset.y, test_size=0.25, random_state=3, stratify=dataset.y
    )
    assert meta.feature_names == dataset.feature_names
    for i, feature in enumerate(meta.features):
        assert (feature.type, feature.dtype, feature.nullable) == ("number", "float64", False)
        assert feature.min == X_train[:, i].min()
        assert feature.max == X_train[:, i].max()
        assert feature.mean == pytest.approx(X_train[:, i].mean())
        assert feature.std == pytest.approx(X_train[:, i].std())
    assert set(meta.metrics) == {"accuracy", "balanced_accuracy", "f1_macro", "log_loss", "roc_auc"}
    assert meta.metrics == trained.metrics
    assert set(meta.cv_metrics) == set(meta.metrics)
    assert all(set(v) == {"mean", "std"} for v in meta.cv_metrics.values())
    assert meta.confusion_matrix is not None
    assert np.asarray(meta.confusion_matrix).shape == (2, 2)
    assert np.asarray(meta.confusion_matrix).sum() == len(X_test)
    assert meta.dataset == artifact.DatasetInfo(
        source="sklearn:breast_cancer",
        target="target",
        fingerprint=dataset.fingerprint,
        n_rows=569,
        n_features=30,
    )
    assert meta.libraries == artifact.installed_versions()
    head = _git_head()
    if head is not None:
        assert meta.git_commit is not None
        assert meta.git_commit.removesuffix("-dirty") == head
    model_digest = hashlib.sha256((path / "model.skops").read_bytes()).hexdigest()
    assert meta.files == {"model.skops": model_digest}
    assert (meta.format, meta.trusted_types, meta.origin) == ("skops", [], "trained")
    assert (
        meta.fingerprint
        == f"sha256:{hashlib.sha256(pickle.dumps(trained.pipeline, protocol=5)).hexdigest()}"
    )
    assert meta.reference is not None
    assert (meta.reference.source, meta.reference.rows) == ("training", len(X_train))
    assert meta.converted_from is None
    assert meta.signature is None


def test_regression_metadata_has_regression_metrics_and_no_classes(tmp_path: Path) -> None:
    dataset = load_builtin("diabetes")
    path = save(fit(dataset, cv_folds=2), dataset, tmp_path, name="diabetes")
    meta = artifact.read_metadata(path)

    assert (meta.task, meta.estimator) == ("regression", "ridge")
    assert set(meta.metrics) == {"r2", "mae", "rmse"}
    assert meta.metrics["r2"] == pytest.approx(0.33, abs=0.02)
    assert meta.classes is None
    assert meta.confusion_matrix is None


def _train_rf(cli: Cli, models_dir: Path, seed: int) -> artifact.Artifact:
    done = cli(
        "train", "--model", "random_forest", "--param", "n_estimators=20", "--seed", seed,
        "--cv-folds", "2", "--models-dir", models_dir,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return artifact.load(artifact.resolve(models_dir, "breast_cancer"))


def test_training_twice_with_the_same_seed_gives_the_same_model(cli: Cli, tmp_path: Path) -> None:
    first = _train_rf(cli, tmp_path, seed=7)  # two processes, one after the other
    second = _train_rf(cli, tmp_path, seed=7)
    X = load_builtin("breast_cancer").X

    assert first.metadata.version != second.metadata.version
    assert first.metadata.fingerprint == second.metadata.fingerprint
    assert first.metadata.metrics == second.metadata.metrics
    assert first.metadata.cv_metrics == second.metadata.cv_metrics
    assert first.metadata.reference == second.metadata.reference
    assert np.array_equal(first.pipeline.predict_proba(X), second.pipeline.predict_proba(X))
    # The files' digests may differ: skops files are not byte-deterministic (the fingerprint,
    # not the file, is the model's identity).


def test_another_seed_gives_another_model(cli: Cli, tmp_path: Path) -> None:
    first = _train_rf(cli, tmp_path / "a", seed=7)
    other = _train_rf(cli, tmp_path / "b", seed=8)

    assert first.metadata.fingerprint != other.metadata.fingerprint
    assert first.metadata.cv_metrics != other.metadata.cv_metrics
