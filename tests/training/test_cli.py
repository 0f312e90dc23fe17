"""``python -m training`` end to end: a real subprocess on a temporary registry."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

from serving import artifact
from tests.training.conftest import Cli
from training import registry as reg
from training.data import load_builtin

NAME = "breast_cancer"


def _no_traceback(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr


def test_train_registers_verifies_and_promotes(cli: Cli, tmp_path: Path) -> None:
    done = cli("train", "--cv-folds", "3", "--models-dir", tmp_path)

    assert done.returncode == 0, done.stderr
    assert [f"CV fold {i}/3" in done.stderr for i in (1, 2, 3)] == [True] * 3
    loaded = artifact.load(artifact.resolve(tmp_path, NAME))
    version = loaded.metadata.version
    assert f"Model      {NAME} {version}" in done.stdout
    assert f"balanced_accuracy  {loaded.metadata.metrics['balanced_accuracy']:.4f}" in done.stdout
    assert str(tmp_path / NAME / version) in done.stdout
    assert loaded.digest in done.stdout
    assert "Quality gate: passed" in done.stdout
    assert f"Promoted: {NAME} {version} is now current (previous: none)" in done.stdout


def test_train_if_missing_skips_when_a_current_version_exists(cli: Cli, registry: Path) -> None:
    before = artifact.list_versions(registry, NAME)

    done = cli("train", "--if-missing", "--models-dir", registry)

    assert done.returncode == 0, done.stderr
    assert "nothing to do (--if-missing)" in done.stdout
    assert artifact.list_versions(registry, NAME) == before


def test_train_force_env_retrains_despite_if_missing(cli: Cli, registry: Path) -> None:
    before = artifact.read_current(registry, NAME)

    done = cli(
        "train",
        "--if-missing",
        "--cv-folds",
        "0",
        env={"MODELS_DIR": str(registry), "TRAIN_FORCE": "1"},
    )

    assert done.returncode == 0, done.stderr
    assert artifact.read_current(registry, NAME) not in (None, before)


def test_gate_refusal_exits_3_and_keeps_the_current_version(cli: Cli, registry: Path) -> None:
    before = artifact.read_current(registry, NAME)

    done = cli("train", "--cv-folds", "0", "--min-score", "0.995", "--models-dir", registry)

    assert done.returncode == 3
    _no_traceback(done.stderr)
    assert "error: quality gate refused" in done.stderr
    assert "below the minimum 0.9950" in done.stderr
    assert "NOT promoted" in done.stdout
    assert len(artifact.list_versions(registry, NAME)) == 2  # registered, not current
    assert artifact.read_current(registry, NAME) == before


def test_gate_refuses_a_regression_and_force_promotes_it(cli: Cli, registry: Path) -> None:
    weaker = ("train", "--param", "C=0.001", "--cv-folds", "0", "--models-dir", registry)

    refused = cli(*weaker)
    forced = cli(*weaker, "--force")

    assert refused.returncode == 3
    assert "worse than current version" in refused.stderr
    assert forced.returncode == 0, forced.stderr
    assert "FORCED past the quality gate" in forced.stdout
    newest = artifact.list_versions(registry, NAME)[-1]
    assert artifact.read_current(registry, NAME) == newest
    assert reg.read_history(registry, NAME)[-1].reason.startswith("forced past the quality gate")


def test_tolerance_env_lets_a_small_regression_through(cli: Cli, registry: Path) -> None:
    done = cli(
        "train", "--param", "C=0.001", "--cv-folds", "0", "--models-dir", registry,
        env={"TRAIN_TOLERANCE": "0.2"},
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert "within the tolerance 0.2000" in done.stdout


def test_list_promote_rollback_show(cli: Cli, registry: Path) -> None:
    first = artifact.read_current(registry, NAME)
    assert cli("train", "--cv-folds", "0", "--seed", "1", "--models-dir", registry).returncode == 0
    second = artifact.read_current(registry, NAME)
    assert first is not None
    assert second not in (None, first)

    listed = cli("list", "--name", NAME, "--models-dir", registry)
    rolled = cli("rollback", "--models-dir", registry)
    shown = cli("show", "--models-dir", registry)
    promoted = cli("promote", second, "--models-dir", registry)

    assert listed.returncode == 0
    assert f"* {second}" in listed.stdout
    assert f"  {first}" in listed.stdout
    assert "balanced_accuracy 0." in listed.stdout
    assert rolled.returncode == 0
    assert f"rollback: {first} is now current (previous: {second})" in rolled.stdout
    assert f"version      {first}  (current)" in shown.stdout
    assert "verified     ok (sha256 of every file)" in shown.stdout
    assert promoted.returncode == 0
    assert artifact.read_current(registry, NAME) == second


def test_show_refuses_a_tampered_version(cli: Cli, registry: Path) -> None:
    model = artifact.resolve(registry, NAME) / artifact.MODEL_FILE
    model.write_bytes(model.read_bytes()[:-10])

    done = cli("show", "--models-dir", registry)

    assert done.returncode == 1
    _no_traceback(done.stderr)
    assert f"error: refusing {model}: sha256 mismatch" in done.stderr


def test_rollback_with_nothing_to_return_to_is_a_clear_error(cli: Cli, registry: Path) -> None:
    done = cli("rollback", "--models-dir", registry)

    assert done.returncode == 1
    _no_traceback(done.stderr)
    assert "no earlier promoted version to roll back to" in done.stderr


def _write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_csv_trains_a_model_named_after_the_file(cli: Cli, tmp_path: Path) -> None:
    iris = load_builtin("iris")
    header = ["sepal_length", "sepal_width", "petal_length", "petal_width", "species"]
    data = _write_csv(
        tmp_path / "flowers.csv",
        header,
        [[*x, y] for x, y in zip(iris.X.tolist(), iris.y, strict=True)],
    )

    done = cli("train", "--data", data, "--target", "species", "--models-dir", tmp_path / "m")

    assert done.returncode == 0, done.stderr
    meta = artifact.read_metadata(artifact.resolve(tmp_path / "m", "flowers"))
    assert meta.feature_names == header[:4]
    assert meta.classes == ["setosa", "versicolor", "virginica"]
    assert meta.dataset.source == "csv:flowers.csv"


def test_csv_missing_target_column_is_a_clear_error(cli: Cli, tmp_path: Path) -> None:
    data = _write_csv(tmp_path / "d.csv", ["a", "b", "label"], [[1, 2, 0], [3, 4, 1]])

    done = cli("train", "--data", data, "--target", "y", "--models-dir", tmp_path / "m")

    assert done.returncode == 2
    _no_traceback(done.stderr)
    assert f"error: {data}: target column 'y' not found; columns are: a, b, label" in done.stderr
    assert not (tmp_path / "m").exists()


def test_csv_with_text_and_blank_cells_trains_a_typed_model(cli: Cli, tmp_path: Path) -> None:
    rows: list[list[object]] = [
        [i % 7 or "", ["red", "blue", "NA"][i % 3], "ab"[i % 2 != 0]] for i in range(40)
    ]
    data = _write_csv(tmp_path / "d.csv", ["a", "colour", "y"], rows)

    done = cli("train", "--data", data, "--target", "y", "--min-score", "0",
               "--models-dir", tmp_path / "m")  # fmt: skip

    assert done.returncode == 0, done.stderr
    meta = artifact.read_metadata(artifact.resolve(tmp_path / "m", "d"))
    assert [(f.name, f.type, f.nullable) for f in meta.features] == [
        ("a", "number", True),
        ("colour", "category", True),
    ]
    assert meta.features[1].categories == ["blue", "red"]


def test_bad_hyper_parameter_is_a_clear_error(cli: Cli, tmp_path: Path) -> None:
    done = cli("train", "--param", "C=-1", "--models-dir", tmp_path)

    assert done.returncode == 2
    _no_traceback(done.stderr)
    assert "error: training failed: The 'C' parameter of LogisticRegression" in done.stderr
    assert artifact.list_versions(tmp_path, NAME) == []


def test_invalid_environment_names_the_variable(cli: Cli, tmp_path: Path) -> None:
    done = cli("list", env={"TRAIN_MIN_SCORE": "high"})

    assert done.returncode == 2
    _no_traceback(done.stderr)
    assert "TRAIN_MIN_SCORE" in done.stderr


def test_flags_override_environment(cli: Cli, tmp_path: Path) -> None:
    env = {"MODELS_DIR": str(tmp_path / "from-env"), "MODEL_NAME": "from_env"}

    done = cli("train", "--cv-folds", "0", "--models-dir", tmp_path / "flag", env=env)

    assert done.returncode == 0, done.stderr
    assert artifact.list_versions(tmp_path / "flag", "from_env") != []
    assert not (tmp_path / "from-env").exists()


def test_config_file_options_with_flag_overrides(cli: Cli, tmp_path: Path) -> None:
    config = tmp_path / "train.toml"
    config.write_text(
        'dataset = "wine"\nmodel = "random_forest"\ncv_folds = 0\n[params]\nn_estimators = 5\n'
    )

    done = cli("train", "--config", config, "--param", "n_estimators=7", "--models-dir", tmp_path)

    assert done.returncode == 0, done.stderr
    meta = artifact.read_metadata(artifact.resolve(tmp_path, "wine"))
    assert (meta.estimator, meta.params["n_estimators"]) == ("random_forest", 7)


def test_list_without_a_name_lists_every_model_and_its_current_version(
    cli: Cli, registry: Path
) -> None:
    assert (
        cli("train", "--dataset", "iris", "--cv-folds", "0", "--models-dir", registry).returncode
        == 0
    )

    done = cli("list", "--models-dir", registry)

    assert done.returncode == 0, done.stderr
    for name in (NAME, "iris"):
        current = artifact.read_current(registry, name)
        line = next(line for line in done.stdout.splitlines() if line.startswith(f"{name} "))
        assert current is not None
        assert current in line
        assert "balanced_accuracy 0." in line


def test_list_of_an_empty_registry_says_how_to_train(cli: Cli, tmp_path: Path) -> None:
    done = cli("list", "--models-dir", tmp_path)

    assert done.returncode == 0
    assert "no models in" in done.stdout
    assert "python -m training train" in done.stdout


def test_show_of_a_malformed_version_is_bad_input(cli: Cli, registry: Path) -> None:
    done = cli("show", "VERSION", "--models-dir", registry)

    assert done.returncode == 2
    _no_traceback(done.stderr)
    assert done.stderr == (
        "error: 'VERSION' is not a version id (YYYYMMDD-HHMMSS-ffffff, as "
        "`python -m training list` shows them)\n"
    )


def test_show_of_a_version_that_does_not_exist_is_refused(cli: Cli, registry: Path) -> None:
    done = cli("show", "20000101-000000-000000", "--models-dir", registry)

    assert done.returncode == 1
    assert "no version '20000101-000000-000000'" in done.stderr


def test_an_unknown_model_name_lists_the_models_there(cli: Cli, registry: Path) -> None:
    by_flag = cli("show", "--name", "typo", "--models-dir", registry)
    by_env = cli("history", "--models-dir", registry, env={"MODEL_NAME": "typo"})

    for done in (by_flag, by_env):
        assert done.returncode == 1
        _no_traceback(done.stderr)
        assert f"no model 'typo' in {registry}; its models are: breast_cancer" in done.stderr
        assert "make train" not in done.stderr


def test_show_into_a_reader_that_went_away_is_quiet(tmp_path: Path) -> None:
    registry = tmp_path / "models"
    env = {**os.environ, "MODELS_DIR": str(registry)}
    subprocess.run(
        [sys.executable, "-m", "training", "train", "--dataset", "iris", "--cv-folds", "0"],
        env=env, capture_output=True, check=True, timeout=120,
    )  # fmt: skip
    # `true` exits before reading anything: the write meets a closed pipe, as with `| head`.
    shown = subprocess.run(
        f"{sys.executable} -m training show --name iris | true",
        shell=True, env=env, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert "Traceback" not in shown.stderr
    assert "BrokenPipeError" not in shown.stderr
