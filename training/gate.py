"""The quality gate: whether a newly trained version may become the current one.

A version passes when its primary metric on the held-out split (balanced accuracy for
classifiers, R² for regressors) reaches a minimum, and is not worse than the current
version's by more than a tolerance. The comparison is made only when the two are
comparable: same task, hence same metric. ``--force`` promotes regardless; the decision
and its reasons are printed either way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from serving.artifact import Metadata
from training.data import Task
from training.evaluate import PRIMARY_METRIC

DEFAULT_MIN_SCORE: dict[Task, float] = {"classification": 0.7, "regression": 0.1}
"""Balanced accuracy 0.7 is well above chance for any class count the built-in datasets
have; R² 0.1 means the model explains at least a tenth of the variance (diabetes' ridge
model scores about 0.33)."""


@dataclass(frozen=True)
class GateResult:
    """The decision, the metric it was made on, and one human-readable line per check."""

    metric: str
    score: float
    reasons: tuple[str, ...]
    """Every check, passed or not, in order."""
    failures: tuple[str, ...]
    """The checks that refused the version; empty when it passed."""

    @property
    def passed(self) -> bool:
        return not self.failures


def check(
    candidate: Metadata,
    current: Metadata | None,
    *,
    min_score: float | None = None,
    tolerance: float = 0.02,
) -> GateResult:
    """Apply the minimum and the no-regression rule to ``candidate``."""
    metric = PRIMARY_METRIC[candidate.task]
    score = candidate.metrics.get(metric, math.nan)
    minimum = DEFAULT_MIN_SCORE[candidate.task] if min_score is None else min_score
    reasons: list[str] = []
    failures: list[str] = []

    def refuse(reason: str) -> None:
        reasons.append(reason)
        failures.append(reason)

    if not math.isfinite(score):
        refuse(f"{metric} is missing or not finite ({score})")
        return GateResult(metric, score, tuple(reasons), tuple(failures))
    if score < minimum:
        refuse(f"{metric} {score:.4f} is below the minimum {minimum:.4f}")
    else:
        reasons.append(f"{metric} {score:.4f} >= minimum {minimum:.4f}")
    if current is None:
        reasons.append("no current version to compare with")
    elif current.version == candidate.version:
        reasons.append("it is the current version")
    elif current.task != candidate.task or metric not in current.metrics:
        reasons.append(f"current version {current.version} is a {current.task} model; not compared")
    else:
        baseline = current.metrics[metric]
        against = f"current version {current.version}'s {baseline:.4f}"
        if score >= baseline:
            reasons.append(f"{metric} {score:.4f} >= {against}")
        elif score >= baseline - tolerance:
            reasons.append(
                f"{metric} {score:.4f} is below {against} by {baseline - score:.4f}, "
                f"within the tolerance {tolerance:.4f}"
            )
        else:
            refuse(
                f"{metric} {score:.4f} is worse than {against} by {baseline - score:.4f}, "
                f"more than the tolerance {tolerance:.4f}"
            )
    return GateResult(metric, score, tuple(reasons), tuple(failures))
