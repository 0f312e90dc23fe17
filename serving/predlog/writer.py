"""The background writer: drains the spool into the store in batches, forever.

Each writer thread reads a batch (spooled requests are COPY BINARY tuples already:
PostgreSQL gets the bytes as they are), writes it in one transaction and only then lets
the spool forget it. With two threads (PostgreSQL), one reads while the other's batch is
in the database, and the server ingests two batches at once; the reader forgets a segment
only when every batch read from it is committed, whatever the order. While the
store is down each thread retries its batch with capped exponential backoff; the spool
keeps growing meanwhile, up to its cap. Requests the store rejects for their values (never
expected: the API validates) are isolated by bisection, so one bad request cannot block
the log; their rows are counted as dropped.
"""

from __future__ import annotations

import logging
import math
import threading
import time

from serving.predlog.metrics import LogMetrics
from serving.predlog.migrations import SchemaError
from serving.predlog.reader import Batch, Rows, SpoolReader
from serving.predlog.spool import Spool
from serving.predlog.store import (
    Encoded,
    RowsRejectedError,
    Store,
    StoreMisconfiguredError,
    StoreUnavailableError,
)

logger = logging.getLogger(__name__)

_FIRST_RETRY_SECONDS = 0.1
_IDLE_PING_SECONDS = 5.0
_INTERRUPTED_SECONDS = 0.3
"""How long stop() waits, in all, for threads whose store calls it interrupted."""


class Writer:
    """Owns the threads that move records from the spool to the store."""

    def __init__(
        self,
        spool: Spool,
        store: Store,
        metrics: LogMetrics,
        *,
        batch_rows: int,
        flush_interval: float,
        retry_max: float,
        fsync_interval: float | None = None,
        threads: int = 1,
    ) -> None:
        self.spool, self.store, self.metrics = spool, store, metrics
        self.flush_interval = flush_interval
        self.retry_max = retry_max
        self.fsync_interval = fsync_interval
        self.reader = SpoolReader(spool, batch_rows, self._lost)
        self.schema_ready = False
        self.reachable = True
        self.last_error: str | None = None
        self.misconfigured: str | None = None
        """Why the store refuses this configuration (fit for /ready), until a write works."""
        self.rows_done = 0
        """Rows committed or given up (torn, corrupt, rejected)."""
        self._count_lock = threading.Lock()
        self._wake = threading.Event()
        self._abort = threading.Event()
        self._deadline: float | None = None
        self._threads = [
            threading.Thread(
                target=self._run, args=(k,), name=f"skship-log-writer-{k}", daemon=True
            )
            for k in range(threads)
        ]
        self._last_contact = time.monotonic()
        self._last_sync = time.monotonic()

    def start(self) -> None:
        for reason, rows in self.spool.leftover_lost.items():  # an older version's segments
            if reason == "torn":
                self.metrics.torn_lines.inc(rows)
            else:
                self.metrics.dropped.labels(reason).inc(rows)
        self.spool.leftover_lost.clear()
        for thread in self._threads:
            thread.start()

    @property
    def alive(self) -> bool:
        return all(thread.is_alive() for thread in self._threads)

    def stop(self, timeout: float) -> bool:
        """Drain everything within ``timeout`` seconds; True when the spool is empty."""
        self._deadline = time.monotonic() + timeout
        self._wake.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(max(0.0, self._deadline - time.monotonic()))
        self._abort.set()
        if any(thread.is_alive() for thread in self._threads):
            # Past the deadline: abort the store's calls (a batch in flight, a wait for a
            # connection) so the threads see their failure, find no time for a retry and end.
            self.store.interrupt()
            until = time.monotonic() + _INTERRUPTED_SECONDS
            for thread in self._threads:
                thread.join(max(0.0, until - time.monotonic()))
        self.reader.close()
        return not self.spool.segments()

    def _lost(self, reason: str, lines: int) -> None:
        self._done(lines)
        if reason == "torn":
            self.metrics.torn_lines.inc(lines)
        else:
            self.metrics.dropped.labels(reason).inc(lines)

    def _done(self, rows: int) -> None:
        with self._count_lock:
            self.rows_done += rows

    def _run(self, k: int) -> None:
        try:
            while not self._abort.is_set():
                if k == 0:
                    self._housekeeping()
                batch = self.reader.read()
                if batch.rows.rows and not self._write_until_done(batch):
                    break  # shutting down with the store still unreachable: spool keeps it
                self.reader.commit(batch)
                self._done(batch.rows.rows)
                if batch.full:
                    continue
                if self._deadline is not None:
                    if not self.spool.segments():
                        break
                    if not batch.rows.rows:
                        self._abort.wait(0.01)
                    continue
                self._wake.wait(self.flush_interval)
        except Exception:  # the log must not die silently: /ready reports it
            logger.exception("prediction log writer crashed")
            self.reachable, self.last_error = False, "writer thread crashed"

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if self.fsync_interval is not None and now - self._last_sync >= self.fsync_interval:
            self._last_sync = now
            try:
                self.spool.sync()
            except OSError as exc:
                logger.error("cannot fsync the spool: %s", exc)
        if self.spool.unwritable is not None:
            self.spool.probe()
        if self._deadline is None and now - self._last_contact >= _IDLE_PING_SECONDS:
            self._last_contact = now
            self._set_reachable(self.store.ping(), "store did not answer a ping")

    def _write_until_done(self, batch: Batch) -> bool:
        try:
            encoded: Encoded | None = self.store.encode(batch.rows)
        except RowsRejectedError:
            encoded = None  # isolated record by record below
        delay = _FIRST_RETRY_SECONDS
        while True:
            try:
                if not self.schema_ready:
                    self.store.prepare()
                    self.schema_ready = True
                self._write_isolating(batch.rows, encoded)
            except (StoreUnavailableError, SchemaError) as exc:
                self.metrics.write_failures.labels(type(exc).__name__).inc()
                self.misconfigured = misconfiguration(exc)
                self._set_reachable(False, str(exc))
                self.spool.retry_after = max(1, math.ceil(delay))
                if not self._backoff(delay):
                    return False
                self.metrics.write_retries.inc()
                delay = min(delay * 2, self.retry_max)
                continue
            self._last_contact = time.monotonic()
            self.misconfigured = None
            self._set_reachable(True, None)
            self.spool.retry_after = 1
            return True

    def _backoff(self, delay: float) -> bool:
        return backoff(delay, self._deadline, self._abort)

    def _write_isolating(self, rows: Rows, encoded: Encoded | None) -> None:
        try:
            inserted = self.store.write(encoded or self.store.encode(rows))
        except RowsRejectedError as exc:
            halves = rows.halves()
            if halves is not None:
                for half in halves:
                    self._write_isolating(half, None)
                return
            logger.error(
                "the store rejected a request; dropping its %d row(s): %s (%.120r)",
                rows.rows, exc, b"".join(rows.chunks),
            )  # fmt: skip
            self.metrics.dropped.labels("rejected").inc(rows.rows)
            return
        self.metrics.rows_written.inc(inserted)
        self.metrics.duplicate_rows.inc(rows.rows - inserted)

    def note_unavailable(self, exc: Exception) -> None:
        """The store failed before the threads started (at startup)."""
        self.misconfigured = misconfiguration(exc)
        self.reachable, self.last_error = False, str(exc)

    def _set_reachable(self, reachable: bool, error: str | None) -> None:
        if reachable and not self.reachable:
            logger.info("prediction store reachable again; draining the spool")
        elif not reachable and error != self.last_error:
            logger.warning("prediction store unavailable, records stay spooled: %s", error)
        self.reachable, self.last_error = reachable, error


def backoff(delay: float, deadline: float | None, abort: threading.Event) -> bool:
    """Sleep ``delay`` before a retry, or less to end by ``deadline`` (shutdown's, monotonic);
    False when the deadline leaves no time for one or ``abort`` is set."""
    if deadline is not None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        delay = min(delay, remaining)
    return not abort.wait(delay)


def misconfiguration(exc: Exception) -> str | None:
    """Our short wording of a failure that will not heal by itself, or None."""
    if isinstance(exc, StoreMisconfiguredError):
        return exc.problem
    if isinstance(exc, SchemaError):
        return "the prediction log's tables are missing or out of date (see the server log)"
    return None
