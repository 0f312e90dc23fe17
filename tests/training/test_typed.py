"""Mixed data in training: the typed schema, the reference profile and the default pipelines,
exactly as docs/training.md states them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from serving import artifact
from training.data import load_builtin, load_csv
from training.train import fit, save, split

PENGUIN_FEATURES = [
    ("island", "category", False, "str"),
    ("bill_length_mm", "number", True, "float64"),
    ("bill_depth_mm", "number", True, "float64"),
    ("flipper_length_mm", "number", True, "float64"),
    ("body_mass_g", "number", True, "float64"),
    ("sex", "category", True, "str"),
    ("year", "number", False, "float64"),
]


@pytest.fixture(scope="module")
def penguins(tmp_path_factory: pytest.TempPathFactory) -> artifact.Metadata:
    dataset = load_builtin("penguins")
    path = save(fit(dataset, seed=0, cv_folds=0), dataset, tmp_path_factory.mktemp("p"), name="p")
    return artifact.read_metadata(path)


def test_every_penguin_feature_is_typed_with_training_statistics(
    penguins: artifact.Metadata,
) -> None:
    X_train = split(load_builtin("penguins"), seed=0)[0]

    assert [(f.name, f.type, f.nullable, f.dtype) for f in penguins.features] == PENGUIN_FEATURES
    assert not penguins.numeric_only
    island, sex = penguins.features[0], penguins.features[5]
    assert island.categories == ["Biscoe", "Dream", "Torgersen"]
    assert sex.categories == ["female", "male"]
    assert (island.min, island.mean) == (None, None)
    length = penguins.features[1]
    present = X_train["bill_length_mm"].dropna()
    assert (length.min, length.max) == (present.min(), present.max())
    assert length.mean == pytest.approx(present.mean())
    assert length.std == pytest.approx(present.std(ddof=0))
    assert (penguins.origin, penguins.seed, penguins.format) == ("trained", 0, "skops")


def test_reference_profile_summarises_the_training_split(penguins: artifact.Metadata) -> None:
    X_train = split(load_builtin("penguins"), seed=0)[0]
    reference = penguins.reference
    assert reference is not None

    assert (reference.source, reference.rows) == ("training", len(X_train))
    length = reference.features["bill_length_mm"]
    assert isinstance(length, artifact.NumberProfile)
    present = X_train["bill_length_mm"].dropna().to_numpy()
    assert len(length.edges) <= 11
    assert length.edges == sorted(set(length.edges))
    assert (length.edges[0], length.edges[-1]) == (present.min(), present.max())
    assert length.counts == np.histogram(present, bins=length.edges)[0].tolist()
    assert sum(length.counts) + length.missing == len(X_train)
    assert length.missing == int(X_train["bill_length_mm"].isna().sum())
    assert length.mean == pytest.approx(present.mean())
    sex = reference.features["sex"]
    assert isinstance(sex, artifact.CategoryProfile)
    assert sex.counts == X_train["sex"].value_counts().sort_index().to_dict()
    assert sex.missing == int(X_train["sex"].isna().sum())
    predictions = reference.predictions
    assert isinstance(predictions, artifact.CategoryProfile)
    assert list(predictions.counts) == penguins.classes
    assert sum(predictions.counts.values()) == len(X_train)


def test_a_regressor_profiles_its_predicted_values(tmp_path: Path) -> None:
    dataset = load_builtin("diabetes")
    meta = artifact.read_metadata(save(fit(dataset, cv_folds=0), dataset, tmp_path, name="d"))

    assert meta.reference is not None
    assert isinstance(meta.reference.predictions, artifact.NumberProfile)
    assert sum(meta.reference.predictions.counts) == meta.reference.rows
    assert meta.numeric_only
    assert all(isinstance(p, artifact.NumberProfile) for p in meta.reference.features.values())


def test_a_csv_boolean_is_an_object_column_profiled_as_true_false(tmp_path: Path) -> None:
    rows = ["x,flag,y"] + [f"{i},{'true' if i % 3 else 'false'},{'ab'[i % 2]}" for i in range(40)]
    rows[5] = "4,,a"
    data = tmp_path / "b.csv"
    data.write_text("\n".join(rows) + "\n")
    dataset = load_csv(data, "y")

    meta = artifact.read_metadata(
        save(fit(dataset, cv_folds=0, test_size=0.25), dataset, tmp_path / "m", name="b")
    )

    flag = meta.features[1]
    assert (flag.type, flag.nullable, flag.dtype, flag.categories) == (
        "boolean",
        True,
        "object",
        None,
    )
    assert meta.reference is not None
    profile = meta.reference.features["flag"]
    assert isinstance(profile, artifact.CategoryProfile)
    assert set(profile.counts) == {"true", "false"}
    assert sum(profile.counts.values()) + profile.missing == meta.reference.rows


def test_default_mixed_pipeline_imputes_and_ignores_unknown_categories() -> None:
    dataset = load_builtin("penguins")
    pipeline = fit(dataset, cv_folds=0).pipeline
    prepare = pipeline.named_steps["prepare"]
    onehot = prepare.named_transformers_["categories"].named_steps["onehot"]
    odd = pd.DataFrame(
        {
            "island": pd.Series(["Atlantis"], dtype="str"),
            "bill_length_mm": [np.nan],
            "bill_depth_mm": [np.nan],
            "flipper_length_mm": [np.nan],
            "body_mass_g": [np.nan],
            "sex": pd.Series([np.nan], dtype="str"),
            "year": [2008.0],
        }
    )

    assert onehot.handle_unknown == "ignore"
    assert list(pipeline.feature_names_in_) == dataset.feature_names
    assert pipeline.predict(odd).shape == (1,)


def test_hist_gradient_boosting_uses_its_native_categorical_support() -> None:
    trained = fit(load_builtin("penguins"), estimator="hist_gradient_boosting", cv_folds=0)
    prepare = trained.pipeline.named_steps["prepare"]
    model = trained.pipeline.named_steps["model"]

    assert [name for name, _, _ in prepare.transformers] == ["categories", "numbers"]
    assert prepare.transformers[0][2] == ["island", "sex"]
    assert model.categorical_features == [0, 1]
    assert model.is_categorical_.tolist() == [True, True] + [False] * 5
    assert trained.metrics["balanced_accuracy"] > 0.9


def test_numeric_datasets_keep_the_float_matrix_path(tmp_path: Path) -> None:
    dataset = load_builtin("wine")
    trained = fit(dataset, cv_folds=0)
    meta = artifact.read_metadata(save(trained, dataset, tmp_path, name="wine"))

    assert isinstance(trained.X_train, np.ndarray)
    assert not hasattr(trained.pipeline, "feature_names_in_")
    assert meta.numeric_only
    assert {(f.type, f.dtype, f.nullable) for f in meta.features} == {("number", "float64", False)}
