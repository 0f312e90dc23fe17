"""Numbered plain-SQL migrations, one folder per dialect, recorded in ``schema_migrations``.

``migrations/<dialect>/NNNN_<name>.sql`` ship as package data. Applying takes a lock that
serialises concurrent servers (a transaction-scoped advisory lock on PostgreSQL, a
``BEGIN IMMEDIATE`` write lock on SQLite), re-reads what is applied under it and runs the
rest in that same transaction: two servers starting at once apply each migration once.
A role that may not run DDL (the writer) only verifies that nothing is pending.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from dataclasses import dataclass
from importlib import resources

import psycopg
from psycopg import errors

from serving.predlog import sql

# Any fixed 64-bit key; it only has to differ from other advisory locks in the database.
_PG_LOCK_KEY = 0x736B73686970  # "skship"
_NAME_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

MIGRATE_HINT = "run `python -m serving migrate --database-url <an owner's URL>`"


class SchemaError(Exception):
    """The database schema is not what this build needs and cannot be made so."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available(dialect: str) -> list[Migration]:
    """The migrations shipped for ``dialect`` ('postgresql' or 'sqlite'), in order."""
    folder = resources.files("serving.predlog").joinpath("migrations", dialect)
    found = []
    for entry in folder.iterdir():
        match = _NAME_RE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.version)


def _pending(
    shipped: list[Migration], applied: list[tuple[int, str, str]], where: str
) -> list[Migration]:
    recorded = {version: checksum for version, _name, checksum in applied}
    for migration in shipped:
        checksum = recorded.get(migration.version)
        if checksum is not None and checksum != migration.checksum:
            raise SchemaError(
                f"migration {migration.version:04d}_{migration.name} in {where} differs from "
                "the one this build ships; migrations must never change once applied"
            )
    return [m for m in shipped if m.version not in recorded]


def _record(migration: Migration) -> dict[str, object]:
    return {"version": migration.version, "name": migration.name, "checksum": migration.checksum}


def migrate_postgres(conn: psycopg.Connection[tuple[object, ...]]) -> list[Migration]:
    """Apply pending migrations (needs DDL rights); returns those this call applied."""
    shipped = available("postgresql")
    with conn.transaction():
        conn.execute(sql.PG_MIGRATION_LOCK, {"key": _PG_LOCK_KEY})
        conn.execute(sql.PG_CREATE_MIGRATIONS_TABLE)
        applied = conn.execute(sql.PG_APPLIED_MIGRATIONS).fetchall()
        pending = _pending(shipped, applied, "the database")  # type: ignore[arg-type]
        for migration in pending:
            conn.execute(migration.sql.encode())
            conn.execute(sql.PG_RECORD_MIGRATION, _record(migration))
    return pending


def prepare_postgres(conn: psycopg.Connection[tuple[object, ...]]) -> list[Migration]:
    """At startup: nothing to do if current, else migrate, else explain who must."""
    shipped = available("postgresql")
    user = conn.info.user
    try:
        with conn.transaction():
            row = conn.execute(sql.PG_MIGRATIONS_TABLE_EXISTS).fetchone()
            exists = bool(row and row[0])
            applied = conn.execute(sql.PG_APPLIED_MIGRATIONS).fetchall() if exists else []
    except errors.InsufficientPrivilege as exc:
        raise SchemaError(f"role {user!r} cannot read schema_migrations: {MIGRATE_HINT}") from exc
    if exists and not _pending(shipped, applied, "the database"):  # type: ignore[arg-type]
        return []
    try:
        return migrate_postgres(conn)
    except errors.InsufficientPrivilege as exc:
        latest = shipped[-1].version if shipped else 0
        raise SchemaError(
            f"the prediction log schema is not current (this build needs migration "
            f"{latest:04d}) and role {user!r} may not apply migrations: {MIGRATE_HINT}"
        ) from exc


def migrate_sqlite(conn: sqlite3.Connection) -> list[Migration]:
    """Apply pending migrations under SQLite's write lock; ``conn`` is in autocommit mode."""
    shipped = available("sqlite")
    conn.execute(sql.SQLITE_BEGIN_EXCLUSIVE)
    try:
        conn.execute(sql.SQLITE_CREATE_MIGRATIONS_TABLE)
        applied = conn.execute(sql.SQLITE_APPLIED_MIGRATIONS).fetchall()
        pending = _pending(shipped, applied, "the database")
        for migration in pending:
            for statement in _sqlite_statements(migration.sql):
                conn.execute(statement)
            conn.execute(sql.SQLITE_RECORD_MIGRATION, _record(migration))
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return pending


def _sqlite_statements(script: str) -> list[str]:
    """Split a script into statements (executescript would commit the open transaction)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip() and not all(
        part.strip().startswith("--") or not part.strip() for part in current.splitlines()
    ):
        raise SchemaError(f"incomplete SQL statement in a migration: {current.strip()[:80]}")
    return statements
