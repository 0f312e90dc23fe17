"""The two PostgreSQL roles of serving/predlog/sql/roles.sh: a writer that can only insert,
a reader that can only select. Roles belong to a whole cluster, so these tests use their own.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import time
import uuid
from importlib import resources
from pathlib import Path

import psycopg
import pytest
from psycopg import errors

from serving.predlog import migrations
from serving.predlog.feedback import FeedbackRecord
from serving.predlog.postgres import PostgresStore
from serving.predlog.queries import Filters
from tests.pgcluster import PgCluster
from tests.serving.predlog.helpers import make_record, open_started, stored_keys, wait_for_rows

pytestmark = pytest.mark.postgres

ROLES_SCRIPT = Path(str(resources.files("serving.predlog").joinpath("sql", "roles.sh")))


def _run_roles_script(cluster: PgCluster, dbname: str) -> None:
    env = {
        **os.environ,
        "PGHOST": "127.0.0.1",
        "PGPORT": str(cluster.port),
        "PGUSER": "postgres",
        "PGDATABASE": dbname,
        "SKSHIP_WRITER_PASSWORD": "writer-secret",
        "SKSHIP_READER_PASSWORD": "reader-secret",
    }
    subprocess.run(["bash", str(ROLES_SCRIPT)], env=env, check=True, capture_output=True)


def _migrate(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        migrations.migrate_postgres(conn)


def _new_database(cluster: PgCluster) -> str:
    dbname = f"roles_{secrets.token_hex(4)}"
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    return dbname


@pytest.fixture
def database(cluster: PgCluster) -> str:
    """A database where the roles script ran first, then the owner migrated (compose's order)."""
    dbname = _new_database(cluster)
    _run_roles_script(cluster, dbname)
    _migrate(cluster.url_for(dbname))
    return dbname


def _writer(cluster: PgCluster, dbname: str) -> str:
    return f"postgresql://skship_writer:writer-secret@127.0.0.1:{cluster.port}/{dbname}"


def _reader(cluster: PgCluster, dbname: str) -> str:
    return f"postgresql://skship_reader:reader-secret@127.0.0.1:{cluster.port}/{dbname}"


ROW = (
    "INSERT INTO prediction_requests (request_id, created_at, model_key, row_count, features,"
    " latency_ms) VALUES (gen_random_uuid(), now(), 1, 1, '{{1.5}}', 1.0)"
)


def _denied(url: str, statement: str) -> None:
    with psycopg.connect(url) as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute(statement)


def test_log_writes_as_writer_and_queries_as_reader(
    cluster: PgCluster, database: str, tmp_path: Path
) -> None:
    record = make_record(rows=2)
    log = open_started(
        _writer(cluster, database),
        tmp_path / "spool",
        database_read_url=_reader(cluster, database),
    )
    try:
        log.append([record])
        assert wait_for_rows(cluster.url_for(database), 2) == 2
        page = asyncio.run(log.query_page(Filters(), 10, None))
    finally:
        log.close(timeout=10)
    assert {(item.request_id, item.row_index) for item in page.items} == set(
        stored_keys(cluster.url_for(database))
    )


def test_writer_cannot_select(cluster: PgCluster, database: str) -> None:
    _denied(_writer(cluster, database), "SELECT * FROM predictions")
    _denied(_writer(cluster, database), "SELECT features FROM prediction_requests")
    _denied(_writer(cluster, database), "SELECT feature_names FROM prediction_models")


def test_writer_cannot_update(cluster: PgCluster, database: str) -> None:
    _denied(_writer(cluster, database), "UPDATE prediction_requests SET latency_ms = 0")
    _denied(_writer(cluster, database), "UPDATE prediction_models SET classes = NULL")


def test_writer_cannot_delete(cluster: PgCluster, database: str) -> None:
    _denied(_writer(cluster, database), "DELETE FROM prediction_requests")
    _denied(_writer(cluster, database), "DELETE FROM prediction_models")


def test_writer_cannot_truncate(cluster: PgCluster, database: str) -> None:
    _denied(_writer(cluster, database), "TRUNCATE prediction_requests")


def test_writer_cannot_create_tables(cluster: PgCluster, database: str) -> None:
    _denied(_writer(cluster, database), "CREATE TABLE public.stolen (x integer)")


def test_writer_cannot_alter_the_log(cluster: PgCluster, database: str) -> None:
    with (
        psycopg.connect(_writer(cluster, database)) as conn,
        pytest.raises(errors.InsufficientPrivilege),
    ):
        conn.execute("ALTER TABLE prediction_requests ADD COLUMN x integer")


def test_writer_can_insert(cluster: PgCluster, database: str) -> None:
    with psycopg.connect(_writer(cluster, database)) as conn:
        conn.execute(ROW)
    assert len(stored_keys(cluster.url_for(database))) == 1


def test_reader_can_select(cluster: PgCluster, database: str) -> None:
    with psycopg.connect(_reader(cluster, database)) as conn:
        assert conn.execute("SELECT count(*) FROM predictions").fetchone() == (0,)


def test_reader_cannot_insert(cluster: PgCluster, database: str) -> None:
    _denied(_reader(cluster, database), ROW)


def test_reader_cannot_update(cluster: PgCluster, database: str) -> None:
    _denied(_reader(cluster, database), "UPDATE prediction_requests SET latency_ms = 0")


def test_reader_cannot_delete(cluster: PgCluster, database: str) -> None:
    _denied(_reader(cluster, database), "DELETE FROM prediction_requests")


def test_reader_cannot_create_tables(cluster: PgCluster, database: str) -> None:
    _denied(_reader(cluster, database), "CREATE TABLE public.stolen (x integer)")


def test_roles_script_after_migrate_grants_the_same(cluster: PgCluster) -> None:
    dbname = _new_database(cluster)
    _migrate(cluster.url_for(dbname))
    _run_roles_script(cluster, dbname)
    _run_roles_script(cluster, dbname)  # idempotent
    with psycopg.connect(_writer(cluster, dbname)) as conn:
        conn.execute(ROW)
    _denied(_writer(cluster, dbname), "SELECT * FROM predictions")
    _denied(_reader(cluster, dbname), ROW)


def test_writer_on_an_unmigrated_database_names_the_migrate_command(
    cluster: PgCluster, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dbname = _new_database(cluster)
    _run_roles_script(cluster, dbname)
    log = open_started(_writer(cluster, dbname), tmp_path / "spool")
    try:
        status = log.status()
    finally:
        log.close(timeout=1)
    # The server starts (records spool) but is not ready, and the log says what to run.
    assert status.store_problem is not None
    assert "tables are missing or out of date" in status.store_problem
    assert "python -m serving migrate" in caplog.text


LABEL = (
    "INSERT INTO feedback (request_id, row_index, label, received_at)"
    " VALUES (gen_random_uuid(), 0, '\"a\"', now())"
)


def _upsert_as_writer(cluster: PgCluster, dbname: str) -> None:
    store = PostgresStore(_writer(cluster, dbname))
    store.open()
    try:
        rid = str(uuid.uuid4())
        now = time.time()
        assert store.write_feedback([FeedbackRecord(rid, 0, "malignant", now)]) == 1
        assert store.write_feedback([FeedbackRecord(rid, 0, "benign", now + 1)]) == 1
    finally:
        store.close()
    with psycopg.connect(cluster.url_for(dbname)) as conn:
        assert conn.execute("SELECT label #>> '{}' FROM feedback").fetchall() == [("benign",)]


def test_writer_upserts_labels(cluster: PgCluster, database: str) -> None:
    _upsert_as_writer(cluster, database)


def test_writer_cannot_delete_labels(cluster: PgCluster, database: str) -> None:
    _denied(_writer(cluster, database), "DELETE FROM feedback")


def test_writer_cannot_rekey_labels(cluster: PgCluster, database: str) -> None:
    _denied(_writer(cluster, database), "UPDATE feedback SET row_index = 1")


def test_reader_can_select_labels(cluster: PgCluster, database: str) -> None:
    with psycopg.connect(_reader(cluster, database)) as conn:
        assert conn.execute("SELECT count(*) FROM feedback").fetchone() == (0,)


def test_reader_cannot_insert_labels(cluster: PgCluster, database: str) -> None:
    _denied(_reader(cluster, database), LABEL)


def test_roles_script_after_migrate_grants_the_feedback_rights(cluster: PgCluster) -> None:
    dbname = _new_database(cluster)
    _migrate(cluster.url_for(dbname))
    _run_roles_script(cluster, dbname)
    _upsert_as_writer(cluster, dbname)
    _denied(_writer(cluster, dbname), "DELETE FROM feedback")
    _denied(_reader(cluster, dbname), LABEL)
