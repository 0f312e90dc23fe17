"""``python -m training convert``: a joblib version becomes a new skops version, loading the
pickle only after its digest check and only when the operator vouches for it."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from serving import artifact
from tests.training.conftest import Cli
from training import registry as reg
from training.data import load_builtin
from training.train import build_metadata, fit

NAME = "breast_cancer"


class _Shell:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"echo pwned > {self.path}",))


@pytest.fixture
def legacy(tmp_path: Path) -> tuple[Path, str]:
    """A registry whose current version is a joblib pickle, as every version used to be."""
    dataset = load_builtin("breast_cancer")
    trained = fit(dataset, estimator="random_forest", params={"n_estimators": 10}, cv_folds=0)
    root = tmp_path / "models"
    path = artifact.save(root, build_metadata(trained, dataset, name=NAME), trained.pipeline,
                         format="joblib")  # fmt: skip
    reg.promote(root, NAME, path.name)
    return root, path.name


def test_convert_needs_the_operator_to_vouch_for_the_pickle(
    cli: Cli, legacy: tuple[Path, str]
) -> None:
    root, old = legacy

    done = cli("convert", "--name", NAME, "--models-dir", root)

    assert done.returncode == 2
    assert "--trust-pickle" in done.stderr
    assert artifact.list_versions(root, NAME) == [old]


def test_convert_writes_a_skops_version_with_the_same_content(
    cli: Cli, legacy: tuple[Path, str]
) -> None:
    root, old = legacy

    done = cli("convert", old, "--name", NAME, "--trust-pickle", "--models-dir", root)

    assert done.returncode == 0, done.stderr
    new = artifact.read_current(root, NAME)
    assert new is not None
    assert new != old
    assert f"converted {NAME} {old} (joblib) to {new} (skops)" in done.stdout
    before = artifact.read_metadata(root / NAME / old)
    after = artifact.load(root / NAME / new).metadata
    assert (after.format, after.converted_from, after.trusted_types) == (
        "skops",
        old,
        ["sklearn.tree._tree.Tree"],
    )
    same = {"features", "metrics", "cv_metrics", "params", "seed", "origin", "dataset", "reference"}
    assert {k for k in same if getattr(after, k) == getattr(before, k)} == same
    assert list(after.files) == ["model.skops"]
    assert after.fingerprint is not None
    X = load_builtin("breast_cancer").X
    old_model = artifact.load(root / NAME / old, allow_pickle=True).pipeline
    new_model = artifact.load(root / NAME / new).pipeline
    assert np.array_equal(old_model.predict_proba(X), new_model.predict_proba(X))
    assert reg.read_history(root, NAME)[-1].reason.startswith(f"converted from {old}")
    shown = cli("show", "--name", NAME, "--models-dir", root)
    assert f"origin       trained, converted from {old}" in shown.stdout


def test_convert_refuses_a_tampered_pickle_before_loading_it(
    cli: Cli, legacy: tuple[Path, str], tmp_path: Path
) -> None:
    root, old = legacy
    marker = tmp_path / "pwned"
    (root / NAME / old / "model.joblib").write_bytes(pickle.dumps(_Shell(marker)))

    done = cli("convert", "--name", NAME, "--trust-pickle", "--models-dir", root)

    assert done.returncode == 1
    assert "sha256 mismatch" in done.stderr
    assert not marker.exists()
    assert artifact.list_versions(root, NAME) == [old]


def test_convert_of_a_skops_version_is_refused(cli: Cli, registry: Path) -> None:
    done = cli("convert", "--name", NAME, "--trust-pickle", "--models-dir", registry)

    assert done.returncode == 2
    assert "is already a skops artifact" in done.stderr
    meta = json.loads(next((registry / NAME).glob("*/metadata.json")).read_text())
    assert meta["format"] == "skops"
