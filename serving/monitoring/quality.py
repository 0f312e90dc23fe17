"""Live quality per model version: logged predictions joined with the labels sent for them.

The database joins and aggregates (serving/monitoring/sql.py); this module names the
results and sets them beside each version's held-out metrics from training (its
metadata.json). Classifiers: accuracy, balanced accuracy (mean recall over the true classes
present) and log loss (probabilities clipped to [eps, 1 - eps], as scikit-learn does; a true
class the model never predicts has probability 0). Regressors: MAE, RMSE and R² (1 when
every label is equal and predicted exactly, 0 when equal and not, as scikit-learn's
``force_finite``; none below two labels). The window applies to the predictions' time.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from serving.artifact import Metadata
from serving.monitoring.queries import LiveSource, Row, Scope, Window
from serving.monitoring.registry import Registry

Task = Literal["classification", "regression"]
METRICS: dict[Task, tuple[str, ...]] = {
    "classification": ("accuracy", "balanced_accuracy", "log_loss"),
    "regression": ("mae", "rmse", "r2"),
}


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VersionQuality(_Frozen):
    version: str
    predictions: int
    labelled: int
    """Predictions with a usable label (a JSON string, number or boolean for classifiers;
    a number for regressors)."""
    first_at: datetime | None = None
    last_at: datetime | None = None
    live: dict[str, float | None]
    held_out: dict[str, float] | None
    """The same metrics on the version's held-out data; None if its metadata is gone."""


class QualityReport(_Frozen):
    model: str
    task: Task
    since: datetime | None
    until: datetime | None
    metrics: list[str]
    versions: list[VersionQuality]
    """Versions with predictions in the window, oldest first."""


class QualityPoint(_Frozen):
    """One version's live quality in one time bucket [start, start + seconds)."""

    version: str
    start: datetime
    seconds: int
    predictions: int
    labelled: int
    live: dict[str, float | None]


def quality(
    source: LiveSource,
    registry: Registry,
    model: str,
    window: Window | None = None,
    *,
    version: str | None = None,
) -> QualityReport:
    """Live metrics per version of ``model`` over ``window`` (one version if given)."""
    window = window or Window()
    versions = registry.versions(model)
    if version is not None:
        registry.metadata(model, version)  # an unknown version is an error, not an empty table
    task = _task(versions)
    rows = _rows(source, Scope(model, version, window), task, None)
    names = METRICS[task]
    found = [
        VersionQuality(
            version=row["model_version"],
            predictions=row["predictions"],
            labelled=row["labelled"],
            first_at=row["first_at"],
            last_at=row["last_at"],
            live=row["live"],
            held_out=_held_out(versions.get(row["model_version"]), names),
        )
        for row in rows
    ]
    return QualityReport(
        model=model, task=task, since=window.since, until=window.until, metrics=list(names),
        versions=found,
    )  # fmt: skip


def quality_over_time(
    source: LiveSource,
    task: Task,
    model: str,
    window: Window,
    seconds: int,
    *,
    version: str | None = None,
) -> list[QualityPoint]:
    """Live metrics per version and time bucket of ``seconds``, oldest first."""
    rows = _rows(source, Scope(model, version, window), task, seconds)
    return [
        QualityPoint(
            version=row["model_version"],
            start=datetime.fromtimestamp(row["bucket"] * seconds, UTC),
            seconds=seconds,
            predictions=row["predictions"],
            labelled=row["labelled"],
            live=row["live"],
        )
        for row in sorted(rows, key=lambda r: (r["bucket"], r["model_version"]))
    ]


def task_of(registry: Registry, model: str) -> Task:
    return _task(registry.versions(model))


def _task(versions: dict[str, Metadata]) -> Task:
    """The task of the newest readable version (every version of a model shares it)."""
    latest = list(versions.values())[-1] if versions else None
    return latest.task if latest is not None else "classification"


def _rows(
    source: LiveSource, scope: Scope, task: Task, seconds: int | None
) -> list[dict[str, Any]]:
    """Counts merged with the metrics of the same version and bucket."""
    counts = source.counts(scope, seconds)
    if task == "classification":
        scored = {_key(r): _classifier(r) for r in source.classifier_quality(scope, seconds)}
    else:
        scored = {_key(r): _regressor(r) for r in source.regressor_quality(scope, seconds)}
    empty = dict.fromkeys(METRICS[task])
    merged = []
    for row in counts:
        labelled, live = scored.get(_key(row), (0, empty))
        merged.append(
            {**row, "predictions": int(row["predictions"]), "labelled": labelled, "live": live}
        )
    return merged


def _key(row: Row) -> tuple[str, int]:
    return row["model_version"], int(row["bucket"])


def _classifier(row: Row) -> tuple[int, dict[str, float | None]]:
    return int(row["labelled"]), {
        "accuracy": _float(row["accuracy"]),
        "balanced_accuracy": _float(row["balanced_accuracy"]),
        "log_loss": _float(row["log_loss"]),
    }


def _regressor(row: Row) -> tuple[int, dict[str, float | None]]:
    labelled = int(row["labelled"])
    ss_res, ss_tot = _float(row["ss_res"]), _float(row["ss_tot"])
    r2: float | None = None
    if labelled >= 2 and ss_res is not None and ss_tot is not None:
        r2 = (1.0 if ss_res == 0 else 0.0) if ss_tot == 0 else 1.0 - ss_res / ss_tot
    return labelled, {"mae": _float(row["mae"]), "rmse": _float(row["rmse"]), "r2": r2}


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _held_out(metadata: Metadata | None, names: Iterable[str]) -> dict[str, float] | None:
    if metadata is None:
        return None
    return {name: metadata.metrics[name] for name in names if name in metadata.metrics}
