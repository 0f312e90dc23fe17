"""The prediction stores behind skship (b) and (c), and counting what reached them.

PostgreSQL is a throwaway cluster (tests/pgcluster.py: default settings, fsync on) whose
postmaster and every backend it forks are pinned to the server CPU, so the database's
work is paid from the same core as the server's. Each skship instance gets a fresh
database (or SQLite file), so rows stored must equal rows that instance served.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

from bench import procs
from tests.pgcluster import PgCluster

# The benchmark's only SQL: counting and creating empty databases.
COUNT_ROWS = "SELECT count(*) FROM predictions"


class PinnedPostgres:
    """A throwaway cluster on a free port, pinned to ``cpu``; one database per instance."""

    def __init__(self, cpu: int | None) -> None:
        self.cluster = PgCluster(fsync=True)
        self.cluster.start()
        pid = self.cluster.postmaster_pid()
        if cpu is not None and pid is not None:
            procs.pin(pid, cpu)

    def new_database(self) -> str:
        name = f"bench_{secrets.token_hex(4)}"
        with psycopg.connect(self.cluster.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.cluster.url_for(name)

    def close(self) -> None:
        self.cluster.destroy()


def count_rows(database_url: str) -> int:
    """Rows in ``predictions``; 0 while the table does not exist yet."""
    if database_url.startswith("sqlite:///"):
        path = Path(database_url.removeprefix("sqlite:///"))
        if not path.exists():
            return 0
        with sqlite3.connect(path) as conn:
            try:
                return int(conn.execute(COUNT_ROWS).fetchone()[0])
            except sqlite3.OperationalError:
                return 0
    with psycopg.connect(database_url) as conn:
        try:
            row = conn.execute(COUNT_ROWS).fetchone()
        except psycopg.errors.UndefinedTable:
            return 0
    return int(row[0]) if row else 0


def wait_drained(
    count: Callable[[], int],
    unwritten: Callable[[], bool],
    *,
    timeout: float = 180.0,
    interval: float = 0.5,
) -> tuple[int, float]:
    """Poll until the count stops changing and the server reports nothing unwritten.

    Returns the final count and how long the drain took after the load stopped.
    """
    started = time.monotonic()
    last = -1
    while True:
        current = count()
        if current == last and not unwritten():
            return current, time.monotonic() - started
        if time.monotonic() - started > timeout:
            return current, time.monotonic() - started
        last = current
        time.sleep(interval)
