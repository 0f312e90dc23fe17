"""Flags, config files and ``--param`` values become validated training options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from training.options import OptionsError, load_config, merge, parse_param


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("C=0.5", ("C", 0.5)),
        ("max_iter=200", ("max_iter", 200)),
        ("fit_intercept=false", ("fit_intercept", False)),
        ('class_weight="balanced"', ("class_weight", "balanced")),
        ("max_depth=null", ("max_depth", None)),
        ("solver=liblinear", ("solver", "liblinear")),
        ("hidden=[10, 20]", ("hidden", [10, 20])),
    ],
)
def test_param_values_are_toml_or_json_literals(item: str, expected: tuple[str, Any]) -> None:
    assert parse_param(item) == expected


def test_param_without_equals_sign_is_refused() -> None:
    with pytest.raises(OptionsError, match="expected key=value"):
        parse_param("C")


def test_flags_override_the_config_file(tmp_path: Path) -> None:
    config_file = tmp_path / "train.toml"
    config_file.write_text(
        'model = "random_forest"\nseed = 3\ncv_folds = 0\n'
        "[params]\nn_estimators = 5\nmax_depth = 2\n"
    )
    config = load_config(config_file)

    options = merge(config, {"seed": 4, "model": None}, {"n_estimators": 7})

    assert (options.model, options.seed, options.cv_folds) == ("random_forest", 4, 0)
    assert options.params == {"n_estimators": 7, "max_depth": 2}


def test_config_data_path_is_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    config_file = tmp_path / "conf" / "train.toml"
    config_file.write_text('data = "data.csv"\ntarget = "y"\n')

    options = merge(load_config(config_file), {}, {})

    assert options.data == tmp_path / "conf" / "data.csv"
    assert options.source_name == "data"


def test_dataset_flag_replaces_a_csv_source_from_the_config(tmp_path: Path) -> None:
    options = merge({"data": tmp_path / "x.csv", "target": "y"}, {"dataset": "iris"}, {})

    assert (options.dataset, options.data, options.target) == ("iris", None, None)


def test_unknown_config_key_is_refused() -> None:
    with pytest.raises(OptionsError, match="bogus"):
        merge({"bogus": 1}, {}, {})


def test_csv_without_target_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OptionsError, match="target column"):
        merge({}, {"data": tmp_path / "x.csv"}, {})


def test_invalid_toml_is_refused(tmp_path: Path) -> None:
    config_file = tmp_path / "bad.toml"
    config_file.write_text("model = \n")

    with pytest.raises(OptionsError, match="not valid TOML"):
        load_config(config_file)
