"""A model trained on typed data loads through serving.artifact.load and predicts on a
DataFrame built from JSON values exactly as the docs say the service builds it
(docs/training.md, "How the service feeds a pipeline") — identically to the frame it was
trained on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest

from serving import artifact
from training.data import load_builtin, load_csv
from training.train import fit, save


def json_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """What a client sends: numbers, strings, true/false, null for a missing value."""
    rows = [
        {name: (None if pd.isna(value) else value) for name, value in row.items()}
        for row in frame.to_dict(orient="records")
    ]
    return list(orjson.loads(orjson.dumps(rows)))


def frame_from_json(
    rows: list[dict[str, Any]], features: list[artifact.FeatureSpec]
) -> pd.DataFrame:
    """The contract, written out independently of training's own code."""
    columns: dict[str, pd.Series] = {}
    for spec in features:
        values = [row[spec.name] for row in rows]
        nan = [np.nan if v is None else v for v in values]
        if spec.type == "number":
            exact = spec.dtype == "int64" and None not in values
            columns[spec.name] = pd.Series(
                values if exact else nan, dtype=spec.dtype if exact else "float64"
            )
        elif spec.dtype == "category":
            columns[spec.name] = pd.Series(values, dtype=pd.CategoricalDtype(spec.categories))
        elif spec.dtype == "boolean":
            columns[spec.name] = pd.Series(
                [pd.NA if v is None else v for v in values], dtype="boolean"
            )
        elif spec.dtype == "bool":
            columns[spec.name] = pd.Series(values, dtype=bool)
        else:  # str or object categories, object booleans
            columns[spec.name] = pd.Series(nan, dtype=spec.dtype)
    return pd.DataFrame(columns)


@pytest.mark.parametrize(
    "estimator", ["logistic_regression", "random_forest", "hist_gradient_boosting"]
)
def test_penguins_artifact_predicts_on_a_frame_built_from_json(
    tmp_path: Path, estimator: str
) -> None:
    dataset = load_builtin("penguins")
    trained = fit(dataset, estimator=estimator, cv_folds=0)
    loaded = artifact.load(save(trained, dataset, tmp_path, name="penguins"))
    served = frame_from_json(json_rows(dataset.X), loaded.metadata.features)

    assert [str(t) for t in served.dtypes] == [str(t) for t in trained.X_train.dtypes]
    assert np.array_equal(
        loaded.pipeline.predict_proba(served), trained.pipeline.predict_proba(dataset.X)
    )
    assert served.isna().sum().sum() == dataset.X.isna().sum().sum() > 0


def test_a_csv_with_booleans_and_blanks_predicts_the_same_from_json(tmp_path: Path) -> None:
    penguins = load_builtin("penguins").X
    frame = penguins.assign(heavy=np.where(penguins["body_mass_g"] > 4000, "true", "false"))
    frame.loc[penguins["body_mass_g"].isna(), "heavy"] = ""
    frame["species"] = load_builtin("penguins").y
    frame.to_csv(tmp_path / "p.csv", index=False)
    dataset = load_csv(tmp_path / "p.csv", "species")
    trained = fit(dataset, estimator="hist_gradient_boosting", cv_folds=0)
    loaded = artifact.load(save(trained, dataset, tmp_path / "m", name="p"))
    heavy = loaded.metadata.features[-1]

    served = frame_from_json(json_rows(dataset.X), loaded.metadata.features)

    assert (heavy.type, heavy.dtype, heavy.nullable) == ("boolean", "object", True)
    assert json_rows(dataset.X)[0]["heavy"] in (True, False)
    assert np.array_equal(
        loaded.pipeline.predict_proba(served), trained.pipeline.predict_proba(dataset.X)
    )
