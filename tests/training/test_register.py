"""``training.register`` and ``python -m training register``: a model fitted elsewhere becomes
a version, checked on its own evaluation data; nothing is registered when a check fails."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from serving import artifact
from tests.training.conftest import Cli
from tests.training.steps import build_pipeline
from training import RegisterError, register
from training.data import Dataset, load_builtin
from training.evaluate import score
from training.train import fit, split

TRUSTED = ["tests.training.steps.BillRatio"]
Split = tuple[Any, Any, Any, Any]


@pytest.fixture(scope="module")
def parts() -> Split:
    return split(load_builtin("penguins"), seed=0)


@pytest.fixture(scope="module")
def fitted(parts: Split) -> Any:
    return build_pipeline(seed=0).fit(parts[0], parts[2])


def test_register_a_fitted_pipeline_with_its_trusted_type(
    tmp_path: Path, fitted: Any, parts: Split
) -> None:
    _, X_test, _, y_test = parts

    result = register(fitted, X_test, y_test, name="penguins", models_dir=tmp_path, trusted=TRUSTED)

    assert result.promoted
    assert result.gate.passed
    assert result.path == tmp_path / "penguins" / result.version
    assert artifact.read_current(tmp_path, "penguins") == result.version
    meta = artifact.read_metadata(result.path)
    assert (meta.origin, meta.seed, meta.format, meta.estimator) == (
        "registered",
        None,
        "skops",
        "LogisticRegression",
    )
    assert meta.trusted_types == ["numpy.dtype", *TRUSTED]
    assert meta.metrics == score(fitted, X_test, y_test, "classification")
    assert meta.classes == ["Adelie", "Chinstrap", "Gentoo"]
    names = list(X_test.columns)
    evaluation = Dataset(X_test, y_test, names, "target", "classification", "python")
    assert meta.dataset.fingerprint == evaluation.fingerprint
    assert (meta.dataset.n_rows, meta.dataset.n_features) == (len(X_test), 7)
    assert meta.reference is not None
    assert (meta.reference.source, meta.reference.rows) == ("evaluation", len(X_test))
    assert [f.dtype for f in meta.features] == [str(t) for t in X_test.dtypes]
    loaded = artifact.load(result.path, trusted_types=TRUSTED)
    assert np.array_equal(loaded.pipeline.predict_proba(X_test), fitted.predict_proba(X_test))


def test_an_untrusted_custom_type_is_refused_and_nothing_registered(
    tmp_path: Path, fitted: Any, parts: Split
) -> None:
    with pytest.raises(artifact.UntrustedTypeError, match=r"tests\.training\.steps\.BillRatio"):
        register(fitted, parts[1], parts[3], name="penguins", models_dir=tmp_path)

    assert artifact.list_models(tmp_path) == []


def test_a_model_that_fails_on_its_own_data_is_refused(tmp_path: Path) -> None:
    X = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": [0.5, 0.1, 0.9, 0.3]})
    model = LogisticRegression().fit(X, ["x", "y", "x", "y"])
    with_gap = X.assign(a=[1.0, np.nan, 3.0, 4.0])

    with pytest.raises(RegisterError, match=r"fails on its own evaluation data: .*NaN"):
        register(model, with_gap, ["x", "y", "x", "y"], name="m", models_dir=tmp_path)

    assert artifact.list_models(tmp_path) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("drop_column", r"missing \['sex'\], unexpected none"),
        ("short_y", "X has 69 rows but y has 68"),
        ("unknown_label", "y holds labels the model does not know: 'Emperor'"),
        ("array", "an array X must hold numbers"),
        ("not_fitted", "is not fitted"),
        ("not_a_model", "not a scikit-learn estimator"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(
    tmp_path: Path, fitted: Any, parts: Split, change: str, message: str
) -> None:
    model, X, y = fitted, parts[1], np.asarray(parts[3], dtype=object)
    if change == "drop_column":
        X = X.drop(columns=["sex"])
    elif change == "short_y":
        y = y[:-1]
    elif change == "unknown_label":
        y = y.copy()
        y[0] = "Emperor"
    elif change == "array":
        X = X.to_numpy()
    elif change == "not_fitted":
        model = build_pipeline()
    else:
        model = "a model"

    with pytest.raises(RegisterError, match=message):
        register(model, X, y, name="p", models_dir=tmp_path, trusted=TRUSTED)

    assert artifact.list_models(tmp_path) == []


def test_a_regressor_needs_numbers_in_y(tmp_path: Path) -> None:
    dataset = load_builtin("diabetes")
    model = fit(dataset, cv_folds=0).pipeline

    with pytest.raises(RegisterError, match="y must hold numbers"):
        register(model, dataset.X, ["high"] * len(dataset.y), name="d", models_dir=tmp_path,
                 feature_names=dataset.feature_names)  # fmt: skip


def test_a_gate_refusal_registers_without_promoting(
    tmp_path: Path, fitted: Any, parts: Split
) -> None:
    result = register(fitted, parts[1], parts[3], name="p", models_dir=tmp_path,
                      trusted=TRUSTED, min_score=1.01)  # fmt: skip

    assert not result.promoted
    assert "below the minimum 1.0100" in result.gate.failures[0]
    assert artifact.list_versions(tmp_path, "p") == [result.version]
    assert artifact.read_current(tmp_path, "p") is None


def test_an_array_model_with_feature_names_keeps_the_numeric_fast_path(tmp_path: Path) -> None:
    dataset = load_builtin("breast_cancer")
    X_train, X_test, y_train, y_test = split(dataset)
    model = make_pipeline(FunctionTransformer(np.log1p), LogisticRegression(max_iter=5000))
    model.fit(X_train, y_train)

    result = register(model, X_test, y_test, name="bc", models_dir=tmp_path,
                      feature_names=dataset.feature_names)  # fmt: skip

    meta = result.metadata
    assert meta.numeric_only
    assert meta.feature_names == dataset.feature_names
    assert meta.trusted_types == []
    assert not hasattr(artifact.load(result.path).pipeline, "feature_names_in_")


@pytest.fixture
def eval_csv(tmp_path: Path, parts: Split) -> Path:
    path = tmp_path / "eval.csv"
    parts[1].assign(species=parts[3]).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("suffix", [".joblib", ".skops"])
def test_cli_registers_a_model_file(
    cli: Cli, tmp_path: Path, fitted: Any, parts: Split, eval_csv: Path, suffix: str
) -> None:
    model_file = tmp_path / f"model{suffix}"
    if suffix == ".skops":
        sio.dump(fitted, model_file)
    else:
        joblib.dump(fitted, model_file)
    command = ("register", model_file, "--data", eval_csv, "--target", "species",
               "--name", "penguins", "--models-dir", tmp_path / "m")  # fmt: skip

    refused = cli(*command)
    done = cli(*command, "--trust", TRUSTED[0])

    assert refused.returncode == 2
    (error,) = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert "Traceback" not in refused.stderr
    assert "tests.training.steps.BillRatio" in error
    assert done.returncode == 0, done.stderr
    assert "(registered)" in done.stdout
    assert "Promoted: penguins" in done.stdout
    meta = artifact.read_metadata(artifact.resolve(tmp_path / "m", "penguins"))
    assert meta.metrics == score(fitted, parts[1], parts[3], "classification")
    assert meta.dataset.source == "csv:eval.csv"
    assert len(artifact.list_versions(tmp_path / "m", "penguins")) == 1


def test_cli_register_of_a_missing_file_is_bad_input(
    cli: Cli, tmp_path: Path, eval_csv: Path
) -> None:
    done = cli("register", tmp_path / "nope.joblib", "--data", eval_csv, "--target", "species",
               "--name", "p", "--models-dir", tmp_path / "m")  # fmt: skip

    assert done.returncode == 2
    assert "no such model file" in done.stderr
    assert not os.path.exists(tmp_path / "m")
