"""Fixtures for the prediction log: one URL per store, so contract tests run on both."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pgcluster import PgCluster, find_pg_bin


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty store of each kind: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'predictions.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture(scope="module")
def cluster() -> Iterator[PgCluster]:
    """A throwaway PostgreSQL cluster this module may stop, kill and restart."""
    if find_pg_bin() is None:
        reason = "fault tests need the PostgreSQL server binaries (initdb, pg_ctl)"
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail(f"REQUIRE_POSTGRES=1: {reason}")
        pytest.skip(f"SKIPPING: {reason}")
    pg = PgCluster(fsync=True)
    try:
        pg.start()
        yield pg
    finally:
        pg.destroy()
