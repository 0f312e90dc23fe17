"""Log queries made for clients (GET /predictions): bounded, on their own threads, cancellable.

A query must never hang the service (docs/prediction-log.md, "Query limits"):

- It runs on ``QueryThreads``, never on the event loop's default executor, which model
  reloads use: queries piling up against a database that is away cannot delay a reload.
  The threads are daemons, so a query stuck in the network cannot keep the process alive.
- It waits at most ``DATABASE_QUERY_TIMEOUT_SECONDS`` for a thread and a connection (also
  the PostgreSQL connect timeout), and runs at most ``DATABASE_STATEMENT_TIMEOUT_SECONDS``
  (PostgreSQL's ``statement_timeout``; a progress handler on SQLite). Past either it raises
  QueryUnavailableError: a 503 with Retry-After.
- ``cancel()`` (at shutdown): no new queries; running statements cancelled (psycopg's
  ``cancel_safe``, SQLite's ``interrupt``), waiting ones failed, the pool closed; in the
  background, so a signal handler may call it, and done within about a second.
- Database error text goes to the server log, once a minute per distinct problem; the
  client only ever reads a generic message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from serving.predlog import sqlite
from serving.predlog.queries import PostgresQueries, Queries, SqliteQueries
from serving.predlog.records import LogUnavailableError
from serving.predlog.store import StoreUnavailableError
from serving.predlog.threads import ProblemLog, QueryThreads
from serving.settings import Settings

logger = logging.getLogger(__name__)

T = TypeVar("T")

UNREADABLE = "the prediction log cannot be read right now; try again later"
SHUTTING_DOWN = "the server is shutting down; the prediction log cannot be read"
CANCEL_SECONDS = 1.0
WAIT_SLICE_SECONDS = 0.5
_DATABASE_ERRORS = (psycopg.Error, sqlite3.Error, StoreUnavailableError)


class QueryUnavailableError(LogUnavailableError):
    """The log cannot answer a query now (database away, too slow, shutting down): 503."""

    retry_after = 5


class QueryRunner:
    """Runs ``Queries`` work for clients within the bounds of ``settings``."""

    def __init__(self, settings: Settings) -> None:
        self.url = settings.database_read_url or settings.database_url
        self.wait_seconds = settings.database_query_timeout_seconds
        self.statement_seconds = settings.database_statement_timeout_seconds
        self._pool_size = settings.database_pool_size
        self._threads = QueryThreads(settings.database_pool_size, "skship-log-query")
        self._pool: ConnectionPool | None = None
        self._running: set[psycopg.Connection[Any] | sqlite3.Connection] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._canceller: threading.Thread | None = None
        self.problems = ProblemLog(logger)

    async def run(self, work: Callable[[Queries], T]) -> T:
        """``work(queries)`` on a query thread; its result, its own exception (bad input), or
        QueryUnavailableError once the bounds are spent."""
        return await self.run_connected(lambda connector: work(connector.queries()))

    async def run_connected(self, work: Callable[[Connector], T]) -> T:
        """``work(connector)`` under the same bounds, for readers other than ``Queries``
        (monitoring): the connector hands out this runner's bounded connections."""
        try:
            future: Future[T] = self._threads.submit(
                self._job, work, time.monotonic() + self.wait_seconds
            )
        except RuntimeError:  # shut down by cancel()
            raise QueryUnavailableError(SHUTTING_DOWN) from None
        waiting = asyncio.wrap_future(future)
        waiting.add_done_callback(_retrieve)
        done, _ = await asyncio.wait({waiting}, timeout=self.wait_seconds)
        if not done and future.cancel():  # never started: every query thread stayed busy
            self.problems.report("every log query thread stayed busy for the query timeout")
            raise QueryUnavailableError(UNREADABLE)
        if not done:
            done, _ = await asyncio.wait({waiting}, timeout=self.statement_seconds + 1.0)
        if not done:
            self.problems.report("a log query outlived its statement timeout")
            raise QueryUnavailableError(UNREADABLE)
        if waiting.cancelled():  # dropped from the queue by cancel()
            raise QueryUnavailableError(SHUTTING_DOWN)
        return waiting.result()

    def cancel(self) -> None:
        """Refuse new queries and stop the running ones; returns at once (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            running, pool = list(self._running), self._pool
        self._threads.shutdown()
        self._canceller = threading.Thread(
            target=_cancel, args=(running, pool), name="skship-log-query-cancel", daemon=True
        )
        self._canceller.start()

    def close(self, timeout: float = CANCEL_SECONDS) -> None:
        """``cancel()``, then wait up to ``timeout`` seconds for it to finish."""
        self.cancel()
        if self._canceller is not None:
            self._canceller.join(timeout)

    def _job(self, work: Callable[[Connector], T], deadline: float) -> T:
        try:
            return work(Connector(self, deadline))
        except _DATABASE_ERRORS as exc:
            if self._closed:
                raise QueryUnavailableError(SHUTTING_DOWN) from None
            if isinstance(exc, PoolTimeout):  # its text holds the seconds: one problem, not many
                self.problems.report("no database connection within the query timeout")
            else:
                self.problems.report(f"{type(exc).__name__}: {exc}")
            raise QueryUnavailableError(UNREADABLE) from None

    def _queries(self, deadline: float) -> Queries:
        if not self.url.startswith(sqlite.URL_PREFIX):  # Settings allow only the two
            return PostgresQueries(lambda: self._pg_connection(deadline))
        return SqliteQueries(lambda: self._sqlite_connection(deadline))

    @contextlib.contextmanager
    def _pg_connection(self, deadline: float) -> Iterator[psycopg.Connection[Any]]:
        pool = self._open_pool()
        conn = self._checked_connection(pool, deadline)
        try:
            with self._tracked(conn):
                yield conn
        finally:
            pool.putconn(conn)

    def _checked_connection(self, pool: ConnectionPool, deadline: float) -> psycopg.Connection[Any]:
        """A working connection by ``deadline``, waiting in slices so that ``cancel()`` ends
        the wait at once. The pool's own ``check`` would retry a broken connection in a
        sleeping loop that its ``close()`` does not wake, so the check is made here."""
        while True:
            remaining = deadline - time.monotonic()
            if self._closed:
                raise StoreUnavailableError("shutting down")
            if remaining <= 0:
                raise PoolTimeout("no connection in time")
            try:
                conn = pool.getconn(timeout=min(remaining, WAIT_SLICE_SECONDS))
            except PoolTimeout:
                continue
            try:
                ConnectionPool.check_connection(conn)
            except psycopg.Error:  # broken while pooled (a restart): the pool replaces it
                pool.putconn(conn)
                continue
            return conn

    @contextlib.contextmanager
    def _sqlite_connection(self, deadline: float) -> Iterator[sqlite3.Connection]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise sqlite3.OperationalError("no connection in time")
        conn = sqlite.connect(self.url, timeout=remaining)
        stop_at = time.monotonic() + self.statement_seconds
        # Called every 10,000 virtual machine steps; a true result interrupts the statement.
        conn.set_progress_handler(lambda: time.monotonic() > stop_at, 10_000)
        try:
            with self._tracked(conn):
                yield conn
        finally:
            conn.close()

    @contextlib.contextmanager
    def _tracked(self, conn: psycopg.Connection[Any] | sqlite3.Connection) -> Iterator[None]:
        with self._lock:
            if self._closed:
                raise StoreUnavailableError("shutting down")
            self._running.add(conn)
        try:
            yield
        finally:
            with self._lock:
                self._running.discard(conn)

    def _open_pool(self) -> ConnectionPool:
        with self._lock:
            if self._closed:
                raise StoreUnavailableError("shutting down")
            if self._pool is None:
                self._pool = ConnectionPool(
                    self.url,
                    min_size=1,
                    max_size=self._pool_size,
                    kwargs=query_connection_kwargs(self.wait_seconds, self.statement_seconds),
                    timeout=self.wait_seconds,
                    name="skship-log-queries",
                    open=True,
                )
            return self._pool


@dataclass(frozen=True)
class Connector:
    """Bounded connections of a QueryRunner for one job (PostgreSQL or SQLite by ``url``)."""

    runner: QueryRunner
    deadline: float

    @property
    def url(self) -> str:
        return self.runner.url

    @property
    def postgres(self) -> bool:
        return not self.url.startswith(sqlite.URL_PREFIX)

    def queries(self) -> Queries:
        return self.runner._queries(self.deadline)

    def connect(self) -> contextlib.AbstractContextManager[Any]:
        """A PostgreSQL connection (from the pool) or a SQLite one, within the bounds."""
        if self.postgres:
            return self.runner._pg_connection(self.deadline)
        return self.runner._sqlite_connection(self.deadline)


def query_connection_kwargs(
    connect_seconds: float, statement_seconds: float | None
) -> dict[str, Any]:
    """Query connections: autocommit, never prepared (each query is planned with its filter
    values), UTC times, bounded connect and (when given) statement time."""
    options = "-c TimeZone=UTC"
    if statement_seconds is not None:
        options += f" -c statement_timeout={max(1, round(statement_seconds * 1000))}"
    return {
        "autocommit": True,
        "prepare_threshold": None,
        "options": options,
        # libpq takes whole seconds, and at least 2.
        "connect_timeout": max(2, math.ceil(connect_seconds)),
    }


def _cancel(
    running: list[psycopg.Connection[Any] | sqlite3.Connection], pool: ConnectionPool | None
) -> None:
    cancellers = [threading.Thread(target=_cancel_one, args=(c,), daemon=True) for c in running]
    for thread in cancellers:
        thread.start()
    for thread in cancellers:
        thread.join(CANCEL_SECONDS)
    if pool is not None:
        pool.close(timeout=CANCEL_SECONDS)


def _cancel_one(conn: psycopg.Connection[Any] | sqlite3.Connection) -> None:
    with contextlib.suppress(Exception):  # it may have finished meanwhile, or the server be gone
        if isinstance(conn, sqlite3.Connection):
            conn.interrupt()
        else:
            conn.cancel_safe(timeout=CANCEL_SECONDS)


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark the outcome of a query nobody waits for any more as seen (no asyncio warning)."""
    if not future.cancelled():
        future.exception()
