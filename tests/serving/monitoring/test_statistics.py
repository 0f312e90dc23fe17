"""The drift statistics, each against scipy's reference implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from serving.monitoring.statistics import (
    chi_square_sf,
    chi_square_test,
    jensen_shannon_distance,
)


@pytest.mark.parametrize("df", [1, 2, 3, 9, 10, 29, 30, 101, 400])
@pytest.mark.parametrize("x", [1e-9, 0.5, 3.0, 9.0, 26.6, 60.0, 250.0, 5000.0])
def test_chi_square_sf_matches_scipy(x: float, df: int) -> None:
    expected = float(stats.chi2.sf(x, df))
    assert chi_square_sf(x, df) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_chi_square_sf_of_zero_is_one() -> None:
    assert chi_square_sf(0.0, 4) == 1.0


def test_chi_square_sf_needs_a_degree_of_freedom() -> None:
    with pytest.raises(ValueError, match="degree"):
        chi_square_sf(1.0, 0)


@pytest.mark.parametrize("seed", range(5))
def test_chi_square_test_matches_scipys_contingency_test(seed: int) -> None:
    rng = np.random.default_rng(seed)
    reference, live = rng.integers(0, 60, size=8), rng.integers(0, 400, size=8)
    reference[0] = live[0] = 0  # a cell empty in both is dropped, as it must be for scipy
    statistic, p = chi_square_test(reference.tolist(), live.tolist())
    table = np.array([reference[1:], live[1:]])
    expected = stats.chi2_contingency(table, correction=False)
    assert statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert p == pytest.approx(expected.pvalue, rel=1e-9)


def test_chi_square_test_of_equal_shares_is_not_significant() -> None:
    assert chi_square_test([10, 20, 30], [100, 200, 300]) == (0.0, 1.0)


def test_chi_square_test_without_two_cells_or_samples_has_nothing_to_test() -> None:
    assert chi_square_test([5, 0], [7, 0]) == (0.0, 1.0)
    assert chi_square_test([5, 3], [0, 0]) == (0.0, 1.0)


def test_chi_square_test_refuses_mismatched_or_negative_counts() -> None:
    with pytest.raises(ValueError, match="same cells"):
        chi_square_test([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="negative"):
        chi_square_test([1, -2], [1, 2])


@pytest.mark.parametrize("seed", range(5))
def test_jensen_shannon_distance_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    reference, live = rng.integers(0, 50, size=6), rng.integers(0, 50, size=6)
    live[2] = 0
    expected = float(jensenshannon(reference, live))
    assert jensen_shannon_distance(reference.tolist(), live.tolist()) == pytest.approx(expected)


def test_jensen_shannon_distance_bounds() -> None:
    assert jensen_shannon_distance([3, 1], [30, 10]) == pytest.approx(0.0, abs=1e-12)
    assert jensen_shannon_distance([1, 0], [0, 1]) == pytest.approx(math.sqrt(math.log(2)))


def test_jensen_shannon_distance_needs_counts_on_both_sides() -> None:
    with pytest.raises(ValueError, match="at least one"):
        jensen_shannon_distance([0, 0], [1, 2])
