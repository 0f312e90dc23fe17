"""``python -m serving monitor quality|drift|report`` through the real serving CLI."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from serving.cli import main
from serving.predlog import migrations
from tests.serving.monitoring.conftest import Zoo
from tests.serving.monitoring.helpers import Logged, at, insert_predictions, save_version
from tests.serving.monitoring.test_report import SHIFTED, T0, log_traffic

WINDOW = ["--since", at(T0 - 60).isoformat(), "--until", at(T0 + 86400).isoformat()]


@pytest.fixture
def logged(classifiers: Zoo, store_url: str) -> list[str]:
    log_traffic(classifiers, store_url)
    return ["--database-url", store_url, "--models-dir", str(classifiers.models_dir)]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["monitor", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_quality_prints_live_beside_held_out(
    logged: list[str], classifiers: Zoo, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "quality", "--model", "breast_cancer", *logged, *WINDOW)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("breast_cancer (classification), since ")
    assert lines[1].split()[:3] == ["version", "predictions", "labelled"]
    first, second = (m for m, _ in classifiers.versions)
    assert lines[2].split()[:3] == [first.version, "600", "200"]
    assert f"({first.metrics['accuracy']:.4f})" in lines[2]
    assert lines[3].startswith(second.version)


def test_quality_json_is_the_report_model(
    logged: list[str], classifiers: Zoo, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "quality", "--model", "breast_cancer", "--json", *logged)
    assert code == 0
    found = json.loads(out)
    assert found["metrics"] == ["accuracy", "balanced_accuracy", "log_loss"]
    assert [v["labelled"] for v in found["versions"]] == [200, 200]


def test_drift_names_the_drifted_features(
    logged: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "drift", "--model", "breast_cancer", *logged)
    assert code == 0
    drifted = [line.split()[:2] for line in out.splitlines() if " DRIFTED " in line]
    assert sorted(" ".join(words) for words in drifted) == sorted(SHIFTED)
    assert out.splitlines()[-2].startswith("drifted: 2 of 30 features (")


def test_drift_json_and_min_rows(logged: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "drift", "--json", "--min-rows", "700", *logged)
    assert code == 0
    found = json.loads(out)
    assert (found["status"], found["rows"], found["min_rows"]) == ("insufficient_data", 600, 700)
    assert {f["status"] for f in found["features"]} == {"insufficient_data"}


def test_report_writes_one_html_file(
    logged: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "report.html"
    code, out, _ = _run(
        capsys, "report", "--model", "breast_cancer", "--out", str(out_file), *logged
    )
    assert code == 0
    assert out.startswith(f"wrote {out_file} (")
    assert out_file.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["quality", "--since", "yesterday"], "'yesterday' is neither a duration"),
        (["drift", "--until", "2026-13-45"], "is neither a duration"),
        (["quality", "--since", "1h", "--until", "2h"], "must be before --until"),
        (["quality", "--model", "nope"], "no model 'nope'"),
        (["drift", "--model", "../etc"], "invalid model name"),
        (["drift", "--version", "20990101-000000-000000"], "no version"),
        (["drift", "--version", "latest"], "invalid version"),
        (["report", "--min-rows", "0", "--out", "x.html"], "--min-rows"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    logged: list[str], argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, *argv, *logged)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("error: ")
    assert message in err


def test_drift_of_a_version_without_a_profile_is_not_available(
    classifiers: Zoo, store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    metadata, trained = classifiers.versions[0]
    old = save_version(tmp_path / "models", metadata, trained.pipeline, reference=None)
    insert_predictions(store_url, [Logged(old.name, old.version, {}, "benign", at(T0))])
    argv = ["drift", "--database-url", store_url, "--models-dir", str(tmp_path / "models")]
    code, out, err = _run(capsys, *argv)
    assert (code, out) == (2, "")
    assert err.startswith("error: drift not available: ")
    assert err.count("\n") == 1
    code, out, _ = _run(capsys, *argv, "--json")
    assert code == 2
    assert json.loads(out)["status"] == "not_available"


@pytest.mark.parametrize(
    "url",
    ["postgresql://nobody@127.0.0.1:1/none", "sqlite:////nonexistent/folder/predictions.db"],
)
def test_an_unreachable_log_is_one_line_and_exit_1(
    classifiers: Zoo, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--database-url", url, "--models-dir", str(classifiers.models_dir)]
    code, out, err = _run(capsys, "quality", *argv)
    assert (code, out) == (1, "")
    assert err.startswith("error: ")
    assert err.count("\n") == 1


def test_a_log_without_the_feedback_table_names_the_migrate_command(
    classifiers: Zoo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "old.db"
    first = migrations.available("sqlite")[0]  # a log from before migration 0003
    with sqlite3.connect(path) as conn:
        conn.executescript(first.sql)
    argv = ["--database-url", f"sqlite:///{path}", "--models-dir", str(classifiers.models_dir)]
    code, _, err = _run(capsys, "quality", *argv)
    assert code == 1
    assert "python -m serving migrate" in err
