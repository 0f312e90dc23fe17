"""Migrations: shipped as package data, recorded, idempotent, safe when servers race."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from serving.predlog import migrations
from serving.predlog import sql as sql_module
from serving.predlog import sqlite as sqlite_store
from serving.predlog.log import is_postgres
from serving.predlog.postgres import PostgresStore
from serving.predlog.sqlite import SqliteStore
from tests.serving.predlog.helpers import query

ROOT = Path(__file__).resolve().parents[3]


def _prepare(url: str) -> None:
    store = PostgresStore(url) if is_postgres(url) else SqliteStore(url)
    store.open()
    try:
        store.prepare()
    finally:
        store.close()


def _recorded(url: str) -> list[int]:
    return [int(v) for (v,) in query(url, "SELECT version FROM schema_migrations ORDER BY 1")]


def _dialect(url: str) -> str:
    return "postgresql" if is_postgres(url) else "sqlite"


def test_startup_applies_and_records_every_migration(store_url: str) -> None:
    _prepare(store_url)
    shipped = [m.version for m in migrations.available(_dialect(store_url))]
    assert shipped[0] == 1
    assert _recorded(store_url) == shipped
    assert query(store_url, "SELECT count(*) FROM predictions") == [(0,)]


def test_client_request_id_migration_carries_existing_rows_over(store_url: str) -> None:
    first = migrations.available(_dialect(store_url))[0]
    if is_postgres(store_url):
        with psycopg.connect(store_url, autocommit=True) as conn:
            conn.execute(first.sql.encode())
            conn.execute(_OLD_ROW.replace("?", "%s"), _old_row_values())
    else:
        conn_sqlite = sqlite_store.connect(store_url, create=True)
        for statement in migrations._sqlite_statements(first.sql):
            conn_sqlite.execute(statement)
        conn_sqlite.execute(_OLD_ROW, _old_row_values())
        conn_sqlite.close()
    # 0001 was applied by hand (as a server of the previous release would have): record it.
    record = "INSERT INTO schema_migrations (version, name, checksum) VALUES (1, ?, ?)"
    _record_first(store_url, record, first)
    _prepare(store_url)
    assert _recorded(store_url) == [m.version for m in migrations.available(_dialect(store_url))]
    rows = query(store_url, "SELECT row_index, prediction, client_request_id FROM predictions")
    assert rows == [(0, "benign", None)]


_OLD_ROW = """INSERT INTO predictions (request_id, row_index, created_at, model_name,
    model_version, features, prediction, probabilities, latency_ms, client_id)
VALUES (?, 0, ?, 'm', 'v', '{"a": 1.0}', 'benign', NULL, 1.5, NULL)"""


def _old_row_values() -> tuple[str, str]:
    return ("0190a3a0-0000-7000-8000-000000000001", "2026-11-28T00:00:00.000000Z")


def _record_first(url: str, statement: str, first: migrations.Migration) -> None:
    if is_postgres(url):
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql_module.PG_CREATE_MIGRATIONS_TABLE)
            conn.execute(statement.replace("?", "%s"), (first.name, first.checksum))
        return
    conn_sqlite = sqlite_store.connect(url)
    conn_sqlite.execute(sql_module.SQLITE_CREATE_MIGRATIONS_TABLE)
    conn_sqlite.execute(statement, (first.name, first.checksum))
    conn_sqlite.close()


def test_migrating_twice_changes_nothing(store_url: str) -> None:
    _prepare(store_url)
    before = query(store_url, "SELECT version, checksum, applied_at FROM schema_migrations")
    _prepare(store_url)
    assert query(store_url, "SELECT version, checksum, applied_at FROM schema_migrations") == before


@pytest.mark.slow
def test_servers_starting_at_once_apply_each_migration_once(store_url: str, tmp_path: Path) -> None:
    go = tmp_path / "go"
    racers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.serving.predlog.migrate_process", store_url, str(go)],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    go.touch()
    for racer in racers:
        _, stderr = racer.communicate(timeout=60)
        assert racer.returncode == 0, stderr
    assert _recorded(store_url) == [m.version for m in migrations.available(_dialect(store_url))]


def test_a_migration_changed_after_it_was_applied_is_refused(store_url: str) -> None:
    _prepare(store_url)
    if is_postgres(store_url):
        with psycopg.connect(store_url) as conn:
            conn.execute("UPDATE schema_migrations SET checksum = 'edited'")
    else:
        with sqlite3.connect(store_url.removeprefix("sqlite:///")) as conn:
            conn.execute("UPDATE schema_migrations SET checksum = 'edited'")
    with pytest.raises(migrations.SchemaError, match="differs"):
        _prepare(store_url)


def test_sqlite_store_creates_its_folder_at_start_not_before(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'deep' / 'er' / 'predictions.db'}"
    store = SqliteStore(url)
    assert not (tmp_path / "deep").exists()
    store.open()
    store.close()
    assert (tmp_path / "deep" / "er" / "predictions.db").exists()


@pytest.mark.slow
def test_wheel_ships_the_migrations_and_the_roles_script(tmp_path: Path) -> None:
    source = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for name in ("serving", "training"):
        shutil.copytree(ROOT / name, source / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), "."],
        cwd=source,
        check=True,
    )
    [wheel] = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for dialect in ("postgresql", "sqlite"):
        for migration in migrations.available(dialect):
            expected = (
                f"serving/predlog/migrations/{dialect}/{migration.version:04d}_{migration.name}.sql"
            )
            assert expected in names
    assert "serving/predlog/sql/roles.sh" in names


_SLOW = {
    "postgresql": "SELECT pg_sleep(1); CREATE TABLE slow (x integer);",
    "sqlite": (
        "CREATE TABLE slow AS WITH RECURSIVE c(x) AS"
        " (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000) SELECT max(x) AS x FROM c;"
    ),
}


def test_concurrent_migrations_wait_for_each_other(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow migration keeps the window open: the second migrator must wait, then skip it."""
    dialect = _dialect(store_url)
    slow = migrations.Migration(1, "slow", _SLOW[dialect])
    monkeypatch.setattr(migrations, "available", lambda _dialect: [slow])

    def migrate() -> list[migrations.Migration]:
        if dialect == "postgresql":
            with psycopg.connect(store_url, autocommit=True) as conn:
                return migrations.migrate_postgres(conn)
        lite = sqlite_store.connect(store_url, create=True, timeout=60)
        try:
            return migrations.migrate_sqlite(lite)
        finally:
            lite.close()

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(migrate)
        time.sleep(0.2)
        second = pool.submit(migrate)
        applied = [len(first.result(timeout=60)), len(second.result(timeout=60))]
    assert applied == [1, 0]
    assert _recorded(store_url) == [1]
