"""The monitoring report: one self-contained HTML file with drift, prediction and quality plots.

Self-contained means: inline CSS and inline SVG (serving/monitoring/svg.py), no script, no
font, no image to fetch; a Content-Security-Policy of ``default-src 'none'`` makes the
browser refuse any request the page might still try. It holds aggregates only (histogram
counts, shares per time bucket, metrics), never a logged row, so its size does not grow
with the log: a few hundred KB at most for hundreds of features.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime

from serving.monitoring import svg, text
from serving.monitoring.drift import MIN_ROWS, ColumnDrift, DriftReport, drift
from serving.monitoring.quality import QualityPoint, QualityReport, quality, quality_over_time
from serving.monitoring.queries import LiveSource, Row, Scope, Window
from serving.monitoring.registry import Registry

INTERVALS = (60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400)
"""Bucket widths the time plots choose from: the smallest giving at most MAX_BUCKETS."""
MAX_BUCKETS = 48
MAX_PLOTS = 60
"""Feature plots at most (drifted ones always): the rest are listed, so hundreds of features
keep the file within a few hundred KB."""
MAX_CELLS = 24
"""Categories shown per plot: the largest by reference and live share, the rest as one bar."""
OTHER = "(other)"
_ORDER = {"drifted": 0, "stable": 1, "insufficient_data": 2, "not_available": 3}


def choose_interval(first: datetime, last: datetime) -> int:
    span = max((last - first).total_seconds(), 1.0)
    return next((s for s in INTERVALS if span / s <= MAX_BUCKETS), INTERVALS[-1])


def build(
    source: LiveSource,
    registry: Registry,
    model: str,
    window: Window | None = None,
    *,
    version: str | None = None,
    min_rows: int = MIN_ROWS,
    now: datetime | None = None,
) -> str:
    """Query everything the report shows and render it."""
    window = window or Window()
    metadata = registry.metadata(model, version)
    drifted = drift(source, metadata, window, min_rows=min_rows)
    overall = quality(source, registry, model, window)
    times = [t for v in overall.versions for t in (v.first_at, v.last_at) if t is not None]
    seconds = choose_interval(min(times), max(times)) if times else INTERVALS[0]
    scope = Scope(model, None, window)
    if overall.task == "classification":
        shares = source.class_series(scope, seconds)
    else:
        shares = source.mean_series(scope, seconds)
    points = quality_over_time(source, overall.task, model, window, seconds)
    classes = list(metadata.classes or [])
    return render(
        drifted, overall, shares=shares, points=points, seconds=seconds, classes=classes,
        generated_at=now or datetime.now(UTC),
    )  # fmt: skip


def render(
    drifted: DriftReport,
    overall: QualityReport,
    *,
    shares: list[Row],
    points: list[QualityPoint],
    seconds: int,
    classes: list[str],
    generated_at: datetime,
) -> str:
    """The HTML page (pure: everything it shows is in the arguments)."""
    title = f"{drifted.model} — monitoring report"
    sections = [
        f"<h1>{svg.escape(title)}</h1>",
        f'<p class="meta">{svg.escape(text.window(overall.since, overall.until))}; '
        f"generated {svg.escape(generated_at.astimezone(UTC).strftime('%Y-%m-%d %H:%M UTC'))}; "
        f"times in UTC, in buckets of {svg.escape(_duration(seconds, one='1 '))}</p>",
        _quality_section(overall, points, seconds),
        _shares_section(overall, shares, seconds, classes),
        _drift_section(drifted),
    ]
    return _PAGE.format(title=svg.escape(title), body="\n".join(sections))


def _quality_section(overall: QualityReport, points: list[QualityPoint], seconds: int) -> str:
    metric = overall.metrics[0]
    rows = []
    for v in overall.versions:
        held = v.held_out or {}
        cells = "".join(
            f"<td>{text.number(v.live.get(m))}</td><td class='held'>{text.number(held.get(m))}</td>"
            for m in overall.metrics
        )
        rows.append(
            f"<tr><td>{svg.escape(v.version)}</td><td>{v.predictions:,}</td>"
            f"<td>{v.labelled:,}</td>{cells}</tr>"
        )
    heads = "".join(
        f"<th>{svg.escape(m)}</th><th class='held'>held-out</th>" for m in overall.metrics
    )
    table = (
        f"<table><tr><th>version</th><th>predictions</th><th>labelled</th>{heads}</tr>"
        f"{''.join(rows)}</table>"
        if rows
        else "<p>No predictions logged in this window.</p>"
    )
    colors = {v.version: svg.PALETTE[i % len(svg.PALETTE)] for i, v in enumerate(overall.versions)}
    series = []
    for version, color in colors.items():
        mine = [p for p in points if p.version == version and p.labelled]
        series.append(
            svg.Line(version, [(p.start.timestamp(), p.live.get(metric)) for p in mine], color)
        )
    for v in overall.versions:
        reference = (v.held_out or {}).get(metric)
        if reference is not None and series:
            xs = [p.start.timestamp() for p in points] or [0.0]
            ends = [(min(xs), reference), (max(xs), reference)]
            series.append(svg.Line(f"{v.version} held-out", ends, colors[v.version], dashed=True))
    labelled = any(p.labelled for p in points)
    chart = (
        svg.lines(
            series,
            title=f"live {metric} per version, per {_duration(seconds)}",
            x_labels=_time_ticks([p.start for p in points], seconds),
            y_label=metric,
            y_range=_unit_range(series) if metric == "accuracy" else None,
        )
        if labelled
        else "<p>No labels yet: send ground truth to see live quality over time.</p>"
    )
    return f"<h2>Live quality</h2>{table}<figure>{chart}</figure>"


def _unit_range(series: list[svg.Line]) -> tuple[float, float]:
    """From a round tenth at or below the lowest point (0.9 at most) up to 1."""
    values = [y for s in series for _, y in s.points if y is not None]
    return math.floor(min([*values, 0.9]) * 10) / 10, 1.0


def _shares_section(
    overall: QualityReport, shares: list[Row], seconds: int, classes: list[str]
) -> str:
    if not shares:
        return "<h2>Predictions over time</h2><p>No predictions logged in this window.</p>"
    buckets = sorted({int(r["bucket"]) for r in shares})
    span = list(range(buckets[0], buckets[-1] + 1)) if len(buckets) > 1 else buckets
    starts = [datetime.fromtimestamp(b * seconds, UTC) for b in span]
    labels = [_time_label(s, seconds) for s in starts]
    if overall.task == "regression":
        by_bucket = {int(r["bucket"]): r["mean"] for r in shares}
        means = [(s.timestamp(), by_bucket.get(b)) for b, s in zip(span, starts, strict=True)]
        chart = svg.lines(
            [svg.Line("mean prediction", means, svg.LIVE)],
            title=f"mean prediction per {_duration(seconds)}",
            x_labels=_time_ticks(starts, seconds),
            y_label="predicted value",
        )
        return f"<h2>Predictions over time</h2><figure>{chart}</figure>"
    counts: dict[str, dict[int, int]] = defaultdict(dict)
    for r in shares:
        counts[str(r["cell"])][int(r["bucket"])] = int(r["n"])
    names = [c for c in classes if c in counts] + sorted(c for c in counts if c not in classes)
    layers = [
        svg.Group(name, [counts[name].get(b, 0) for b in span], svg.PALETTE[i % len(svg.PALETTE)])
        for i, name in enumerate(names)
    ]
    chart = svg.stacked(labels, layers, title=f"predicted class shares per {_duration(seconds)}")
    return f"<h2>Predictions over time</h2><figure>{chart}</figure>"


def _drift_section(found: DriftReport) -> str:
    head = f"<h2>Drift of version {svg.escape(found.version)}</h2>"
    if found.status == "not_available":
        return f"{head}<p class='note'>Not available: {svg.escape(found.note or '')}</p>"
    names = found.drifted_features
    summary = f"{len(names)} of {len(found.features)} features drifted"
    if names:
        summary += f": {', '.join(names)}"
    if found.prediction is not None and found.prediction.drifted is not None:
        summary += f"; prediction drift: {'yes' if found.prediction.drifted else 'no'}"
    intro = (
        f"<p>{found.rows:,} live rows against the {svg.escape(str(found.reference_source))} "
        f"data ({found.reference_rows or 0:,} rows). {svg.escape(summary)}.</p>"
    )
    if found.status == "insufficient_data":
        intro += f"<p class='note'>Insufficient data: {svg.escape(found.note or '')}.</p>"
    columns = sorted(found.features, key=_severity)
    if found.prediction is not None:
        columns.insert(0, found.prediction)
    plotted = [c for c in columns if c.histogram is not None]
    limit = max(MAX_PLOTS, sum(1 for c in plotted if c.drifted))
    charts = [_column_chart(c) for c in plotted[:limit]]
    listed = plotted[limit:] + [c for c in columns if c.histogram is None]
    rest = "".join(
        f"<li>{svg.escape(c.name)}: {svg.escape(c.status.replace('_', ' '))}"
        f"{', ' + _value(c) if c.value is not None else ''}"
        f"{' (' + svg.escape(c.note) + ')' if c.note else ''}</li>"
        for c in listed
    )
    listing = f"<ul>{rest}</ul>" if rest else ""
    return f"{head}{intro}<div class='grid'>{''.join(charts)}</div>{listing}"


def _severity(column: ColumnDrift) -> tuple[int, float]:
    value = column.value if column.value is not None else 0.0
    strength = value if column.statistic == "chi_square_p_value" else -value
    return _ORDER[column.status], strength


def _column_chart(column: ColumnDrift) -> str:
    hist = column.histogram
    if hist is None:
        return ""
    ref_total, live_total = sum(hist.reference) or 1, sum(hist.live) or 1
    cells, reference, live = _fold(hist.cells, hist.reference, hist.live)
    live_color = svg.DRIFTED if column.drifted else svg.LIVE
    groups = [
        svg.Group("reference", [n / ref_total for n in reference], svg.REFERENCE),
        svg.Group("live", [n / live_total for n in live], live_color),
    ]
    verdict = column.status.replace("_", " ")
    title = f"{column.name}: {verdict}, {_value(column)}"
    chart = svg.bars(cells, groups, title=title, y_label="share")
    return f"<figure class='{svg.escape(column.status)}'>{chart}</figure>"


def _value(column: ColumnDrift) -> str:
    name = "p" if column.statistic == "chi_square_p_value" else "JS"
    return f"{name} = {text.number(column.value)}"


def _fold(
    cells: list[str], reference: list[int], live: list[int]
) -> tuple[list[str], list[int], list[int]]:
    """At most MAX_CELLS bars: the cells with the largest shares, the rest summed as one."""
    if len(cells) <= MAX_CELLS:
        return cells, reference, live
    ref_total, live_total = sum(reference) or 1, sum(live) or 1
    weight = [max(r / ref_total, v / live_total) for r, v in zip(reference, live, strict=True)]
    keep = sorted(sorted(range(len(cells)), key=lambda i: -weight[i])[: MAX_CELLS - 1])
    dropped = [i for i in range(len(cells)) if i not in set(keep)]
    return (
        [cells[i] for i in keep] + [OTHER],
        [reference[i] for i in keep] + [sum(reference[i] for i in dropped)],
        [live[i] for i in keep] + [sum(live[i] for i in dropped)],
    )


def _duration(seconds: int, one: str = "") -> str:
    """``3 hours``; one unit is ``hour`` (``per hour``) or, with ``one="1 "``, ``1 hour``."""
    for unit, size in (("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"{one}{unit}" if count == 1 else f"{count} {unit}s"
    return f"{seconds} s"


def _time_label(moment: datetime, seconds: int) -> str:
    return moment.strftime("%Y-%m-%d" if seconds >= 86400 else "%m-%d %H:%M")


def _time_ticks(starts: list[datetime], seconds: int) -> list[tuple[float, str]]:
    unique = sorted(set(starts))
    every = max(1, len(unique) // 6)
    return [(s.timestamp(), _time_label(s, seconds)) for s in unique[::every]]


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px auto; max-width: 900px; color: #1a202c; }}
h1 {{ font-size: 22px; margin-bottom: 4px; }}
h2 {{ font-size: 17px; margin-top: 28px; border-bottom: 1px solid #e2e8f0; }}
.meta, .held {{ color: #718096; }}
.note {{ color: #975a16; }}
table {{ border-collapse: collapse; font-size: 13px; }}
td, th {{ padding: 3px 8px; text-align: right; border-bottom: 1px solid #edf2f7;
         white-space: nowrap; }}
td:first-child, th:first-child {{ text-align: left; }}
figure {{ margin: 8px 0; }}
.grid {{ display: grid; grid-template-columns: repeat(2, 440px); gap: 8px; }}
.grid figure.drifted {{ outline: 2px solid #feb2b2; }}
</style>
</head>
<body>
{body}
</body>
</html>
"""
