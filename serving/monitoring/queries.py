"""Live aggregates for monitoring, computed by the log's database (serving/monitoring/sql.py).

A ``LiveSource`` answers a few questions about one model's logged predictions (and their
labels) in a time window: counts per version, quality sums, histogram cells per feature,
prediction shares per time bucket. Each answer is a handful of rows, whatever the size of
the log. ``PostgresSource`` takes a connection factory (a pool's ``connection`` in the
server, a direct connection in the CLI), ``SqliteSource`` the log's URL.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, closing
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import orjson
import psycopg
from psycopg import errors
from psycopg.rows import dict_row

from serving.monitoring import sql
from serving.predlog import sqlite
from serving.predlog.log import is_postgres
from serving.predlog.migrations import MIGRATE_HINT, SchemaError
from serving.predlog.reading import Connector

Row = dict[str, Any]
Edges = Sequence[float] | None
"""A number's bin edges, or None for a category (its values are the cells)."""


@dataclass(frozen=True, slots=True)
class Window:
    """``since <= created_at < until`` of the predictions; None is unbounded. UTC if naive."""

    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Scope:
    """Which predictions: one model, one version (None: all) and a time window."""

    model_name: str
    model_version: str | None = None
    window: Window = field(default_factory=Window)


class LiveSource(Protocol):
    def counts(self, scope: Scope, bucket_seconds: int | None = None) -> list[Row]:
        """Per version (and bucket): predictions, first_at, last_at; oldest first."""

    def classifier_quality(self, scope: Scope, bucket_seconds: int | None = None) -> list[Row]:
        """Per version (and bucket): labelled, accuracy, balanced_accuracy, scored, log_loss."""

    def regressor_quality(self, scope: Scope, bucket_seconds: int | None = None) -> list[Row]:
        """Per version (and bucket): labelled, mae, rmse, ss_res, ss_tot."""

    def feature_cells(self, scope: Scope, spec: Mapping[str, Edges]) -> dict[str, dict[str, int]]:
        """Per feature of ``spec``: rows per cell (a number's bin index as text, or a
        category's value); missing values and values of the wrong type are not counted."""

    def prediction_cells(self, scope: Scope, edges: Edges) -> dict[str, int]:
        """Rows per predicted class, or per bin of a regressor's predictions."""

    def class_series(self, scope: Scope, bucket_seconds: int) -> list[Row]:
        """Per bucket and predicted class: n."""

    def mean_series(self, scope: Scope, bucket_seconds: int) -> list[Row]:
        """Per bucket: n and the mean predicted value (regressors)."""


def _params(scope: Scope, **extra: Any) -> dict[str, Any]:
    return {
        "model_name": scope.model_name,
        "model_version": scope.model_version,
        "since": scope.window.since,
        "until": scope.window.until,
        "bucket_seconds": None,
        "eps": sql.EPSILON,
        **extra,
    }


def _cells(rows: list[Row]) -> dict[str, dict[str, int]]:
    found: dict[str, dict[str, int]] = {}
    for row in rows:
        if row["cell"] is not None:
            found.setdefault(row["name"], {})[str(row["cell"])] = int(row["n"])
    return found


PgConnect = Callable[[], AbstractContextManager[psycopg.Connection[Any]]]


class PostgresSource:
    """Monitoring queries over connections from ``connect``."""

    def __init__(self, connect: PgConnect) -> None:
        self._connect = connect

    def _fetch(self, statement: str, params: dict[str, Any]) -> list[Row]:
        try:
            with self._connect() as conn, conn.cursor(row_factory=dict_row) as cur:
                return cur.execute(statement, params).fetchall()
        except errors.UndefinedTable as exc:
            message = exc.diag.message_primary or "a table is missing"
            raise SchemaError(
                f"the prediction log is not current ({message}): {MIGRATE_HINT}"
            ) from exc

    def counts(self, scope: Scope, bucket_seconds: int | None = None) -> list[Row]:
        return self._fetch(sql.POSTGRES.counts, _params(scope, bucket_seconds=bucket_seconds))

    def classifier_quality(self, scope: Scope, bucket_seconds: int | None = None) -> list[Row]:
        params = _params(scope, bucket_seconds=bucket_seconds)
        return self._fetch(sql.POSTGRES.classifier_quality, params)

    def regressor_quality(self, scope: Scope, bucket_seconds: int | None = None) -> list[Row]:
        params = _params(scope, bucket_seconds=bucket_seconds)
        return self._fetch(sql.POSTGRES.regressor_quality, params)

    def feature_cells(self, scope: Scope, spec: Mapping[str, Edges]) -> dict[str, dict[str, int]]:
        encoded = orjson.dumps({name: list(edges or []) or None for name, edges in spec.items()})
        return _cells(self._fetch(sql.PG_FEATURE_CELLS, _params(scope, spec=encoded.decode())))

    def prediction_cells(self, scope: Scope, edges: Edges) -> dict[str, int]:
        params = _params(scope, edges=None if edges is None else [float(e) for e in edges])
        rows = self._fetch(sql.PG_PREDICTION_CELLS, params)
        return {str(r["cell"]): int(r["n"]) for r in rows if r["cell"] is not None}

    def class_series(self, scope: Scope, bucket_seconds: int) -> list[Row]:
        return self._fetch(sql.POSTGRES.class_series, _params(scope, bucket_seconds=bucket_seconds))

    def mean_series(self, scope: Scope, bucket_seconds: int) -> list[Row]:
        return self._fetch(sql.POSTGRES.mean_series, _params(scope, bucket_seconds=bucket_seconds))


class SqliteSource:
    """Monitoring queries on the SQLite log; one short-lived connection per call (from
    ``connect`` when given: the server's bounded ones)."""

    def __init__(
        self,
        url: str,
        connect: Callable[[], AbstractContextManager[sqlite3.Connection]] | None = None,
    ) -> None:
        self.url = url
        self._connect = connect or (lambda: closing(sqlite.connect(self.url)))

    def _fetch(self, statement: str, params: dict[str, Any]) -> list[Row]:
        values = {k: sqlite.to_text(v) if isinstance(v, datetime) else v for k, v in params.items()}
        with self._connect() as conn:
            _ensure_math(conn)
            conn.row_factory = _dict_row
            try:
                rows: list[Row] = conn.execute(statement, values).fetchall()
            except sqlite3.OperationalError as exc:
                if "no such table" not in str(exc):
                    raise
                message = f"the prediction log is not current ({exc})"
                raise SchemaError(f"{message}: {MIGRATE_HINT}") from exc
        for row in rows:
            for key in ("first_at", "last_at"):
                if isinstance(row.get(key), str):
                    row[key] = sqlite.from_text(row[key])
        return rows

    def counts(self, scope: Scope, bucket_seconds: int | None = None) -> list[Row]:
        return self._fetch(sql.SQLITE.counts, _params(scope, bucket_seconds=bucket_seconds))

    def classifier_quality(self, scope: Scope, bucket_seconds: int | None = None) -> list[Row]:
        params = _params(scope, bucket_seconds=bucket_seconds)
        return self._fetch(sql.SQLITE.classifier_quality, params)

    def regressor_quality(self, scope: Scope, bucket_seconds: int | None = None) -> list[Row]:
        params = _params(scope, bucket_seconds=bucket_seconds)
        return self._fetch(sql.SQLITE.regressor_quality, params)

    def feature_cells(self, scope: Scope, spec: Mapping[str, Edges]) -> dict[str, dict[str, int]]:
        numbers = [(name, list(edges)) for name, edges in spec.items() if edges]
        params = _params(scope, names=orjson.dumps(list(spec)).decode())
        for k, (name, edges) in enumerate(numbers):
            params[f"number_{k}"] = name
            params.update({f"edge_{k}_{i}": float(e) for i, e in enumerate(edges)})
        statement = sql.sqlite_feature_cells([len(edges) for _, edges in numbers])
        return _cells(self._fetch(statement, params))

    def prediction_cells(self, scope: Scope, edges: Edges) -> dict[str, int]:
        params = _params(scope)
        if edges is not None:
            params.update({f"edge_{i}": float(e) for i, e in enumerate(edges)})
        statement = sql.sqlite_prediction_cells(None if edges is None else len(edges))
        rows = self._fetch(statement, params)
        return {str(r["cell"]): int(r["n"]) for r in rows if r["cell"] is not None}

    def class_series(self, scope: Scope, bucket_seconds: int) -> list[Row]:
        return self._fetch(sql.SQLITE.class_series, _params(scope, bucket_seconds=bucket_seconds))

    def mean_series(self, scope: Scope, bucket_seconds: int) -> list[Row]:
        return self._fetch(sql.SQLITE.mean_series, _params(scope, bucket_seconds=bucket_seconds))


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> Row:
    return {column[0]: value for column, value in zip(cursor.description, row, strict=True)}


def _ensure_math(conn: sqlite3.Connection) -> None:
    """SQLite's math functions are a compile-time option; supply ln and sqrt when absent."""
    try:
        conn.execute("SELECT ln(1), sqrt(1)")
    except sqlite3.OperationalError:
        conn.create_function("ln", 1, math.log, deterministic=True)
        conn.create_function("sqrt", 1, math.sqrt, deterministic=True)


def open_source(url: str) -> LiveSource:
    """Monitoring queries on ``url``, one direct connection per query (for a CLI or a test)."""
    if is_postgres(url):
        return PostgresSource(
            lambda: psycopg.connect(
                url,
                autocommit=True,
                prepare_threshold=None,
                connect_timeout=10,
                options="-c TimeZone=UTC",
            )
        )
    return SqliteSource(url)


def connected_source(connector: Connector) -> LiveSource:
    """Monitoring queries over a query runner's bounded connections (the server's routes)."""
    if connector.postgres:
        return PostgresSource(connector.connect)
    return SqliteSource(connector.url, connector.connect)
