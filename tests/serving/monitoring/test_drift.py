"""Drift verdicts from counts (no database): cells, methods, thresholds, missing profiles."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from serving.artifact import (
    CategoryProfile,
    DatasetInfo,
    FeatureSpec,
    Metadata,
    NumberProfile,
    ReferenceProfile,
    installed_versions,
)
from serving.monitoring.drift import (
    DISTANCE_THRESHOLD,
    MISSING,
    UNSEEN,
    assess,
    histogram,
    method_for,
)
from tests.serving.monitoring.helpers import category_profile, number_profile

NUMBER = NumberProfile(edges=[0.0, 1.0, 2.0, 4.0], counts=[10, 10, 10], missing=0)
COLOUR = CategoryProfile(counts={"red": 20, "blue": 10}, missing=2)


def test_small_references_are_tested_with_bonferronis_correction() -> None:
    statistic, threshold = method_for(455, 31)
    assert statistic == "chi_square_p_value"
    assert threshold == pytest.approx(0.05 / 31)
    assert method_for(1000, 1) == ("chi_square_p_value", 0.05)


def test_large_references_are_measured_by_distance() -> None:
    assert method_for(1001, 31) == ("jensen_shannon_distance", DISTANCE_THRESHOLD)


def test_a_number_histogram_has_a_missing_cell_only_when_needed() -> None:
    full = histogram(NUMBER, {"0": 5, "2": 7}, rows=12)
    assert full.cells == ["[0, 1)", "[1, 2)", "[2, 4]"]
    assert (full.reference, full.live) == ([10, 10, 10], [5, 0, 7])
    gaps = histogram(NUMBER, {"0": 5, "2": 7}, rows=15)
    assert gaps.cells[-1] == MISSING
    assert (gaps.reference[-1], gaps.live[-1]) == (0, 3)


def test_rows_logged_between_the_two_queries_never_make_missing_negative() -> None:
    found = histogram(NUMBER, {"0": 5, "2": 7}, rows=10)
    assert found.cells[-1] != MISSING
    assert found.live == [5, 0, 7]


def test_a_category_histogram_gathers_unseen_values_and_missing_ones() -> None:
    found = histogram(COLOUR, {"red": 4, "green": 2, "mauve": 1}, rows=9)
    assert found.cells == ["red", "blue", UNSEEN, MISSING]
    assert found.reference == [20, 10, 0, 2]
    assert found.live == [4, 0, 3, 2]


def _metadata(reference: ReferenceProfile | None, features: list[FeatureSpec]) -> Metadata:
    return Metadata(
        name="m", version="20260101-000000-000000", created_at=datetime.now(UTC),
        task="classification", estimator="x", features=features, target="y", classes=["a"],
        metrics={}, seed=0, libraries=installed_versions(), reference=reference,
        dataset=DatasetInfo(source="s", target="y", fingerprint="f", n_rows=1, n_features=1),
    )  # fmt: skip


def _number(name: str) -> FeatureSpec:
    return FeatureSpec(name=name, min=0, max=1, mean=0, std=1)


def test_a_version_without_a_reference_is_not_available() -> None:
    found = assess(_metadata(None, [_number("x")]), 900, {}, None)
    assert found.status == "not_available"
    assert found.note is not None
    assert "no reference profile" in found.note
    assert found.features == []


def test_a_constant_or_unprofiled_feature_is_not_available_and_not_counted() -> None:
    reference = ReferenceProfile(
        source="training", rows=100,
        features={"x": NUMBER, "c": NumberProfile(edges=[3.0], counts=[], missing=0)},
    )  # fmt: skip
    metadata = _metadata(reference, [_number("x"), _number("c"), _number("absent")])
    found = assess(metadata, 600, {"x": {"0": 200, "1": 200, "2": 200}}, None)
    assert [f.status for f in found.features] == ["stable", "not_available", "not_available"]
    assert found.threshold == pytest.approx(0.05)  # one column compared


def test_too_few_rows_give_no_verdict() -> None:
    reference = ReferenceProfile(source="training", rows=30, features={"x": NUMBER})
    found = assess(_metadata(reference, [_number("x")]), 40, {"x": {"0": 40}}, None)
    assert found.status == "insufficient_data"
    (column,) = found.features
    assert (column.status, column.drifted) == ("insufficient_data", None)
    assert column.value is not None  # shown, but not judged


def _cells(profile: NumberProfile, values: np.ndarray) -> dict[str, int]:
    """Live cells as the SQL counts them (tests/serving/monitoring/test_queries.py)."""
    edges = np.asarray(profile.edges)
    bins = np.clip(np.searchsorted(edges, values, side="right"), 1, len(edges) - 1) - 1
    return {str(k): int(v) for k, v in Counter(bins.tolist()).items()}


def _synthetic(rows: int, rng: np.random.Generator) -> dict[str, Any]:
    return {
        "normal": rng.normal(50, 10, rows),
        "skewed": rng.lognormal(0, 1, rows),
        "counts": rng.poisson(3, rows).astype(float),
        "plan": rng.choice(["free", "pro", "team", "enterprise"], rows, p=[0.6, 0.25, 0.1, 0.05]),
    }


@pytest.mark.parametrize("seed", range(3))
def test_large_references_flag_a_one_std_shift_and_not_fresh_samples(seed: int) -> None:
    """A 5,000-row reference (the distance path) against fresh draws of the same population."""
    rng = np.random.default_rng(seed)
    train = _synthetic(5000, rng)
    numbers = ["normal", "skewed", "counts"]
    profiles: dict[str, NumberProfile | CategoryProfile] = {
        name: number_profile(train[name].tolist()) for name in numbers
    }
    profiles["plan"] = category_profile(train["plan"].tolist())
    specs = [_number(n) for n in numbers] + [FeatureSpec(name="plan", type="category",
                                                         categories=["free"])]  # fmt: skip
    metadata = _metadata(ReferenceProfile(source="training", rows=5000, features=profiles), specs)

    def verdict(live: dict[str, Any]) -> list[str]:
        cells = {n: _cells(profiles[n], live[n]) for n in numbers}  # type: ignore[arg-type]
        cells["plan"] = dict(Counter(live["plan"].tolist()))
        return assess(metadata, 1000, cells, None).drifted_features

    fresh = _synthetic(1000, rng)
    assert verdict(fresh) == []
    moved = dict(fresh)
    moved["normal"] = fresh["normal"] + train["normal"].std()
    moved["skewed"] = fresh["skewed"] + train["skewed"].std()
    moved["plan"] = np.where(rng.random(1000) < 0.3, "enterprise", fresh["plan"])
    assert verdict(moved) == ["normal", "skewed", "plan"]
