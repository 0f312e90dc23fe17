"""The embedded SQLite store: the same table in one file, for ``make run`` and small setups.

WAL mode lets queries read while the writer writes; ``synchronous=NORMAL`` makes a commit
survive the process being killed (power loss may lose the last commits, as it may the
spool). Migrations run under SQLite's write lock, so two servers on one file apply each
once.
"""

from __future__ import annotations

import logging
import sqlite3
import struct
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from serving.predlog import migrations, sql, tuples
from serving.predlog.feedback import FeedbackRecord
from serving.predlog.reader import Rows
from serving.predlog.store import Encoded, RowsRejectedError, StoreUnavailableError

logger = logging.getLogger(__name__)

URL_PREFIX = "sqlite:///"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def path_of(url: str) -> Path:
    """``sqlite:///var/x.db`` is relative to the working folder, ``sqlite:////abs/x.db`` not."""
    if not url.startswith(URL_PREFIX) or len(url) == len(URL_PREFIX):
        raise ValueError(f"not a sqlite:///path URL: {url!r}")
    return Path(url[len(URL_PREFIX) :])


def to_text(moment: datetime) -> str:
    """The stored form of a timestamp: UTC, microseconds, sortable as text."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


def from_text(text: str) -> datetime:
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC)


def connect(url: str, *, create: bool = False, timeout: float = 10.0) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, busy timeout."""
    path = path_of(url)
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
    elif not path.exists():
        raise StoreUnavailableError(f"no prediction log at {path}")
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


class SqliteStore:
    """Writes batches to one SQLite file; one user thread at a time."""

    kind = "sqlite"

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: sqlite3.Connection | None = None

    def open(self) -> None:
        self._connection()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            try:
                # A short busy timeout: the writer retries anyway, and close() must not wait.
                self._conn = connect(self.url, create=True, timeout=2.0)
            except (OSError, sqlite3.Error) as exc:
                raise StoreUnavailableError(f"cannot open {self.url}: {exc}") from exc
        return self._conn

    def prepare(self) -> None:
        try:
            applied = migrations.migrate_sqlite(self._connection())
        except sqlite3.OperationalError as exc:
            raise StoreUnavailableError(f"cannot migrate {self.url}: {exc}") from exc
        for migration in applied:
            logger.info("applied migration %04d_%s", migration.version, migration.name)

    def encode(self, rows: Rows) -> Encoded:
        try:
            params = list(_rows(rows))
        except (ValueError, KeyError, IndexError, struct.error) as exc:  # not our tuples
            raise RowsRejectedError(str(exc)) from exc
        return Encoded(len(params), params)

    def write_feedback(self, records: Sequence[FeedbackRecord]) -> int:
        """Upsert labels in one transaction; returns rows inserted or replaced.

        Statements run in batch order, so for one row the label received last wins, and
        within a batch the later record (serving/predlog/feedback.py).
        """
        try:
            params = [_feedback_params(record) for record in records]
        except ValueError as exc:
            raise RowsRejectedError(str(exc)) from exc
        return self.write(Encoded(len(params), params), sql.SQLITE_UPSERT_FEEDBACK)

    def write(self, batch: Encoded, statement: str = sql.SQLITE_INSERT_ROW) -> int:
        conn = self._connection()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                inserted = conn.executemany(statement, batch.data).rowcount
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except (sqlite3.IntegrityError, sqlite3.DataError, sqlite3.InterfaceError) as exc:
            raise RowsRejectedError(str(exc)) from exc
        except sqlite3.Error as exc:
            raise StoreUnavailableError(f"SQLite write failed: {exc}") from exc
        return max(inserted, 0)

    def ping(self) -> bool:
        try:
            self._connection().execute(sql.PING)
        except (sqlite3.Error, StoreUnavailableError):
            return False
        return True

    def interrupt(self) -> None:
        if self._conn is not None:
            self._conn.interrupt()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _feedback_params(record: FeedbackRecord) -> dict[str, Any]:
    return {
        "request_id": record.canonical_request_id(),
        "row_index": int(record.row_index),
        "label": record.label_json(),
        "received_at": to_text(record.received()),
        "client_id": record.client_id,
    }


def _rows(rows: Rows) -> Iterator[dict[str, Any]]:
    """Spooled requests as SQLite parameters, a row per instance: features and
    probabilities as JSON objects by name (SQLite has no arrays; docs/log-layout.md)."""
    for chunk in rows.chunks:
        for request in tuples.decode(chunk, rows.models):
            model = rows.models[request.model_key]
            names, classes = model.feature_names, model.classes or ()
            created = to_text(request.created_at)
            probabilities = request.probabilities
            for i, (values, prediction) in enumerate(
                zip(request.features, request.predictions, strict=True)
            ):
                yield {
                    "request_id": request.request_id,
                    "row_index": i,
                    "created_at": created,
                    "model_name": model.name,
                    "model_version": model.version,
                    "features": orjson.dumps(dict(zip(names, values, strict=True))).decode(),
                    "prediction": prediction
                    if isinstance(prediction, str)
                    else orjson.dumps(prediction).decode(),
                    "probabilities": None
                    if probabilities is None
                    else orjson.dumps(
                        dict(zip(classes, probabilities[i].tolist(), strict=True))
                    ).decode(),
                    "latency_ms": request.latency_ms,
                    "client_id": request.client_id,
                    "client_request_id": request.client_request_id,
                }
