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
import sqlite3
import unicodedata
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any, Protocol

import orjson
import psycopg
from psycopg.rows import dict_row

from serving.predlog import export, sql, sqlite, stats
from serving.predlog.records import InvalidCursorError, LoggedLabel, LoggedPrediction, Page
from serving.predlog.stats import VersionStats

MAX_ROW_INDEX = 2**31 - 1
"""row_index is a PostgreSQL integer."""


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


class Queries(Protocol):
    def page(self, filters: Filters, limit: int, cursor: str | None) -> Page: ...
    def stats(self, filters: Filters) -> list[VersionStats]: ...
    def export(self, filters: Filters, fmt: export.Format, out: IO[bytes]) -> None: ...
    def labels(self, model_name: str | None, limit: int) -> list[LoggedLabel]: ...


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
        with self._connect() as conn, conn.cursor(row_factory=dict_row) as cur:
            return stats.postgres(cur, _filter_params(filters))

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

    def labels(self, model_name: str | None, limit: int) -> list[LoggedLabel]:
        params = {"model_name": model_name, "limit": limit}
        with self._connect() as conn:
            rows = conn.execute(sql.PG_LABELS, params).fetchall()
        return [_label(at, str(rid), *rest) for at, rid, *rest in rows]


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
        with self._connect() as conn:
            return stats.sqlite(conn, _sqlite_params(_filter_params(filters)))

    def export(self, filters: Filters, fmt: export.Format, out: IO[bytes]) -> None:
        params = _sqlite_params(_filter_params(filters))
        with self._connect() as conn:
            shapes: list[tuple[str | None, str | None]] = []
            if fmt == "csv":
                for name, version in conn.execute(sql.SQLITE_EXPORT_VERSIONS, params).fetchall():
                    one = {**params, "of_name": name, "of_version": version}
                    shapes += conn.execute(sql.SQLITE_EXPORT_SHAPE, one).fetchall()
            export.write(fmt, shapes, conn.execute(sql.SQLITE_EXPORT_ROWS, params), out)

    def labels(self, model_name: str | None, limit: int) -> list[LoggedLabel]:
        params = {"model_name": model_name, "limit": limit}
        with self._connect() as conn:
            rows = conn.execute(sql.SQLITE_LABELS, params).fetchall()
        return [_label(sqlite.from_text(at), *rest) for at, *rest in rows]


def _label(received: datetime, rid: str, index: int, label: str, *prediction: Any) -> LoggedLabel:
    return LoggedLabel(received, rid, index, orjson.loads(label), *prediction)


def _sqlite_params(params: dict[str, Any]) -> dict[str, Any]:
    return {k: sqlite.to_text(v) if isinstance(v, datetime) else v for k, v in params.items()}


def _sqlite_item(row: tuple[Any, ...]) -> LoggedPrediction:
    rid, index, created, name, version, features, prediction, probs, latency, client, cid = row
    return LoggedPrediction(
        rid, index, sqlite.from_text(created), name, version, orjson.loads(features),
        prediction, None if probs is None else orjson.loads(probs), latency, client, cid,
    )  # fmt: skip
