"""``train --pipeline FILE.py:FUNC`` / ``module:FUNC``: the user's own estimator, fitted,
evaluated, gated and saved like a built-in one, reproducibly."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from serving import artifact
from tests.training.conftest import ROOT, Cli
from training.data import load_builtin

STEPS = ROOT / "tests" / "training" / "steps.py"


@pytest.fixture
def user_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The steps module as a user's own file, outside any package: ``code/steps.py``
    (importable here too, as the service needs it to load the model)."""
    folder = tmp_path / "code"
    folder.mkdir()
    monkeypatch.syspath_prepend(folder)
    return Path(shutil.copy(STEPS, folder / "steps.py"))


def _train(cli: Cli, models: Path, *args: str | Path) -> artifact.Artifact:
    done = cli("train", "--dataset", "penguins", "--cv-folds", "2", "--models-dir", models, *args)
    assert done.returncode == 0, done.stderr
    return artifact.load(artifact.resolve(models, "penguins"), trusted_types=["steps.*"])


def test_a_file_pipeline_trains_and_two_processes_give_the_same_model(
    cli: Cli, tmp_path: Path, user_code: Path
) -> None:
    spec = f"{user_code}:build_pipeline"
    first = _train(cli, tmp_path / "a", "--pipeline", spec, "--trust", "steps.BillRatio")
    second = _train(cli, tmp_path / "b", "--pipeline", spec, "--trust", "steps.BillRatio")
    X = load_builtin("penguins").X

    meta = first.metadata
    assert (meta.estimator, meta.params, meta.seed) == (
        "LogisticRegression",
        {"pipeline": spec, "test_size": 0.2},
        0,
    )
    assert meta.trusted_types == ["numpy.dtype", "steps.BillRatio"]
    assert type(first.pipeline.named_steps["prepare"].transformers_[0][1][1]).__module__ == "steps"
    assert meta.fingerprint == second.metadata.fingerprint
    assert meta.metrics == second.metadata.metrics
    assert meta.cv_metrics == second.metadata.cv_metrics
    assert np.array_equal(first.pipeline.predict_proba(X), second.pipeline.predict_proba(X))
    assert meta.metrics["balanced_accuracy"] > 0.9


def test_a_module_pipeline_without_seed_gets_the_seed_in_every_random_state(
    cli: Cli, tmp_path: Path, user_code: Path
) -> None:
    env = {"PYTHONPATH": f"{user_code.parent}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = cli(
        "train", "--dataset", "penguins", "--cv-folds", "0", "--seed", "5",
        "--pipeline", "steps:build_with_function", "--trust", "steps.*",
        "--models-dir", tmp_path, env=env,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    loaded = artifact.load(artifact.resolve(tmp_path, "penguins"), trusted_types=["steps.*"])
    assert loaded.pipeline.named_steps["model"].random_state == 5
    assert loaded.metadata.trusted_types == [
        "numpy.dtype",
        "sklearn.tree._tree.Tree",
        "steps.log_mass",
    ]
    assert loaded.metadata.estimator == "RandomForestClassifier"


def test_a_custom_type_nobody_trusted_is_refused_and_nothing_registered(
    cli: Cli, tmp_path: Path, user_code: Path
) -> None:
    done = cli("train", "--dataset", "penguins", "--cv-folds", "0",
               "--pipeline", f"{user_code}:build_pipeline", "--models-dir", tmp_path)  # fmt: skip

    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "needs types that are not trusted: steps.BillRatio" in done.stderr
    assert "--trust" in done.stderr
    assert artifact.list_models(tmp_path) == []


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("{code}", "expected FILE.py:FUNCTION or module:FUNCTION"),
        ("{dir}/nowhere.py:build", "no such file"),
        ("no_such_module_here:build", "no module named 'no_such_module_here'"),
        ("{code}:missing", "has no 'missing'"),
        ("{code}:broken", "broken() raised RuntimeError: cannot build with seed 0"),
        ("{code}:not_an_estimator", "returned str, not a scikit-learn estimator"),
        ("{code}:no_predict", "returned a NoPredict, which has no predict"),
    ],
)
def test_a_pipeline_spec_that_cannot_be_used_is_a_one_line_error(
    cli: Cli, tmp_path: Path, user_code: Path, spec: str, message: str
) -> None:
    spec = spec.format(code=user_code, dir=tmp_path)

    done = cli("train", "--dataset", "penguins", "--pipeline", spec, "--models-dir", tmp_path / "m")

    assert done.returncode == 2
    assert done.stderr.startswith("error: --pipeline")
    assert done.stderr.count("\n") == 1
    assert message in done.stderr
    assert not (tmp_path / "m").exists()


def test_a_classifier_on_a_regression_target_is_refused(
    cli: Cli, tmp_path: Path, user_code: Path
) -> None:
    done = cli("train", "--dataset", "diabetes", "--pipeline", f"{user_code}:build_pipeline",
               "--models-dir", tmp_path)  # fmt: skip

    assert done.returncode == 2
    assert "a classifier, but the target is numbers" in done.stderr


def test_pipeline_and_model_are_exclusive(cli: Cli, tmp_path: Path, user_code: Path) -> None:
    done = cli("train", "--dataset", "penguins", "--pipeline", f"{user_code}:build_pipeline",
               "--model", "random_forest", "--models-dir", tmp_path)  # fmt: skip

    assert done.returncode == 2
    assert "model and params apply to built-in ones" in done.stderr
