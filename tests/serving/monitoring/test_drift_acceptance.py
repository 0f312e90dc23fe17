"""Issue 16's acceptance test for drift, on both stores, with real data and real models.

2,000 rows resampled from the training data flag no feature; the same rows with three
features shifted by one training standard deviation flag exactly those three (and, on the
typed penguins data, a shift in a category's shares is flagged too).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from serving.artifact import (
    DatasetInfo,
    FeatureSpec,
    Metadata,
    ReferenceProfile,
    installed_versions,
    new_version,
)
from serving.monitoring.drift import DriftReport, drift
from serving.monitoring.queries import Window
from tests.serving.monitoring.conftest import Zoo
from tests.serving.monitoring.helpers import (
    Logged,
    at,
    category_profile,
    insert_predictions,
    number_profile,
    save_version,
    source,
)

ROWS = 2000
T0 = at(1_790_000_000)
T1 = T0 + timedelta(days=1)
RESAMPLED, SHIFTED = Window(T0, T1), Window(T1, T1 + timedelta(days=1))
BREAST_SHIFTED = ["mean radius", "texture error", "worst smoothness"]
PENGUIN_SHIFTED = ["bill_length_mm", "flipper_length_mm", "body_mass_g"]


def _log(
    url: str, metadata: Metadata, rows: list[dict[str, Any]], predicted: Any, start: Any
) -> None:
    insert_predictions(
        url,
        [
            Logged(metadata.name, metadata.version, row, str(p), start + timedelta(seconds=i))
            for i, (row, p) in enumerate(zip(rows, predicted, strict=True))
        ],
    )


def _report(found: DriftReport) -> str:
    """Every column's value, for the assertion message and for reading with -s."""
    return "\n".join(f"{c.name}: {c.statistic} {c.value:.3g} ({c.status})" for c in found.features)


def test_breast_cancer_resampled_is_stable_and_three_shifted_features_drift(
    classifiers: Zoo, store_url: str
) -> None:
    metadata, trained = classifiers.versions[0]
    names = classifiers.dataset.feature_names
    X = trained.X_train
    live = X[np.random.default_rng(16).integers(0, len(X), size=ROWS)]
    shifted = live.copy()
    for name in BREAST_SHIFTED:
        spec = next(f for f in metadata.features if f.name == name)
        assert spec.std is not None
        shifted[:, names.index(name)] += spec.std
    for rows, start in ((live, T0), (shifted, T1)):
        dicts = [dict(zip(names, map(float, row), strict=True)) for row in rows]
        _log(store_url, metadata, dicts, trained.pipeline.predict(rows), start)

    stable = drift(source(store_url), metadata, RESAMPLED)
    moved = drift(source(store_url), metadata, SHIFTED)

    assert (stable.rows, moved.rows) == (ROWS, ROWS)
    assert stable.statistic == "chi_square_p_value"  # 455 training rows: tested, not measured
    assert stable.threshold == pytest.approx(0.05 / 31)
    assert stable.drifted_features == [], _report(stable)
    assert moved.drifted_features == BREAST_SHIFTED, _report(moved)
    assert stable.prediction is not None
    assert stable.prediction.drifted is False


@pytest.fixture(scope="module")
def penguins(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Metadata, Any, Any]:
    """A typed penguins model (categories, booleans-free, missing values), trained for real."""
    try:
        from palmerpenguins import load_penguins  # noqa: PLC0415 - optional test data
    except ImportError:
        pytest.skip(
            "SKIPPING the penguins drift acceptance test: the palmerpenguins package is not "
            "installed (it comes with the training dependencies of issue 12)"
        )
    from sklearn.compose import ColumnTransformer  # noqa: PLC0415
    from sklearn.impute import SimpleImputer  # noqa: PLC0415
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415
    from sklearn.model_selection import train_test_split  # noqa: PLC0415
    from sklearn.pipeline import make_pipeline  # noqa: PLC0415
    from sklearn.preprocessing import OneHotEncoder, StandardScaler  # noqa: PLC0415

    data = load_penguins()
    features = ["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm",
                "body_mass_g", "sex", "year"]  # fmt: skip
    categories, numbers = ["island", "sex"], [f for f in features if f not in {"island", "sex"}]
    train, _ = train_test_split(data, test_size=0.2, random_state=0, stratify=data["species"])
    pipeline = make_pipeline(
        ColumnTransformer([
            ("numbers", make_pipeline(SimpleImputer(), StandardScaler()), numbers),
            ("categories", make_pipeline(
                SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")
            ), categories),
        ]),
        LogisticRegression(max_iter=1000),
    ).fit(train[features], train["species"])  # fmt: skip
    X = train[features]
    specs = [
        FeatureSpec(
            name=f, type="number", nullable=bool(X[f].isna().any()), dtype=str(X[f].dtype),
            min=float(X[f].min()), max=float(X[f].max()), mean=float(X[f].mean()),
            std=float(X[f].std(ddof=0)),
        )
        if f in numbers
        else FeatureSpec(
            name=f, type="category", nullable=bool(X[f].isna().any()), dtype="str",
            categories=sorted(X[f].dropna().unique().tolist()),
        )
        for f in features
    ]  # fmt: skip
    profiles = {
        f: number_profile(_values(X[f])) if f in numbers else category_profile(_values(X[f]))
        for f in features
    }
    predicted = [str(p) for p in pipeline.predict(X)]
    metadata = Metadata(
        name="penguins", version=new_version(), created_at=T0, task="classification",
        estimator="logistic_regression", features=specs, target="species",
        classes=[str(c) for c in pipeline.classes_], metrics={"accuracy": 1.0}, seed=0,
        dataset=DatasetInfo(source="palmerpenguins", target="species", fingerprint="sha256:0",
                            n_rows=len(data), n_features=len(features)),
        libraries=installed_versions(),
    )  # fmt: skip
    reference = ReferenceProfile(
        source="training", rows=len(X), features=profiles, predictions=category_profile(predicted)
    )
    root = tmp_path_factory.mktemp("penguins")
    return root, save_version(root, metadata, pipeline, reference=reference), pipeline, X


def _values(column: Any) -> list[Any]:
    return [None if v is None or v != v else v for v in column.tolist()]


def test_penguins_resampled_is_stable_and_three_numbers_and_a_category_drift(
    penguins: tuple[Path, Metadata, Any, Any], store_url: str
) -> None:
    _, metadata, pipeline, X = penguins
    rng = np.random.default_rng(16)
    live = X.iloc[rng.integers(0, len(X), size=ROWS)].reset_index(drop=True)
    shifted = live.copy()
    for name in PENGUIN_SHIFTED:
        spec = next(f for f in metadata.features if f.name == name)
        shifted[name] = shifted[name] + spec.std
    moved = rng.random(ROWS) < 0.3  # 30% more penguins seen on Torgersen
    shifted.loc[moved, "island"] = "Torgersen"
    for frame, start in ((live, T0), (shifted, T1)):
        rows = [{k: _json(v) for k, v in row.items()} for row in frame.to_dict("records")]
        _log(store_url, metadata, rows, pipeline.predict(frame), start)

    stable = drift(source(store_url), metadata, RESAMPLED)
    drifted = drift(source(store_url), metadata, SHIFTED)

    assert stable.drifted_features == [], _report(stable)
    assert drifted.drifted_features == ["island", *PENGUIN_SHIFTED], _report(drifted)
    assert {f.name: f.rows for f in drifted.features}["sex"] == ROWS  # nulls counted as a cell


def _json(value: Any) -> Any:
    if value is None or (isinstance(value, float) and value != value):
        return None
    return value.item() if hasattr(value, "item") else value
