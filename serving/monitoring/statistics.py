"""Drift statistics over histograms: small pure functions of counts (numpy and math only).

A reference profile keeps counts per bin (numbers) or per category, never rows, so every
statistic here compares two histograms over the same cells. The choice between them, and
their thresholds, is made in serving/monitoring/drift.py and explained in docs/monitoring.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def chi_square_sf(statistic: float, df: int) -> float:
    """P(X >= statistic) for X ~ chi-square(df): the regularised upper gamma Q(df/2, x/2).

    For integer df, Q has closed forms built from the recurrence
    Q(a + 1, x) = Q(a, x) + x^a e^-x / Gamma(a + 1), started at Q(1, x) = e^-x (even df) or
    Q(1/2, x) = erfc(sqrt(x)) (odd df). Each term is taken in log space, so neither a large
    statistic nor many degrees of freedom overflow.
    """
    if df < 1:
        raise ValueError("a chi-square distribution needs at least one degree of freedom")
    if statistic <= 0:
        return 1.0
    x = statistic / 2.0
    log_x = math.log(x)
    if df % 2 == 0:
        total, powers = 0.0, [float(i) for i in range(df // 2)]
    else:
        total, powers = math.erfc(math.sqrt(x)), [i + 0.5 for i in range((df - 1) // 2)]
    for a in powers:
        total += math.exp(a * log_x - x - math.lgamma(a + 1.0))
    return min(max(total, 0.0), 1.0)


def chi_square_test(reference: Sequence[float], live: Sequence[float]) -> tuple[float, float]:
    """Pearson's test that two samples share one distribution over the same cells.

    The 2 x k contingency table of counts (no continuity correction); cells empty in both
    samples are dropped. Returns (statistic, p-value); with fewer than two cells left, or
    an empty sample, there is nothing to test: (0, 1).
    """
    ref, cur = np.asarray(reference, dtype=np.float64), np.asarray(live, dtype=np.float64)
    _check_counts(ref, cur)
    keep = (ref + cur) > 0
    ref, cur = ref[keep], cur[keep]
    n_ref, n_cur = ref.sum(), cur.sum()
    if ref.size < 2 or n_ref == 0 or n_cur == 0:
        return 0.0, 1.0
    column = ref + cur
    expected_ref = column * (n_ref / (n_ref + n_cur))
    expected_cur = column * (n_cur / (n_ref + n_cur))
    statistic = float(
        ((ref - expected_ref) ** 2 / expected_ref).sum()
        + ((cur - expected_cur) ** 2 / expected_cur).sum()
    )
    return statistic, chi_square_sf(statistic, int(ref.size) - 1)


def jensen_shannon_distance(reference: Sequence[float], live: Sequence[float]) -> float:
    """sqrt of the Jensen-Shannon divergence (natural log) between two frequency tables.

    0 for equal shares, at most sqrt(ln 2) ~ 0.83 for disjoint ones; scipy's
    ``scipy.spatial.distance.jensenshannon`` with its default base.
    """
    ref, cur = np.asarray(reference, dtype=np.float64), np.asarray(live, dtype=np.float64)
    _check_counts(ref, cur)
    if ref.sum() == 0 or cur.sum() == 0:
        raise ValueError("both tables need at least one count")
    p, q = ref / ref.sum(), cur / cur.sum()
    m = (p + q) / 2
    divergence = 0.5 * _kl(p, m) + 0.5 * _kl(q, m)
    return math.sqrt(max(divergence, 0.0))


def _kl(p: np.ndarray, m: np.ndarray) -> float:
    mask = p > 0
    return float((p[mask] * np.log(p[mask] / m[mask])).sum())


def _check_counts(reference: np.ndarray, live: np.ndarray) -> None:
    if reference.shape != live.shape or reference.ndim != 1:
        raise ValueError("both histograms need the same cells")
    if np.any(reference < 0) or np.any(live < 0):
        raise ValueError("counts cannot be negative")
