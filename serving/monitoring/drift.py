"""Drift: does the traffic a version answers still look like the data it learned from?

Every column (each feature, and the prediction) becomes two histograms over the same
cells: the reference profile's (bins fixed on the training data for numbers, categories
for the rest; metadata.json ``reference``) and the live one counted by the database over
the window. Missing values are a cell of their own, and so are categories never seen in
training. Then one of two statistics, by the size of the reference (docs/monitoring.md
says why):

- reference of at most 1,000 rows: Pearson's chi-square test of homogeneity; drifted when
  p < 0.05 / (columns compared), Bonferroni's correction over the columns;
- larger references: the Jensen-Shannon distance of the two histograms (natural log);
  drifted when >= 0.1.

Fewer than ``MIN_ROWS`` live rows give "insufficient_data" and no verdict; a version
without a reference profile (metadata schema 1) gives "not_available".
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from serving.artifact import CategoryProfile, FeatureProfile, Metadata, NumberProfile
from serving.monitoring import statistics
from serving.monitoring.queries import Edges, LiveSource, Scope, Window

MIN_ROWS = 500
"""Live rows below which a column gets no verdict (docs/monitoring.md, "Minimum rows")."""
ALPHA = 0.05
"""Family-wise false-alarm rate of the tests, split over the columns compared."""
DISTANCE_THRESHOLD = 0.1
"""Jensen-Shannon distance from which a column has drifted (Evidently's default)."""
MAX_TEST_REFERENCE_ROWS = 1000
"""References up to this size are tested (chi-square); larger ones are measured (distance)."""
MISSING = "(missing)"
UNSEEN = "(unseen)"

Statistic = Literal["chi_square_p_value", "jensen_shannon_distance"]
Status = Literal["stable", "drifted", "insufficient_data", "not_available"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Histogram(_Frozen):
    """What was compared: counts per cell, reference and live (aggregates, never rows)."""

    cells: list[str]
    reference: list[int]
    live: list[int]
    edges: list[float] | None = None
    """A number's bin edges (its cells are the bins, then maybe the missing cell)."""


class ColumnDrift(_Frozen):
    """One column's verdict, with what it rests on."""

    name: str
    kind: Literal["number", "category"]
    status: Status
    drifted: bool | None
    """None when there is no verdict (insufficient data, not available)."""
    statistic: Statistic | None = None
    value: float | None = None
    threshold: float | None = None
    rows: int = 0
    """Live rows compared (missing values included)."""
    reference_rows: int = 0
    histogram: Histogram | None = None
    note: str | None = None


class DriftReport(_Frozen):
    """Drift of one model version over a window; ``status`` says whether there is a verdict."""

    model: str
    version: str
    since: datetime | None
    until: datetime | None
    status: Literal["ok", "insufficient_data", "not_available"]
    note: str | None = None
    rows: int = 0
    min_rows: int = MIN_ROWS
    reference_source: str | None = None
    reference_rows: int | None = None
    statistic: Statistic | None = None
    threshold: float | None = None
    features: list[ColumnDrift] = []
    prediction: ColumnDrift | None = None

    @property
    def drifted_features(self) -> list[str]:
        return [f.name for f in self.features if f.drifted]


def method_for(reference_rows: int, columns: int) -> tuple[Statistic, float]:
    """The statistic and threshold for a reference of ``reference_rows`` rows."""
    if reference_rows <= MAX_TEST_REFERENCE_ROWS:
        return "chi_square_p_value", ALPHA / max(columns, 1)
    return "jensen_shannon_distance", DISTANCE_THRESHOLD


def histogram(profile: FeatureProfile, live: Mapping[str, int], rows: int) -> Histogram:
    """The reference and live counts over common cells; ``rows`` - counted = live missing."""
    if isinstance(profile, NumberProfile):
        cells = [_bin_label(profile.edges, i) for i in range(len(profile.counts))]
        reference = list(profile.counts)
        counted = [int(live.get(str(i), 0)) for i in range(len(profile.counts))]
        edges: list[float] | None = list(profile.edges)
    else:
        cells = list(profile.counts)
        reference = [profile.counts[c] for c in cells]
        counted = [int(live.get(c, 0)) for c in cells]
        unseen = sum(n for c, n in live.items() if c not in profile.counts)
        if unseen:
            cells, reference, counted = [*cells, UNSEEN], [*reference, 0], [*counted, unseen]
        edges = None
    # Rows and cells come from two queries: rows logged in between must not make it negative.
    missing = max(rows - sum(counted), 0)
    if profile.missing or missing:
        cells, reference, counted = (
            [*cells, MISSING], [*reference, profile.missing], [*counted, missing],
        )  # fmt: skip
    return Histogram(cells=cells, reference=reference, live=counted, edges=edges)


def judge(
    name: str,
    profile: FeatureProfile,
    hist: Histogram,
    *,
    statistic: Statistic,
    threshold: float,
    min_rows: int,
) -> ColumnDrift:
    """The verdict on one column's histograms."""
    rows, reference_rows = sum(hist.live), sum(hist.reference)
    kind: Literal["number", "category"] = (
        "number" if isinstance(profile, NumberProfile) else "category"
    )
    value: float | None = None
    if rows and reference_rows:
        if statistic == "chi_square_p_value":
            value = statistics.chi_square_test(hist.reference, hist.live)[1]
        else:
            value = statistics.jensen_shannon_distance(hist.reference, hist.live)
    common = {
        "name": name, "kind": kind, "statistic": statistic, "value": value,
        "threshold": threshold, "rows": rows, "reference_rows": reference_rows,
        "histogram": hist,
    }  # fmt: skip
    if value is None or rows < min_rows:
        note = f"{rows} live rows, fewer than the {min_rows} a verdict needs"
        return ColumnDrift(**common, status="insufficient_data", drifted=None, note=note)
    drifted = value < threshold if statistic == "chi_square_p_value" else value >= threshold
    return ColumnDrift(**common, status="drifted" if drifted else "stable", drifted=drifted)


def assess(
    metadata: Metadata,
    rows: int,
    feature_cells: Mapping[str, Mapping[str, int]],
    prediction_cells: Mapping[str, int] | None,
    *,
    window: Window | None = None,
    min_rows: int = MIN_ROWS,
) -> DriftReport:
    """Every column's verdict from live counts (pure: no database, no files)."""
    window = window or Window()
    head = {
        "model": metadata.name, "version": metadata.version, "since": window.since,
        "until": window.until, "rows": rows, "min_rows": min_rows,
    }  # fmt: skip
    reference = metadata.reference
    if reference is None:
        missing = (
            f"{metadata.name} {metadata.version} has no reference profile (metadata schema "
            f"{metadata.schema_version}): retrain or re-register it to monitor drift"
        )
        return DriftReport(**head, status="not_available", note=missing)
    profiles = {f.name: reference.features.get(f.name) for f in metadata.features}
    usable = {name: p for name, p in profiles.items() if p is not None and _usable(p)}
    predicted = reference.predictions
    if predicted is not None and not _usable(predicted):
        predicted = None
    statistic, threshold = method_for(reference.rows, len(usable) + (predicted is not None))
    features = []
    for spec in metadata.features:
        profile = usable.get(spec.name)
        if profile is None:
            features.append(_unavailable(spec.name, spec.type, profiles[spec.name]))
            continue
        hist = histogram(profile, feature_cells.get(spec.name, {}), rows)
        verdict = judge(
            spec.name, profile, hist, statistic=statistic, threshold=threshold, min_rows=min_rows
        )
        features.append(verdict)
    prediction = None
    if predicted is not None and prediction_cells is not None:
        hist = histogram(predicted, prediction_cells, rows)
        prediction = judge(
            "prediction", predicted, hist, statistic=statistic, threshold=threshold,
            min_rows=min_rows,
        )  # fmt: skip
    status: Literal["ok", "insufficient_data"] = "ok" if rows >= min_rows else "insufficient_data"
    note = (
        None if status == "ok" else f"{rows} live rows, fewer than the {min_rows} a verdict needs"
    )
    return DriftReport(
        **head, status=status, note=note, reference_source=reference.source,
        reference_rows=reference.rows, statistic=statistic, threshold=threshold,
        features=features, prediction=prediction,
    )  # fmt: skip


def drift(
    source: LiveSource,
    metadata: Metadata,
    window: Window | None = None,
    *,
    min_rows: int = MIN_ROWS,
) -> DriftReport:
    """Drift of ``metadata``'s version over ``window``, counted by the log's database."""
    window = window or Window()
    reference = metadata.reference
    if reference is None:
        return assess(metadata, 0, {}, None, window=window, min_rows=min_rows)
    scope = Scope(metadata.name, metadata.version, window)
    spec: dict[str, Edges] = {}
    for name, profile in reference.features.items():
        if _usable(profile):
            spec[name] = profile.edges if isinstance(profile, NumberProfile) else None
    cells = source.feature_cells(scope, spec) if spec else {}
    predicted = reference.predictions
    if predicted is not None and _usable(predicted):
        edges = predicted.edges if isinstance(predicted, NumberProfile) else None
        prediction_cells: dict[str, int] | None = source.prediction_cells(scope, edges)
        rows = sum(prediction_cells.values()) if prediction_cells else 0
    else:
        prediction_cells = None
        rows = sum(int(r["predictions"]) for r in source.counts(scope))
    return assess(metadata, rows, cells, prediction_cells, window=window, min_rows=min_rows)


def _usable(profile: FeatureProfile) -> bool:
    if isinstance(profile, NumberProfile):
        return len(profile.edges) >= 2
    return isinstance(profile, CategoryProfile)


def _unavailable(name: str, kind: str, profile: FeatureProfile | None) -> ColumnDrift:
    note = (
        "the reference profile has no entry for this feature"
        if profile is None
        else "constant in the reference: no bins to compare"
    )
    return ColumnDrift(
        name=name, kind="number" if kind == "number" else "category",
        status="not_available", drifted=None, note=note,
    )  # fmt: skip


def _bin_label(edges: list[float], i: int) -> str:
    close = "]" if i == len(edges) - 2 else ")"
    return f"[{edges[i]:.3g}, {edges[i + 1]:.3g}{close}"
