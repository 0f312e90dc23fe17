"""The durable prediction log: spool on the request path, writer thread behind it.

``append`` only encodes records and writes them to the spool (one ``os.write``); the
writer thread owns every database conversation. Queries use their own connections (the
read URL, as the writer role may not SELECT).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from prometheus_client import CollectorRegistry

from serving.predlog import metrics
from serving.predlog.feedback import FeedbackRecord
from serving.predlog.labels import LabelSpool, LabelWriter
from serving.predlog.migrations import SchemaError
from serving.predlog.postgres import PostgresStore
from serving.predlog.queries import Filters, Queries, decode_cursor
from serving.predlog.reading import Connector, QueryRunner
from serving.predlog.records import (
    LogDisabledError,
    LogFullError,
    LogStatus,
    LogUnavailableError,
    Page,
    PredictionRecord,
)
from serving.predlog.spool import Spool
from serving.predlog.sqlite import SqliteStore
from serving.predlog.store import Store, StoreUnavailableError
from serving.predlog.writer import Writer
from serving.settings import Settings

logger = logging.getLogger(__name__)

T = TypeVar("T")


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


class DurablePredictionLog:
    """PredictionLog backed by a local spool and a PostgreSQL or SQLite store."""

    def __init__(self, settings: Settings, registry: CollectorRegistry) -> None:
        self.settings = settings
        url = settings.database_url
        # SQLite takes one writer at a time: more threads would only queue on its lock.
        threads = settings.log_writer_connections if is_postgres(url) else 1
        self.store: Store = (
            PostgresStore(
                url,
                reconnect_seconds=max(2.0, settings.log_retry_max_seconds),
                connections=threads,
            )
            if is_postgres(url)
            else SqliteStore(url)
        )
        self.spool = Spool(
            settings.spool_dir, settings.spool_max_bytes, settings.spool_segment_bytes
        )
        self.metrics = metrics.create(
            registry,
            queued=self._queued,
            spooled_bytes=lambda: self.spool.spooled_bytes,
            oldest_age=lambda: self._oldest_age() or 0.0,
            reachable=lambda: float(self.writer.reachable),
        )
        self.writer = Writer(
            self.spool,
            self.store,
            self.metrics,
            batch_rows=settings.log_batch_rows,
            flush_interval=settings.log_flush_interval_seconds,
            retry_max=settings.log_retry_max_seconds,
            fsync_interval=settings.spool_fsync_interval_seconds,
            threads=threads,
        )
        # Labels are small and few: an eighth of the cap holds about a million of them.
        self.labels = LabelSpool(settings.spool_dir, max(settings.spool_max_bytes // 8, 1 << 20))
        self.label_writer = LabelWriter(
            self.labels,
            self.store,
            registry,
            schema_ready=lambda: self.writer.schema_ready,
            interval=max(settings.log_flush_interval_seconds, 0.5),
            retry_max=settings.log_retry_max_seconds,
        )
        self._started = False
        self._queries = QueryRunner(settings)

    def start(self) -> None:
        self.spool.open()  # takes the folder's lock, which the labels' spool shares
        self.labels.open()
        try:
            self.store.open()
            self.store.prepare()
            self.writer.schema_ready = True
        except (StoreUnavailableError, SchemaError) as exc:
            # Not fatal: records are spooled until the store is back (and migrated then).
            logger.warning("prediction store unavailable at startup: %s", exc)
            self.writer.note_unavailable(exc)
        except BaseException:
            self.store.close()
            self.labels.close()
            self.spool.close()
            raise
        self.writer.start()
        self.label_writer.start()
        self._started = True

    def append(self, records: Sequence[PredictionRecord]) -> None:
        try:
            self.spool.append(records)
        except LogFullError:
            self.metrics.refused.labels("full").inc(len(records))
            raise
        except LogUnavailableError:
            self.metrics.refused.labels("unavailable").inc(len(records))
            raise

    def append_feedback(self, records: Sequence[FeedbackRecord]) -> None:
        # Refusals are not counted with the rows' (skship_log_refused_records_total counts
        # predictions); /feedback's 503s show in the HTTP metrics by route and status.
        self.labels.append(records)

    def status(self) -> LogStatus:
        reason = None
        if not self._started:
            reason = "the prediction log is not started"
        elif not self.spool.accepting:
            reason = "the prediction log is closed"
        elif self.spool.full or self.spool.spooled_bytes >= self.spool.max_bytes:
            reason = f"the prediction spool is at its cap ({self.spool.max_bytes} bytes)"
            if not self.writer.reachable:
                reason += f"; the store is unreachable: {self.writer.last_error}"
        elif self.spool.unwritable is not None:
            reason = self.spool.unwritable
        elif not self.writer.alive:
            reason = "the prediction log writer stopped"
        return LogStatus(
            accepting=reason is None,
            reason=reason,
            store=self.store.kind,
            store_problem=self.writer.misconfigured,
            store_reachable=self.writer.reachable,
            spooled_bytes=self.spool.spooled_bytes,
            oldest_unwritten_age_s=self._oldest_age(),
        )

    def sample_metrics(self) -> None:
        self.metrics.sample()

    async def query_page(self, filters: Filters, limit: int, cursor: str | None) -> Page:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if cursor:
            decode_cursor(cursor)  # a bad one is the client's error, whatever the database does
        return await self.read(lambda queries: queries.page(filters, limit, cursor))

    async def read(self, work: Callable[[Queries], T]) -> T:
        return await self._queries.run(work)

    async def read_connected(self, work: Callable[[Connector], T]) -> T:
        return await self._queries.run_connected(work)

    def cancel_queries(self) -> None:
        self._queries.cancel()

    def close(self, timeout: float) -> None:
        self.cancel_queries()
        self.spool.stop_accepting()
        self.labels.stop_accepting()
        started = time.monotonic()
        # Labels first, briefly: a few rows, written in milliseconds when the store is up.
        if self._started and not self.label_writer.stop(min(1.0, timeout / 4)):
            logger.warning("labels not all written; they stay spooled for the next start")
        # What is left, less a margin for interrupting stuck store calls and closing.
        timeout = max(0.0, timeout - (time.monotonic() - started) - min(0.5, timeout / 4))
        if self._started and not self.writer.stop(timeout):
            logger.warning(
                "prediction log not fully written within %.1f s; %d bytes stay spooled in %s"
                " for the next start", timeout, self.spool.spooled_bytes, self.spool.directory,
            )  # fmt: skip
        else:
            logger.info("prediction log flushed in %.2f s", time.monotonic() - started)
        self.labels.close()
        self.spool.close()
        # A writer stuck in a call the store would not abort: let it be.
        if self.writer.alive or self.label_writer.alive:
            logger.warning("the prediction log writer is still busy; leaving it behind")
        else:
            self.store.close()
        self._queries.close()

    def _queued(self) -> float:
        spool = self.spool
        return max(0, spool.appended_rows + spool.leftover_rows - self.writer.rows_done)

    def _oldest_age(self) -> float | None:
        oldest = self.writer.reader.oldest()
        return None if oldest is None else max(0.0, time.time() - oldest)


class DisabledPredictionLog:
    """Logs nothing: the benchmark's "logging disabled" variant (LOG_PREDICTIONS=false)."""

    def start(self) -> None:
        logger.warning("prediction logging is disabled (LOG_PREDICTIONS=false)")

    def append(self, records: Sequence[PredictionRecord]) -> None:
        pass

    def append_feedback(self, records: Sequence[FeedbackRecord]) -> None:
        raise LogDisabledError("prediction logging is disabled (LOG_PREDICTIONS=false)")

    def status(self) -> LogStatus:
        return LogStatus(True, None, "disabled", None, True, 0, None)

    def sample_metrics(self) -> None:
        pass

    async def query_page(self, filters: Filters, limit: int, cursor: str | None) -> Page:
        return Page([], None)

    async def read(self, work: Callable[[Queries], T]) -> T:
        raise LogUnavailableError("prediction logging is disabled (LOG_PREDICTIONS=false)")

    async def read_connected(self, work: Callable[[Connector], T]) -> T:
        raise LogUnavailableError("prediction logging is disabled (LOG_PREDICTIONS=false)")

    def cancel_queries(self) -> None:
        pass

    def close(self, timeout: float) -> None:
        pass
