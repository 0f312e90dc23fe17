"""The quality gate's decisions, on the metadata of a real trained model."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving import artifact
from training import gate


@pytest.fixture(scope="module")
def trained(models_dir: Path) -> artifact.Metadata:
    return artifact.read_metadata(artifact.resolve(models_dir, "breast_cancer"))


def _with(meta: artifact.Metadata, version: str, **metrics: float) -> artifact.Metadata:
    return meta.model_copy(update={"version": version, "metrics": {**meta.metrics, **metrics}})


def test_gate_passes_a_good_first_version(trained: artifact.Metadata) -> None:
    result = gate.check(trained, None)

    assert result.passed
    assert result.metric == "balanced_accuracy"
    assert "no current version" in result.reasons[-1]


def test_gate_refuses_a_score_below_the_minimum(trained: artifact.Metadata) -> None:
    result = gate.check(trained, None, min_score=0.999)

    assert not result.passed
    assert "below the minimum 0.9990" in result.reasons[0]


def test_gate_default_minimum_depends_on_the_task(trained: artifact.Metadata) -> None:
    weak = _with(trained, trained.version, balanced_accuracy=0.65)
    assert not gate.check(weak, None).passed
    regression = trained.model_copy(update={"task": "regression", "metrics": {"r2": 0.15}})
    assert gate.check(regression, None).passed
    assert not gate.check(regression.model_copy(update={"metrics": {"r2": 0.05}}), None).passed


def test_gate_refuses_a_drop_beyond_the_tolerance(trained: artifact.Metadata) -> None:
    current = _with(trained, "20250101-000000-000000", balanced_accuracy=0.97)
    candidate = _with(trained, "20250102-000000-000000", balanced_accuracy=0.94)

    result = gate.check(candidate, current, tolerance=0.02)

    assert not result.passed
    assert (
        "worse than current version 20250101-000000-000000's 0.9700 by 0.0300"
        in (result.reasons[-1])
    )


def test_gate_accepts_a_drop_within_the_tolerance(trained: artifact.Metadata) -> None:
    current = _with(trained, "20250101-000000-000000", balanced_accuracy=0.97)
    candidate = _with(trained, "20250102-000000-000000", balanced_accuracy=0.955)

    assert gate.check(candidate, current, tolerance=0.02).passed
    assert not gate.check(candidate, current, tolerance=0.01).passed


def test_gate_does_not_compare_a_different_task(trained: artifact.Metadata) -> None:
    current = trained.model_copy(
        update={"version": "20250101-000000-000000", "task": "regression", "metrics": {"r2": 0.9}}
    )

    result = gate.check(trained, current)

    assert result.passed
    assert "not compared" in result.reasons[-1]
