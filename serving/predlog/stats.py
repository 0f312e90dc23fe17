"""Per-version statistics of the prediction log (``log stats``), computed by the database.

A classifier's version lists its most frequent classes and sums up the rest; a regressor's
(no probabilities, every prediction a number) gets the distribution of its predicted
values. Quantiles come from PostgreSQL's ``percentile_cont``; SQLite has none, so only the
ranks that the same linear interpolation needs are fetched, never a version's whole column.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import psycopg

from serving.predlog import sql
from serving.predlog.sqlite import from_text

TOP_CLASSES = 20
"""Classes listed per version; the rest are summed up."""
NUMBER = r"^[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][+-]?[0-9]+)?$"
"""A prediction that reads as a number (the same pattern in PostgreSQL and Python)."""
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
LATENCY_QUANTILES = (0.5, 0.95, 0.99)


@dataclass(frozen=True, slots=True)
class Distribution:
    """A regressor's predicted values; quantiles interpolated like percentile_cont."""

    count: int
    mean: float
    min: float
    p5: float
    p25: float
    p50: float
    p75: float
    p95: float
    max: float


@dataclass(frozen=True, slots=True)
class VersionStats:
    model_name: str
    model_version: str
    rows: int
    requests: int
    classes: dict[str, int]
    """Rows per predicted class, most frequent first, at most TOP_CLASSES; {} for values."""
    other_classes: int
    """Classes beyond ``classes``, and ``other_rows`` the rows predicted as one of them."""
    other_rows: int
    values: Distribution | None
    """A regressor's predictions (no probabilities, every prediction a number)."""
    mean_top_probability: float | None
    latency_ms: tuple[float, float, float] | None
    """p50, p95, p99 over requests."""
    first_at: datetime
    last_at: datetime


def postgres(cur: psycopg.Cursor[dict[str, Any]], params: dict[str, Any]) -> list[VersionStats]:
    """Statistics of each version matching the filter ``params``, newest first."""
    found = []
    for v in cur.execute(sql.PG_STATS, params).fetchall():
        one = {**params, "of_name": v["model_name"], "of_version": v["model_version"]}
        values, top = None, []
        if v["with_probabilities"] == 0 and not _first(
            cur.execute(sql.PG_ANY_NON_NUMBER, {**one, "number": NUMBER})
        ):
            r = _one(cur.execute(sql.PG_VALUES, {**one, "fractions": list(QUANTILES)}))
            values = _distribution(r, r["quantiles"])
        else:
            top = cur.execute(sql.PG_TOP_CLASSES, {**one, "top": TOP_CLASSES}).fetchall()
        latency = v["latency_percentiles"]
        found.append(
            _version_stats(
                v,
                top,
                values,
                latency_ms=(latency[0], latency[1], latency[2]) if latency else None,
                first_at=v["first_at"],
                last_at=v["last_at"],
            )
        )
    return found


def sqlite(conn: sqlite3.Connection, params: dict[str, Any]) -> list[VersionStats]:
    """The same on SQLite (``params`` with times as stored text)."""
    conn.create_function("regexp", 2, _regexp, deterministic=True)
    cur = conn.cursor()
    cur.row_factory = _sqlite_dict
    found = []
    for v in cur.execute(sql.SQLITE_STATS, params).fetchall():
        one = {**params, "of_name": v["model_name"], "of_version": v["model_version"]}
        values, top = None, []
        if v["with_probabilities"] == 0 and not _first(
            cur.execute(sql.SQLITE_ANY_NON_NUMBER, {**one, "number": NUMBER})
        ):
            r = _one(cur.execute(sql.SQLITE_VALUES, one))
            ranks = sql.SQLITE_VALUE_RANKS
            values = _distribution(r, _sqlite_quantiles(cur, ranks, one, r["count"]))
        else:
            top = cur.execute(sql.SQLITE_TOP_CLASSES, {**one, "top": TOP_CLASSES}).fetchall()
        latency = _sqlite_quantiles(
            cur, sql.SQLITE_LATENCY_RANKS, one, v["requests"], LATENCY_QUANTILES
        )
        found.append(
            _version_stats(
                v,
                top,
                values,
                latency_ms=(latency[0], latency[1], latency[2]) if latency else None,
                first_at=from_text(v["first_at"]),
                last_at=from_text(v["last_at"]),
            )
        )
    return found


def _ranks(count: int, fractions: Sequence[float]) -> list[int]:
    """The 0-based ranks that ``_interpolate`` reads for ``fractions`` of ``count`` values."""
    positions = [fraction * (count - 1) for fraction in fractions]
    return sorted({int(p) for p in positions} | {min(int(p) + 1, count - 1) for p in positions})


def _interpolate(at_rank: dict[int, float], count: int, fractions: Sequence[float]) -> list[float]:
    """Linear interpolation between closest ranks, as PostgreSQL's percentile_cont."""
    found = []
    for fraction in fractions:
        position = fraction * (count - 1)
        low, high = int(position), min(int(position) + 1, count - 1)
        found.append(at_rank[low] + (at_rank[high] - at_rank[low]) * (position - low))
    return found


def _sqlite_quantiles(
    cur: sqlite3.Cursor,
    statement: str,
    params: dict[str, Any],
    count: int,
    fractions: Sequence[float] = QUANTILES,
) -> list[float]:
    """Quantiles of a version's values, fetching only the ranks they are interpolated from."""
    if not count:
        return []
    positions = _ranks(count, fractions)
    rows = cur.execute(statement, {**params, "positions": orjson.dumps(positions).decode()})
    return _interpolate({r["position"]: r["v"] for r in rows}, count, fractions)


def _one(cursor: Any) -> dict[str, Any]:
    """The row of a one-row result (an aggregate, EXISTS)."""
    row = cursor.fetchone()
    if not isinstance(row, dict):
        raise TypeError("expected one row as a dict")
    return row


def _first(cursor: Any) -> Any:
    """The first column of a one-row result."""
    return next(iter(_one(cursor).values()))


def _distribution(row: dict[str, Any], quantiles: Sequence[float]) -> Distribution:
    """count, mean, min and max from ``row``; p5, p25, p50, p75, p95 from ``quantiles``."""
    p5, p25, p50, p75, p95 = quantiles
    return Distribution(row["count"], row["mean"], row["min"], p5, p25, p50, p75, p95, row["max"])


def _regexp(pattern: str, value: str | None) -> bool:
    """SQLite's ``value REGEXP pattern``."""
    return value is not None and re.search(pattern, value) is not None


def _sqlite_dict(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    return {column[0]: value for column, value in zip(cursor.description, row, strict=True)}


def _version_stats(
    version: dict[str, Any],
    top: list[dict[str, Any]],
    values: Distribution | None,
    *,
    latency_ms: tuple[float, float, float] | None,
    first_at: datetime,
    last_at: datetime,
) -> VersionStats:
    """One version's statistics row and its most frequent classes (both stores)."""
    classes = {c["prediction"]: c["rows"] for c in top}
    distinct = top[0]["classes"] if top else 0
    other_rows = version["rows"] - sum(classes.values()) if top else 0
    return VersionStats(
        version["model_name"], version["model_version"], version["rows"], version["requests"],
        classes, distinct - len(classes), other_rows, values,
        version["mean_top_probability"], latency_ms, first_at, last_at,
    )  # fmt: skip
