"""The PostgreSQL store's writing side: a self-healing pool and COPY-based batch inserts.

A batch is one transaction: the model rows its requests refer to (once per store), then
the spooled COPY BINARY tuples streamed as they are into ``prediction_requests``. A
replayed batch (a request already stored) is copied into a session-private staging table
instead and moved with INSERT ... ON CONFLICT DO NOTHING, so it never duplicates;
``method="staging"`` always does that, for ``bench.drain``'s comparison.

The pool holds one connection per writer thread, checks it before each batch and replaces
it when the server restarted or was killed; while it cannot connect, ``write`` raises
StoreUnavailableError and the spool keeps the rows.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import Any, Literal

import psycopg
from psycopg import errors
from psycopg_pool import ConnectionPool, PoolTimeout

from serving.predlog import migrations, sql
from serving.predlog.feedback import FeedbackRecord
from serving.predlog.frames import COPY_SIGNATURE, COPY_TRAILER, ModelRow
from serving.predlog.reader import Rows
from serving.predlog.store import (
    Encoded,
    RowsRejectedError,
    StoreMisconfiguredError,
    StoreUnavailableError,
)

logger = logging.getLogger(__name__)

Method = Literal["copy", "staging"]
"""copy: COPY into the table, staging only for batches holding duplicates (the log's choice);
staging: always COPY to staging + INSERT ... ON CONFLICT."""

# Class 22 (data exception) and 23 (integrity): the values are at fault, not the server.
_REJECTED = (psycopg.DataError, psycopg.IntegrityError)


class PostgresStore:
    """Writes batches to PostgreSQL; one pooled connection per writer thread."""

    kind = "postgresql"

    def __init__(
        self,
        url: str,
        *,
        method: Method = "copy",
        connect_timeout: float = 5.0,
        reconnect_seconds: float = 5.0,
        connections: int = 1,
    ) -> None:
        self.url = url
        self.method = method
        self.connect_timeout = connect_timeout
        self._kwargs: dict[str, Any] = {"connect_timeout": max(1, round(connect_timeout))}
        pool_kwargs = {**self._kwargs, "autocommit": True}
        self._pool = ConnectionPool(
            url,
            min_size=connections,
            max_size=connections,
            open=False,
            kwargs=pool_kwargs,
            check=ConnectionPool.check_connection,
            # The pool's own reconnection backoff doubles without a cap; giving up after a
            # few seconds restarts it from one second at the writer's next batch.
            reconnect_timeout=reconnect_seconds,
            name="skship-log-writer",
        )
        self._busy: set[psycopg.Connection[Any]] = set()
        self._models: set[int] = set()
        """Keys of the model rows known to be in the database."""

    def open(self) -> None:
        self._pool.open(wait=False)

    def prepare(self) -> None:
        try:
            with psycopg.connect(self.url, autocommit=True, **self._kwargs) as conn:
                applied = migrations.prepare_postgres(conn)
        except psycopg.OperationalError as exc:
            raise unavailable("cannot reach PostgreSQL", exc) from exc
        for migration in applied:
            logger.info("applied migration %04d_%s", migration.version, migration.name)

    def encode(self, rows: Rows) -> Encoded:
        return Encoded(rows.rows, rows)  # COPY BINARY tuples already: streamed as they are

    def write(self, batch: Encoded) -> int:
        try:
            with self._pool.connection(timeout=self.connect_timeout) as conn:
                self._busy.add(conn)
                try:
                    return self._write(conn, batch)
                finally:
                    self._busy.discard(conn)
        except _REJECTED as exc:
            raise RowsRejectedError(str(exc)) from exc
        except errors.InsufficientPrivilege as exc:
            raise StoreMisconfiguredError("the database role may not insert", str(exc)) from exc
        except psycopg.OperationalError as exc:
            self._models.clear()  # perhaps a new database: write the model rows again
            raise unavailable("PostgreSQL write failed", exc) from exc
        except (psycopg.Error, PoolTimeout) as exc:
            self._models.clear()
            raise StoreUnavailableError(f"PostgreSQL write failed: {exc}") from exc

    def _write(self, conn: psycopg.Connection[Any], batch: Encoded) -> int:
        rows: Rows = batch.data
        models = [m for key, m in rows.models.items() if key not in self._models]
        if self.method == "copy":
            try:
                with conn.transaction(), conn.cursor() as cur:
                    _insert_models(cur, models)
                    _copy(cur, sql.PG_COPY_DIRECT, rows.chunks)
                self._models.update(m.key for m in models)
                return batch.rows
            except errors.UniqueViolation:
                pass  # a replay: some requests are in already; skip those
        with conn.transaction(), conn.cursor() as cur:
            _insert_models(cur, models)
            cur.execute(sql.PG_CREATE_STAGING)
            _copy(cur, sql.PG_COPY_STAGING, rows.chunks)
            cur.execute(sql.PG_INSERT_FROM_STAGING)
            found = cur.fetchone()
        self._models.update(m.key for m in models)
        return int(found[0]) if found else 0

    def write_feedback(self, records: Sequence[FeedbackRecord]) -> int:
        """Upsert labels in one transaction; returns rows inserted or replaced.

        COPY into a session-private staging table, then one INSERT ... ON CONFLICT DO UPDATE
        that keeps the label received last (serving/predlog/feedback.py).
        """
        try:
            staged = [_feedback_row(seq, record) for seq, record in enumerate(records)]
        except ValueError as exc:
            raise RowsRejectedError(str(exc)) from exc
        try:
            with self._pool.connection(timeout=self.connect_timeout) as conn:
                self._busy.add(conn)
                try:
                    with conn.transaction(), conn.cursor() as cur:
                        cur.execute(sql.PG_CREATE_FEEDBACK_STAGING)
                        with cur.copy(sql.PG_COPY_FEEDBACK_STAGING) as copy:
                            for row in staged:
                                copy.write_row(row)
                        cur.execute(sql.PG_UPSERT_FEEDBACK)
                        return max(cur.rowcount, 0)
                finally:
                    self._busy.discard(conn)
        except _REJECTED as exc:
            raise RowsRejectedError(str(exc)) from exc
        except errors.InsufficientPrivilege as exc:
            raise StoreUnavailableError(f"the log's database role may not upsert: {exc}") from exc
        except (psycopg.Error, PoolTimeout) as exc:
            raise StoreUnavailableError(f"PostgreSQL feedback write failed: {exc}") from exc

    def ping(self) -> bool:
        try:
            with self._pool.connection(timeout=self.connect_timeout) as conn:
                conn.execute(sql.PING)
        except (psycopg.Error, PoolTimeout):
            return False
        return True

    def interrupt(self) -> None:
        """Cancel the statements in flight and close the pool, which fails the calls waiting
        for a connection at once (PoolClosed): nothing is written after this."""
        for conn in list(self._busy):
            with contextlib.suppress(psycopg.Error):
                conn.cancel_safe(timeout=1.0)
        self._pool.close(timeout=0)

    def close(self) -> None:
        self._pool.close(timeout=1.0)


# libpq reports these at connection time with no SQLSTATE, so they are told by their text.
_MISCONFIGURED = (
    ("database", "does not exist", "the database does not exist"),
    ("role", "does not exist", "the database role does not exist"),
    ("password authentication failed", "", "the database refused the password"),
    ("no pg_hba.conf entry", "", "the database refuses connections from this host or role"),
)


def unavailable(context: str, exc: psycopg.Error) -> StoreUnavailableError:
    """A connection error: misconfigured (it will not heal by itself) or just unavailable."""
    text = str(exc)
    for first, second, problem in _MISCONFIGURED:
        if first in text and second in text:
            return StoreMisconfiguredError(problem, f"{context}: {text}")
    return StoreUnavailableError(f"{context}: {text}")


def _insert_models(cur: psycopg.Cursor[Any], models: Sequence[ModelRow]) -> None:
    if models:
        cur.executemany(sql.PG_INSERT_MODEL, [model.params() for model in models])


COPY_WRITE_BYTES = 1 << 20
"""Frames are joined into writes of about this size: each ``Copy.write`` is a libpq call and
a send, and under light load a frame holds a request or two (a write per frame cost the
writer threads more than encoding them had)."""


def _copy(cur: psycopg.Cursor[Any], statement: str, chunks: list[bytes]) -> None:
    with cur.copy(statement) as copy:
        pending, size = [COPY_SIGNATURE], len(COPY_SIGNATURE)
        for chunk in chunks:
            pending.append(chunk)
            size += len(chunk)
            if size >= COPY_WRITE_BYTES:
                copy.write(b"".join(pending))
                pending, size = [], 0
        pending.append(COPY_TRAILER)
        copy.write(b"".join(pending))


def _feedback_row(seq: int, record: FeedbackRecord) -> tuple[Any, ...]:
    return (
        seq, record.canonical_request_id(), record.row_index, record.label_json(),
        record.received(), record.client_id,
    )  # fmt: skip
