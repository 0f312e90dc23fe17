"""Reading the prediction log: keyset pages, per-version statistics and streaming export.

The same questions on both stores, answered with bound parameters only (``sql``). Pages are
newest first; a cursor is the opaque position (created_at, request_id, row_index) of the
last row handed out, so pages stay stable while rows are added.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager, closing
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any, Literal, Protocol

import orjson
import psycopg
from psycopg.rows import dict_row

from serving.predlog import sql, sqlite
from serving.predlog.records import InvalidCursorError, LoggedPrediction, Page

ExportFormat = Literal["csv", "jsonl"]
EXPORT_COLUMNS = tuple(column.strip() for column in sql.COLUMNS.split(","))


@dataclass(frozen=True, slots=True)
class Filters:
    """``since <= created_at < until`` and an exact model version; None means any.

    Times without a zone are UTC.
    """

    since: datetime | None = None
    until: datetime | None = None
    model_version: str | None = None


@dataclass(frozen=True, slots=True)
class VersionStats:
    model_name: str
    model_version: str
    rows: int
    requests: int
    classes: dict[str, int]
    """Rows per predicted value, most frequent first."""
    mean_top_probability: float | None
    latency_ms: tuple[float, float, float] | None
    """p50, p95, p99 over requests."""
    first_at: datetime
    last_at: datetime


class Queries(Protocol):
    def page(self, filters: Filters, limit: int, cursor: str | None) -> Page: ...
    def stats(self, filters: Filters) -> list[VersionStats]: ...
    def export(self, filters: Filters, fmt: ExportFormat, out: IO[bytes]) -> None: ...


def encode_cursor(item: LoggedPrediction) -> str:
    position = [item.created_at.isoformat(), item.request_id, item.row_index]
    return base64.urlsafe_b64encode(orjson.dumps(position)).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, request_id, row_index = orjson.loads(raw)
        moment = datetime.fromisoformat(created_at)
        if moment.tzinfo is None or not isinstance(row_index, int):
            raise ValueError("bad position")
        uuid.UUID(request_id)
        return moment, request_id, row_index
    except (binascii.Error, orjson.JSONDecodeError, TypeError, ValueError) as exc:
        raise InvalidCursorError("invalid cursor") from exc


def _page_params(filters: Filters, limit: int, cursor: str | None) -> dict[str, Any]:
    if limit < 1:
        raise ValueError("limit must be at least 1")
    after = decode_cursor(cursor) if cursor else (None, None, None)
    return {
        "since": filters.since,
        "until": filters.until,
        "model_version": filters.model_version,
        "after_created_at": after[0],
        "after_request_id": after[1],
        "after_row_index": after[2],
        "limit": limit,
    }


def _finish_page(items: list[LoggedPrediction], limit: int) -> Page:
    return Page(items, encode_cursor(items[-1]) if len(items) == limit else None)


def _percentiles(ordered: list[float]) -> tuple[float, float, float] | None:
    """Linear interpolation between closest ranks, as PostgreSQL's percentile_cont."""
    if not ordered:
        return None

    def at(fraction: float) -> float:
        position = fraction * (len(ordered) - 1)
        low = int(position)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (position - low)

    return at(0.5), at(0.95), at(0.99)


PgConnect = Callable[[], AbstractContextManager[psycopg.Connection[Any]]]


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
        with self._connect() as conn, conn.cursor(row_factory=dict_row) as cur:
            versions = cur.execute(sql.PG_STATS, params).fetchall()
            counts = cur.execute(sql.PG_CLASS_COUNTS, params).fetchall()
        return [
            _version_stats(
                v,
                counts,
                tuple(v["latency_percentiles"]) if v["latency_percentiles"] else None,
                v["first_at"],
                v["last_at"],
            )
            for v in versions
        ]

    def export(self, filters: Filters, fmt: ExportFormat, out: IO[bytes]) -> None:
        statement = sql.PG_EXPORT_CSV if fmt == "csv" else sql.PG_EXPORT_JSONL
        params = _filter_params(filters)
        with self._connect() as conn, conn.cursor() as cur, cur.copy(statement, params) as copy:
            for chunk in copy:
                out.write(chunk)
        out.flush()


class SqliteQueries:
    """Queries on the SQLite file; one short-lived connection per call."""

    def __init__(self, url: str) -> None:
        self.url = url

    def page(self, filters: Filters, limit: int, cursor: str | None) -> Page:
        params = _sqlite_params(_page_params(filters, limit, cursor))
        with closing(sqlite.connect(self.url)) as conn:
            rows = conn.execute(sql.SQLITE_PAGE, params).fetchall()
        items = [_sqlite_item(row) for row in rows]
        return _finish_page(items, limit)

    def stats(self, filters: Filters) -> list[VersionStats]:
        params = _sqlite_params(_filter_params(filters))
        with closing(sqlite.connect(self.url)) as conn:
            conn.row_factory = _sqlite_dict
            versions = conn.execute(sql.SQLITE_STATS, params).fetchall()
            counts = conn.execute(sql.SQLITE_CLASS_COUNTS, params).fetchall()
            result = []
            for v in versions:
                latencies = conn.execute(
                    sql.SQLITE_LATENCIES,
                    {**params, "model_name": v["model_name"], "version": v["model_version"]},
                ).fetchall()
                result.append(
                    _version_stats(
                        v,
                        counts,
                        _percentiles([row["latency_ms"] for row in latencies]),
                        sqlite.from_text(v["first_at"]),
                        sqlite.from_text(v["last_at"]),
                    )
                )
        return result

    def export(self, filters: Filters, fmt: ExportFormat, out: IO[bytes]) -> None:
        params = _sqlite_params(_filter_params(filters))
        text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
        writer = csv.writer(text, lineterminator="\n")
        if fmt == "csv":
            writer.writerow(EXPORT_COLUMNS)
        with closing(sqlite.connect(self.url)) as conn:
            for row in conn.execute(sql.SQLITE_EXPORT, params):
                if fmt == "csv":
                    writer.writerow(row)
                    continue
                item = dict(zip(EXPORT_COLUMNS, row, strict=True))
                for key in ("features", "probabilities"):
                    if item[key] is not None:
                        item[key] = orjson.Fragment(item[key])
                out.write(orjson.dumps(item) + b"\n")
        text.flush()
        text.detach()


def _filter_params(filters: Filters) -> dict[str, Any]:
    return {"since": filters.since, "until": filters.until, "model_version": filters.model_version}


def _sqlite_params(params: dict[str, Any]) -> dict[str, Any]:
    return {k: sqlite.to_text(v) if isinstance(v, datetime) else v for k, v in params.items()}


def _sqlite_dict(cursor: Any, row: tuple[Any, ...]) -> dict[str, Any]:
    return {column[0]: value for column, value in zip(cursor.description, row, strict=True)}


def _version_stats(
    version: dict[str, Any],
    counts: list[dict[str, Any]],
    latency_ms: tuple[float, float, float] | None,
    first_at: datetime,
    last_at: datetime,
) -> VersionStats:
    """One version's statistics row and the class counts of that version (both stores)."""
    name, number = version["model_name"], version["model_version"]
    classes = {
        c["prediction"]: c["rows"]
        for c in counts
        if c["model_name"] == name and c["model_version"] == number
    }
    return VersionStats(
        name, number, version["rows"], version["requests"], classes,
        version["mean_top_probability"], latency_ms, first_at, last_at,
    )  # fmt: skip


def _sqlite_item(row: tuple[Any, ...]) -> LoggedPrediction:
    rid, index, created, name, version, features, prediction, probs, latency, client, cid = row
    return LoggedPrediction(
        rid, index, sqlite.from_text(created), name, version, orjson.loads(features),
        prediction, None if probs is None else orjson.loads(probs), latency, client, cid,
    )  # fmt: skip
