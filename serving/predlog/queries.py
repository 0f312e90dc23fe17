"""Reading the prediction log: keyset pages, per-version statistics and exports.

The same questions on both stores, answered with bound parameters only (``sql``). Pages are
newest first; a cursor is the opaque position (created_at, request_id, row_index) of the
last row handed out, so pages stay stable while rows are added. Every input is checked
here before it reaches a store (``Filters``, ``decode_cursor``): a bad one is the caller's
error (InvalidFilterError, InvalidCursorError), never a database's.
"""

from __future__ import annotations

import base64
import binascii
import re
import sqlite3
import unicodedata
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any, Protocol

import orjson
import psycopg
from psycopg.rows import dict_row

from serving.predlog import export, sql, sqlite
from serving.predlog.records import InvalidCursorError, LoggedPrediction, Page

MAX_ROW_INDEX = 2**31 - 1
"""row_index is a PostgreSQL integer."""
TOP_CLASSES = 20
"""``log stats`` lists this many classes of a version; the rest are summed up."""
NUMBER = r"^[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][+-]?[0-9]+)?$"
"""A prediction that reads as a number (the same pattern in PostgreSQL and Python)."""
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
LATENCY_QUANTILES = (0.5, 0.95, 0.99)


class InvalidFilterError(ValueError):
    """A filter no store can answer (a control character, a time outside years 1-9999)."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter, self.message = parameter, message


def as_utc(moment: datetime) -> datetime:
    """``moment`` in UTC (naive means UTC); ValueError when UTC has no such time."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("must lie between years 1 and 9999 in UTC") from None


def check_text(value: str) -> str:
    """``value`` unless it holds a control character (NUL cannot even be stored)."""
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise ValueError("must not contain control characters")
    return value


@dataclass(frozen=True, slots=True)
class Filters:
    """``since <= created_at < until``, one model, one version; None means any.

    Times without a zone are UTC; they are kept in UTC. Raises InvalidFilterError.
    """

    since: datetime | None = None
    until: datetime | None = None
    model_version: str | None = None
    model_name: str | None = None

    def __post_init__(self) -> None:
        for name in ("since", "until", "model_version", "model_name"):
            value = getattr(self, name)
            try:
                if isinstance(value, datetime):
                    object.__setattr__(self, name, as_utc(value))
                elif value is not None:
                    check_text(value)
            except ValueError as exc:
                raise InvalidFilterError(name, str(exc)) from None


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


class Queries(Protocol):
    def page(self, filters: Filters, limit: int, cursor: str | None) -> Page: ...
    def stats(self, filters: Filters) -> list[VersionStats]: ...
    def export(self, filters: Filters, fmt: export.Format, out: IO[bytes]) -> None: ...


def encode_cursor(item: LoggedPrediction) -> str:
    position = [item.created_at.isoformat(), item.request_id, item.row_index]
    return base64.urlsafe_b64encode(orjson.dumps(position)).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str, int]:
    """The position a cursor holds; InvalidCursorError unless it is one this log handed out
    (three JSON values of the right types and ranges, a time that exists in UTC)."""
    try:
        position = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(position, list) or len(position) != 3:
            raise ValueError("not a position")
        created_at, request_id, row_index = position
        if not (isinstance(created_at, str) and isinstance(request_id, str)):
            raise ValueError("not a position")
        if type(row_index) is not int or not 0 <= row_index <= MAX_ROW_INDEX:
            raise ValueError("row index out of range")
        moment = datetime.fromisoformat(created_at)
        if moment.tzinfo is None:
            raise ValueError("a time without a zone")
        return as_utc(moment), str(uuid.UUID(request_id)), row_index
    except (binascii.Error, orjson.JSONDecodeError, ValueError) as exc:
        raise InvalidCursorError("invalid cursor") from exc


def _filter_params(filters: Filters) -> dict[str, Any]:
    return {
        "since": filters.since,
        "until": filters.until,
        "model_name": filters.model_name,
        "model_version": filters.model_version,
    }


def _page_params(filters: Filters, limit: int, cursor: str | None) -> dict[str, Any]:
    if limit < 1:
        raise ValueError("limit must be at least 1")
    after = decode_cursor(cursor) if cursor else (None, None, None)
    return {
        **_filter_params(filters),
        "after_created_at": after[0],
        "after_request_id": after[1],
        "after_row_index": after[2],
        "limit": limit,
    }


def _finish_page(items: list[LoggedPrediction], limit: int) -> Page:
    return Page(items, encode_cursor(items[-1]) if len(items) == limit else None)


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


PgConnect = Callable[[], AbstractContextManager[psycopg.Connection[Any]]]
SqliteConnect = Callable[[], AbstractContextManager[sqlite3.Connection]]


class PostgresQueries:
    """Queries over connections from ``connect`` (a pool's ``connection`` or a direct one)."""

    def __init__(self, connect: PgConnect) -> None:
        self._connect = connect

    def page(self, filters: Filters, limit: int, cursor: str | None) -> Page:
        params = _page_params(filters, limit, cursor)
        with self._connect() as conn, conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(sql.PG_PAGE, params).fetchall()
        items = [LoggedPrediction(**{**row, "request_id": str(row["request_id"])}) for row in rows]
        return _finish_page(items, limit)

    def stats(self, filters: Filters) -> list[VersionStats]:
        params = _filter_params(filters)
        found = []
        with self._connect() as conn, conn.cursor(row_factory=dict_row) as cur:
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

    def export(self, filters: Filters, fmt: export.Format, out: IO[bytes]) -> None:
        params = _filter_params(filters)
        with self._connect() as conn, conn.cursor() as cur:
            shapes: list[tuple[str | None, str | None]] = []
            if fmt == "csv":
                for name, version in cur.execute(sql.PG_EXPORT_VERSIONS, params).fetchall():
                    one = {**params, "of_name": name, "of_version": version}
                    shapes += cur.execute(sql.PG_EXPORT_SHAPE, one).fetchall()
            with cur.copy(sql.PG_EXPORT_ROWS, params) as copy:
                copy.set_types(list(sql.PG_EXPORT_TYPES))
                export.write(fmt, shapes, copy.rows(), out)


class SqliteQueries:
    """Queries on the SQLite file, over connections from ``connect`` (one per call)."""

    def __init__(self, connect: SqliteConnect) -> None:
        self._connect = connect

    def page(self, filters: Filters, limit: int, cursor: str | None) -> Page:
        params = _sqlite_params(_page_params(filters, limit, cursor))
        with self._connect() as conn:
            rows = conn.execute(sql.SQLITE_PAGE, params).fetchall()
        items = [_sqlite_item(row) for row in rows]
        return _finish_page(items, limit)

    def stats(self, filters: Filters) -> list[VersionStats]:
        params = _sqlite_params(_filter_params(filters))
        found = []
        with self._connect() as conn:
            conn.create_function("regexp", 2, _regexp, deterministic=True)
            cur = conn.cursor()
            cur.row_factory = _sqlite_dict
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
                    top_params = {**one, "top": TOP_CLASSES}
                    top = cur.execute(sql.SQLITE_TOP_CLASSES, top_params).fetchall()
                latency = _sqlite_quantiles(
                    cur, sql.SQLITE_LATENCY_RANKS, one, v["requests"], LATENCY_QUANTILES
                )
                found.append(
                    _version_stats(
                        v,
                        top,
                        values,
                        latency_ms=(latency[0], latency[1], latency[2]) if latency else None,
                        first_at=sqlite.from_text(v["first_at"]),
                        last_at=sqlite.from_text(v["last_at"]),
                    )
                )
        return found

    def export(self, filters: Filters, fmt: export.Format, out: IO[bytes]) -> None:
        params = _sqlite_params(_filter_params(filters))
        with self._connect() as conn:
            shapes: list[tuple[str | None, str | None]] = []
            if fmt == "csv":
                for name, version in conn.execute(sql.SQLITE_EXPORT_VERSIONS, params).fetchall():
                    one = {**params, "of_name": name, "of_version": version}
                    shapes += conn.execute(sql.SQLITE_EXPORT_SHAPE, one).fetchall()
            export.write(fmt, shapes, conn.execute(sql.SQLITE_EXPORT_ROWS, params), out)


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


def _sqlite_params(params: dict[str, Any]) -> dict[str, Any]:
    return {k: sqlite.to_text(v) if isinstance(v, datetime) else v for k, v in params.items()}


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


def _sqlite_item(row: tuple[Any, ...]) -> LoggedPrediction:
    rid, index, created, name, version, features, prediction, probs, latency, client, cid = row
    return LoggedPrediction(
        rid, index, sqlite.from_text(created), name, version, orjson.loads(features),
        prediction, None if probs is None else orjson.loads(probs), latency, client, cid,
    )  # fmt: skip
