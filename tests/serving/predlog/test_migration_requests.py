"""Migration 0004 carries a table of logged rows (one per instance) over to one row per
request, and the view gives every old row back (docs/log-layout.md)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import numpy as np
import orjson
import psycopg

from serving.predlog import lines, migrations
from serving.predlog import sql as sql_module
from serving.predlog.records import ModelSchema
from tests.serving.predlog.helpers import (
    FEATURES,
    SCHEMA,
    make_record,
    migrate,
    open_started,
    query,
)

_COLUMNS = (
    "request_id, row_index, created_at, model_name, model_version, features::jsonb,"
    " prediction, probabilities::jsonb, latency_ms, client_id, client_request_id"
)


def _migrate_to(url: str, last: int) -> None:
    """Apply the shipped migrations up to ``last``, as a server of that time did."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql_module.PG_CREATE_MIGRATIONS_TABLE)
        for migration in migrations.available("postgresql"):
            if migration.version > last:
                break
            with conn.transaction():
                conn.execute(migration.sql)
                conn.execute(
                    sql_module.PG_RECORD_MIGRATION,
                    {"version": migration.version, "name": migration.name,
                     "checksum": migration.checksum},
                )  # fmt: skip


def _old_rows(url: str) -> None:
    """Rows as servers before 0004 logged them: COPY text rows from their own encoder, plus
    typed rows, a regressor's and a classifier's without probabilities."""
    records = [
        make_record(rows=1 + i % 7, seed=i, client_id="ann" if i % 3 else None) for i in range(40)
    ]
    records[0] = replace(records[0], client_request_id="order-1")
    regressor = ModelSchema("diabetes", "r1", FEATURES[:10], None)
    records += [make_record(rows=3, schema=regressor, seed=100 + i) for i in range(3)]
    text = b"".join(lines.RowEncoder(r.model).encode(r, lines.TimeText()) for r in records)
    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY predictions ({sql_module.COLUMNS}) FROM STDIN") as copy:
            copy.write(text)
        typed = str(uuid.uuid4())
        for index, features in enumerate(
            [
                {"island": "Biscoe", "bill": None, "flipper": 181.0, "tagged": True},
                {"island": "Dream", "bill": 39.5, "flipper": 190.0, "tagged": False},
            ]
        ):
            cur.execute(
                "INSERT INTO predictions (request_id, row_index, created_at, model_name,"
                " model_version, features, prediction, probabilities, latency_ms)"
                " VALUES (%s, %s, '2026-11-28 12:00:00.5+00', 'penguins', 'v1', %s::json, %s,"
                " %s::json, 2.5)",
                (typed, index, _json(features), "Adelie",
                 _json({"Adelie": 0.75, "Gentoo": 0.25})),
            )  # fmt: skip
        for label in ("yes", "no", "yes"):
            cur.execute(
                "INSERT INTO predictions (request_id, row_index, created_at, model_name,"
                " model_version, features, prediction, latency_ms)"
                " VALUES (gen_random_uuid(), 0, now(), 'svc', 's1', '{\"a\": 1.5}', %s, 1.0)",
                (label,),
            )


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _normalised(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Regressors' predictions compare as numbers (``12.0`` was logged, ``12`` is printed)."""
    out = []
    for row in rows:
        prediction = float(row[6]) if row[3] == "diabetes" else row[6]
        out.append((*row[:6], prediction, *row[7:]))
    return sorted(out, key=lambda r: (str(r[0]), r[1]))


def test_existing_rows_come_back_through_the_view(pg_url: str) -> None:
    _migrate_to(pg_url, 3)
    _old_rows(pg_url)
    before = _normalised(query(pg_url, f"SELECT {_COLUMNS} FROM predictions"))
    assert len(before) == sum(1 + i % 7 for i in range(40)) + 9 + 2 + 3

    migrate(pg_url)  # what `python -m serving migrate` runs: 0004 and later

    after = _normalised(query(pg_url, f"SELECT {_COLUMNS} FROM predictions"))
    assert after == before
    kinds = query(
        pg_url, "SELECT feature_kinds, classes FROM prediction_models WHERE model_name = 'penguins'"
    )
    assert kinds == [(["category", "number", "number", "boolean"], ["Adelie", "Gentoo"])]
    [(requests,)] = query(pg_url, "SELECT count(*) FROM prediction_requests")
    assert requests == 40 + 3 + 1 + 3


def test_a_version_logged_before_keeps_its_key_after(pg_url: str, tmp_path: Any) -> None:
    _migrate_to(pg_url, 3)
    _old_rows(pg_url)
    migrate(pg_url)
    log = open_started(pg_url, tmp_path / "spool")
    log.append([make_record(rows=2, seed=7)])
    log.close(timeout=10)
    [(models,)] = query(
        pg_url, "SELECT count(*) FROM prediction_models WHERE model_name = %s", (SCHEMA.name,)
    )
    assert models == 1
    values = query(
        pg_url,
        "SELECT feature_values[1][1] FROM predictions WHERE model_name = %s",
        (SCHEMA.name,),
    )
    assert all(isinstance(v, float) and np.isfinite(v) for (v,) in values)
