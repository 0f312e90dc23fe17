"""Readable text for the terminal: quality and drift as small aligned tables."""

from __future__ import annotations

from datetime import UTC, datetime

from serving.monitoring.drift import ColumnDrift, DriftReport
from serving.monitoring.quality import QualityReport

_ORDER = {"drifted": 0, "stable": 1, "insufficient_data": 2, "not_available": 3}
_STATISTIC = {
    "chi_square_p_value": "chi-square test p-value, drifted when below",
    "jensen_shannon_distance": "Jensen-Shannon distance, drifted when at least",
}


def window(since: datetime | None, until: datetime | None) -> str:
    if since is None and until is None:
        return "all logged predictions"
    parts = []
    if since is not None:
        parts.append(f"since {_time(since)}")
    if until is not None:
        parts.append(f"until {_time(until)}")
    return " ".join(parts)


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def number(value: float | None) -> str:
    if value is None:
        return "-"
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        return f"{value:.2e}"
    return f"{value:.4f}"


def quality(found: QualityReport) -> str:
    lines = [f"{found.model} ({found.task}), {window(found.since, found.until)}"]
    if not found.versions:
        return f"{lines[0]}\nno predictions logged in that range"
    header = [
        "version",
        "predictions",
        "labelled",
        *(f"{m} live (held-out)" for m in found.metrics),
    ]
    rows = []
    for v in found.versions:
        held = v.held_out or {}
        cells = [f"{number(v.live.get(m))} ({number(held.get(m))})" for m in found.metrics]
        rows.append([v.version, f"{v.predictions:,}", f"{v.labelled:,}", *cells])
    lines += _table(header, rows)
    return "\n".join(lines)


def drift(found: DriftReport) -> str:
    when = window(found.since, found.until)
    lines = [
        f"{found.model} {found.version}: {found.rows:,} live rows, {when}",
        f"reference: {found.reference_source} data, {found.reference_rows or 0:,} rows",
    ]
    if found.statistic is not None and found.threshold is not None:
        lines.append(f"statistic: {_STATISTIC[found.statistic]} {number(found.threshold)}")
    if found.status == "insufficient_data":
        lines.append(f"insufficient data: {found.note}; no verdicts")
    columns = sorted(found.features, key=lambda c: _ORDER[c.status])
    if found.prediction is not None:
        columns.append(found.prediction)
    rows = [_column(c) for c in columns]
    lines += _table(["column", "kind", "status", "value", "rows", "note"], rows)
    drifted = found.drifted_features
    summary = f"drifted: {len(drifted)} of {len(found.features)} features"
    lines.append(f"{summary} ({', '.join(drifted)})" if drifted else summary)
    if found.prediction is not None and found.prediction.drifted is not None:
        lines.append(f"prediction drift: {'yes' if found.prediction.drifted else 'no'}")
    return "\n".join(lines)


def _column(c: ColumnDrift) -> list[str]:
    status = (
        c.status.replace("_", " ").upper() if c.status == "drifted" else c.status.replace("_", " ")
    )
    return [c.name, c.kind, status, number(c.value), f"{c.rows:,}", c.note or ""]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Aligned columns; a column whose cells all start like numbers is right-aligned."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    numeric = [
        i > 0 and all(r[i][:1].isdigit() or r[i][:1] == "-" for r in rows)
        for i in range(len(header))
    ]
    out = []
    for row in [header, *rows]:
        cells = [
            cell.rjust(w) if right else cell.ljust(w)
            for cell, w, right in zip(row, widths, numeric, strict=True)
        ]
        out.append("  ".join(cells).rstrip())
    return out
