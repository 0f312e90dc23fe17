"""Data: the CSV rules (types, missing cells, what is refused) and the built-in penguins."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.training.conftest import Cli
from training.data import DataError, load_builtin, load_csv


def _csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_csv_columns_are_typed_and_missing_cells_are_nan(tmp_path: Path) -> None:
    data = _csv(
        tmp_path / "d.csv",
        ["size", "colour", "fresh", "label"],
        [
            [1.5, "red", "true", "a"],
            ["", "NA", "False", "b"],
            ["null", "blue", "", "a"],
            [" 4 ", "Null", "TRUE", "b"],
            ["NaN", "green", "none", "a"],
            ["2", " N/A ", "false", "b"],
        ],
    )

    dataset = load_csv(data, "label")

    assert dataset.is_frame
    X = dataset.X
    assert [str(t) for t in X.dtypes] == ["float64", "str", "object"]
    assert X["size"].tolist()[0] == 1.5
    assert X["size"].isna().tolist() == [False, True, True, False, True, False]
    assert X["size"][3] == 4.0
    assert X["colour"].isna().tolist() == [False, True, False, True, False, True]
    assert X["fresh"].tolist()[:2] == [True, False]
    assert X["fresh"].isna().tolist() == [False, False, True, False, True, False]
    assert dataset.y.tolist() == ["a", "b", "a", "b", "a", "b"]


def test_numeric_csv_without_missing_cells_is_a_float_matrix(tmp_path: Path) -> None:
    data = _csv(tmp_path / "d.csv", ["a", "b", "y"], [[1, 2.5, 0], [3, 4, 1], [5, 6, 1]])

    dataset = load_csv(data, "y")

    assert not dataset.is_frame
    assert isinstance(dataset.X, np.ndarray)
    assert dataset.X.dtype == np.float64
    assert dataset.X.tolist() == [[1.0, 2.5], [3.0, 4.0], [5.0, 6.0]]


@pytest.mark.parametrize(
    ("header", "rows", "target", "message"),
    [
        (["a", "b"], [[1, 2], [3, 4]], "y", "target column 'y' not found; columns are: a, b"),
        (["a", "y"], [[1, "x"], [2, ""], [3, "z"]], "y", "target 'y' is missing in 1 row(s)"),
        (["a", "y"], [[1, "x"], [2, "x"], [3, "x"]], "y", "target 'y' has one value only ('x')"),
        (["a", "y"], [[1, 0]], "y", "needs at least two data rows, found 1"),
        (["a", "a", "y"], [[1, 2, 0], [3, 4, 1]], "y", "duplicated column names: a"),
        (["a", "e", "y"], [[1, "", 0], [3, "NA", 1]], "y", "column 'e' has no values"),
        (["a", "y"], [[1, 0], ["inf", 1]], "y", "column 'a' holds 'inf', not a finite number"),
    ],
)
def test_bad_csv_is_refused_with_one_line_and_nothing_registered(
    cli: Cli, tmp_path: Path, header: list[str], rows: list[list[object]], target: str, message: str
) -> None:
    data = _csv(tmp_path / "d.csv", header, rows)
    with pytest.raises(DataError) as caught:
        load_csv(data, target)
    assert message in str(caught.value)

    done = cli("train", "--data", data, "--target", target, "--models-dir", tmp_path / "m")

    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr
    assert message in done.stderr
    assert not (tmp_path / "m").exists()


def test_penguins_is_344_typed_rows_with_missing_values() -> None:
    dataset = load_builtin("penguins")

    assert (dataset.task, dataset.target, dataset.source) == (
        "classification",
        "species",
        "palmerpenguins:penguins",
    )
    X = dataset.X
    assert isinstance(X, pd.DataFrame)
    assert X.shape == (344, 7)
    assert dict(zip(X.columns, map(str, X.dtypes), strict=True)) == {
        "island": "str",
        "bill_length_mm": "float64",
        "bill_depth_mm": "float64",
        "flipper_length_mm": "float64",
        "body_mass_g": "float64",
        "sex": "str",
        "year": "float64",
    }
    assert X.isna().sum().to_dict()["sex"] == 11
    assert X.isna().sum().to_dict()["bill_length_mm"] == 2
    assert sorted(set(dataset.y.tolist())) == ["Adelie", "Chinstrap", "Gentoo"]


def test_fingerprint_names_the_content() -> None:
    first = load_builtin("penguins")
    changed = first.X.copy()
    changed.loc[0, "island"] = "Dream"

    assert load_builtin("penguins").fingerprint == first.fingerprint
    assert replace(first, X=changed).fingerprint != first.fingerprint
