"""Shared fixtures: a real PostgreSQL database per test session, tiny real models.

PostgreSQL comes from ``DATABASE_URL`` (an admin URL: the session creates and drops its own
database there), else from a throwaway cluster when ``pg_ctl`` exists, else Postgres tests
are skipped loudly; ``REQUIRE_POSTGRES=1`` turns that skip into a failure.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from serving import artifact
from tests.pgcluster import PgCluster, find_pg_bin, throwaway_cluster
from training.data import load_builtin
from training.train import fit, save


def _with_dbname(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{dbname}"))


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """A URL with the right to create databases and roles."""
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgresql://", "postgres://")):
        yield url
        return
    if find_pg_bin() is not None:
        cluster = PgCluster()
        try:
            cluster.start()
            yield cluster.url
        finally:
            cluster.destroy()
        return
    reason = "PostgreSQL tests need DATABASE_URL or pg_ctl/initdb on PATH; none found"
    if os.environ.get("REQUIRE_POSTGRES") == "1":
        pytest.fail(f"REQUIRE_POSTGRES=1: {reason}")
    pytest.skip(f"SKIPPING POSTGRES TESTS: {reason}")


@pytest.fixture
def pg_url(pg_admin_url: str) -> Iterator[str]:
    """URL of a fresh, empty database for one test, dropped afterwards."""
    dbname = f"skship_t_{secrets.token_hex(6)}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    try:
        yield _with_dbname(pg_admin_url, dbname)
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry with one current breast-cancer LogisticRegression version, trained for real.

    Session-scoped and shared: tests that change the registry make their own copy
    (``shutil.copytree``) or train into their own ``tmp_path``.
    """
    root = tmp_path_factory.mktemp("models")
    dataset = load_builtin("breast_cancer")
    trained = fit(dataset, seed=0, cv_folds=2)
    path = save(trained, dataset, root, name="breast_cancer")
    artifact.write_current(root, "breast_cancer", path.name)
    return root


@pytest.fixture(scope="module")
def cluster() -> Iterator[PgCluster]:
    """A throwaway PostgreSQL cluster a fault-test module may stop, kill and restart."""
    if find_pg_bin() is None:
        reason = "fault tests need the PostgreSQL server binaries (initdb, pg_ctl)"
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail(f"REQUIRE_POSTGRES=1: {reason}")
        pytest.skip(f"SKIPPING: {reason}")
    with throwaway_cluster(fsync=True) as pg:
        yield pg
