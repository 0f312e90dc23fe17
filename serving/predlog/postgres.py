"""The PostgreSQL store's writing side: a self-healing pool and COPY-based batch inserts.

A batch is one transaction: COPY into a session-private staging table, then
INSERT ... ON CONFLICT DO NOTHING into ``predictions``, so a replayed batch never
duplicates. ``bench.drain`` measured this at several times the rows/s of ``executemany``
in pipeline mode (README, "Prediction log"); ``method="executemany"`` keeps the slower
path for that comparison.

The pool holds one connection per writer thread, checks it before each batch and replaces
it when the server restarted or was killed; while it cannot connect, ``write`` raises
StoreUnavailableError and the spool keeps the rows.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
import psycopg
from psycopg import errors
from psycopg_pool import ConnectionPool, PoolTimeout

from serving.predlog import migrations, sql
from serving.predlog.lines import SpooledModel, SpooledRecord
from serving.predlog.store import Encoded, RowsRejectedError, StoreUnavailableError, TimeText

logger = logging.getLogger(__name__)

Method = Literal["copy", "staging", "executemany"]
"""copy: COPY into the table, staging only for batches holding duplicates (the log's choice);
staging: always COPY to staging + INSERT ... ON CONFLICT; executemany: pipelined INSERTs."""

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_NULL = b"\\N"
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

    def open(self) -> None:
        self._pool.open(wait=False)

    def prepare(self) -> None:
        try:
            with psycopg.connect(self.url, autocommit=True, **self._kwargs) as conn:
                applied = migrations.prepare_postgres(conn)
        except psycopg.OperationalError as exc:
            raise StoreUnavailableError(f"cannot reach PostgreSQL: {exc}") from exc
        for migration in applied:
            logger.info("applied migration %04d_%s", migration.version, migration.name)

    def encode(self, records: Sequence[SpooledRecord]) -> Encoded:
        rows = sum(len(record.features) for record in records)
        try:
            if self.method == "executemany":
                return Encoded(rows, list(_param_rows(records)))
            return Encoded(rows, list(_copy_chunks(records)))
        except ValueError as exc:  # a row unlike its model's names
            raise RowsRejectedError(str(exc)) from exc

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
            raise StoreUnavailableError(f"the log's database role may not insert: {exc}") from exc
        except (psycopg.Error, PoolTimeout) as exc:
            raise StoreUnavailableError(f"PostgreSQL write failed: {exc}") from exc

    def _write(self, conn: psycopg.Connection[Any], batch: Encoded) -> int:
        if self.method == "executemany":
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(sql.PG_INSERT_ROW, batch.data)
                return max(cur.rowcount, 0)
        if self.method == "copy":
            try:
                with conn.transaction(), conn.cursor() as cur:
                    _copy(cur, sql.PG_COPY_DIRECT, batch.data)
                    return batch.rows
            except errors.UniqueViolation:
                pass  # a replay: some rows are in already; skip those
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(sql.PG_CREATE_STAGING)
            _copy(cur, sql.PG_COPY_STAGING, batch.data)
            cur.execute(sql.PG_INSERT_FROM_STAGING)
            return max(cur.rowcount, 0)

    def ping(self) -> bool:
        try:
            with self._pool.connection(timeout=self.connect_timeout) as conn:
                conn.execute(sql.PING)
        except (psycopg.Error, PoolTimeout):
            return False
        return True

    def interrupt(self) -> None:
        for conn in list(self._busy):
            with contextlib.suppress(psycopg.Error):
                conn.cancel_safe(timeout=2.0)

    def close(self) -> None:
        self._pool.close(timeout=1.0)


def _copy(cur: psycopg.Cursor[Any], statement: str, chunks: list[bytes]) -> None:
    with cur.copy(statement) as copy:
        for chunk in chunks:
            copy.write(chunk)


def _text(value: str) -> bytes:
    return value.translate(_ESCAPES).encode()


def _copy_chunks(records: Sequence[SpooledRecord], rows_per_chunk: int = 1000) -> Iterator[bytes]:
    """COPY text-format lines, built directly as bytes (streamed while the server parses)."""
    lines: list[bytes] = []
    time_text = TimeText("%Y-%m-%d %H:%M:%S", b".%06d+00")
    models: dict[SpooledModel, bytes] = {}
    labels: dict[str, bytes] = {}
    for record in records:
        model = models.get(record.model)
        if model is None:
            schema = record.model.schema
            model = models[record.model] = _text(schema.name) + b"\t" + _text(schema.version)
        head = _text(record.request_id) + b"\t"
        middle = time_text(record.created_at) + b"\t" + model
        client = _NULL if record.client_id is None else _text(record.client_id)
        tail = repr(float(record.latency_ms)).encode() + b"\t" + client + b"\n"
        for i, prediction in enumerate(record.predictions):
            if isinstance(prediction, str):
                label = labels.get(prediction)
                if label is None:
                    label = labels[prediction] = _text(prediction)
            else:
                label = orjson.dumps(prediction)
            probabilities = record.probabilities_json(i)
            lines.append(
                b"\t".join(
                    (
                        head + b"%d" % i,
                        middle,
                        # JSON escapes control characters; COPY text only needs '\' doubled.
                        record.features_json(i).replace(b"\\", b"\\\\"),
                        label,
                        _NULL if probabilities is None else probabilities.replace(b"\\", b"\\\\"),
                        tail,
                    )
                )
            )
        if len(lines) >= rows_per_chunk:
            yield b"".join(lines)
            lines.clear()
    if lines:
        yield b"".join(lines)


def _param_rows(records: Sequence[SpooledRecord]) -> Iterator[dict[str, Any]]:
    for record in records:
        schema = record.model.schema
        created_at = datetime.fromtimestamp(record.created_at, UTC)
        for i, prediction in enumerate(record.predictions):
            probabilities = record.probabilities_json(i)
            yield {
                "request_id": record.request_id,
                "row_index": i,
                "created_at": created_at,
                "model_name": schema.name,
                "model_version": schema.version,
                "features": record.features_json(i).decode(),
                "prediction": prediction
                if isinstance(prediction, str)
                else orjson.dumps(prediction).decode(),
                "probabilities": None if probabilities is None else probabilities.decode(),
                "latency_ms": float(record.latency_ms),
                "client_id": record.client_id,
            }
