"""Carrying a layout-A table over to layout D, tested and timed on a table with rows in it.

Builds today's ``predictions`` table (migration 0001 plus 0002's ``client_request_id``)
with ``rows`` breast-cancer rows in 100-row requests and 1,000 typed penguins rows in
10-row requests, keeps a copy, runs ``MIGRATION`` (what 0004 would hold) in one
transaction and compares every row of the copy with the new ``predictions`` view: same
keys, same JSON (as jsonb), same prediction, probabilities, latency and ids.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg

from bench.layouts import schemas
from bench.layouts.postgres import cpu_seconds
from bench.layouts.text import LayoutA
from bench.layouts.workloads import W1, W2, Model, chunks_of_rows, requests
from tests.pgcluster import PgCluster

MODEL_KEY_SQL = (
    "('x' || left(encode(sha256(convert_to(model_name || E'\\x1f' || model_version,"
    " 'UTF8')), 'hex'), 16))::bit(64)::bigint"
)
"""workloads.Model.key in SQL: the first 8 bytes of sha256(name U+001F version)."""

GRANTS = """
-- The roles of serving/predlog/sql/roles.sh, when they exist: the writer inserts requests
-- and model rows (and reads request ids, for the replay probe); the reader reads.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'skship_writer') THEN
        GRANT INSERT ON prediction_requests, prediction_models TO skship_writer;
        GRANT SELECT (request_id) ON prediction_requests TO skship_writer;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'skship_reader') THEN
        GRANT SELECT ON predictions, prediction_requests, prediction_models TO skship_reader;
    END IF;
END
$$;"""

MIGRATION = f"""
-- Older servers still writing would lose rows inserted after this transaction's snapshot:
-- block their writes (reads go on) until the old table is gone.
LOCK TABLE predictions IN EXCLUSIVE MODE;
SET LOCAL work_mem = '64MB';
{schemas.MODELS_TABLE};
{schemas.D_TABLE.split("CREATE VIEW")[0]}
-- One model row per version, from one of its rows: names and classes in the order the
-- spool wrote them; a feature is a category (or boolean) when that row holds a string
-- (or true/false) for it.
INSERT INTO prediction_models
SELECT {MODEL_KEY_SQL}, v.model_name, v.model_version, f.names, f.kinds, c.classes,
       f.format, c.format
FROM (SELECT model_name, model_version FROM predictions GROUP BY 1, 2) v
CROSS JOIN LATERAL (
    SELECT features, probabilities FROM predictions p
    WHERE p.model_name = v.model_name AND p.model_version = v.model_version LIMIT 1
) one
CROSS JOIN LATERAL (
    SELECT array_agg(key ORDER BY i) AS names, array_agg(kind ORDER BY i) AS kinds,
           '{{' || string_agg(
               replace(to_json(key)::text, '%', '%%') || ':%'
               || CASE WHEN kind = 'category' OR kind = 'boolean'
                       THEN total + textual ELSE i END || '$s',
               ',' ORDER BY i) || '}}' AS format
    FROM (
        SELECT key, i, kind, count(*) OVER () AS total,
               count(*) FILTER (WHERE kind IN ('category', 'boolean')) OVER (ORDER BY i)
                   AS textual
        FROM (
            SELECT key, i, CASE json_typeof(value) WHEN 'string' THEN 'category'
                                WHEN 'boolean' THEN 'boolean' ELSE 'number' END AS kind
            FROM json_each(one.features) WITH ORDINALITY AS e(key, value, i)
        ) typed
    ) ranked
) f
CROSS JOIN LATERAL (
    SELECT array_agg(key ORDER BY i) AS classes,
           '{{' || string_agg(replace(to_json(key)::text, '%', '%%') || ':%s', ','
                             ORDER BY i) || '}}' AS format
    FROM json_each(one.probabilities) WITH ORDINALITY AS e(key, value, i)
) c;

-- One row per request: each row's values put in its version's feature order (by name),
-- then the rows of a request stacked in row order.
INSERT INTO prediction_requests
SELECT p.request_id, min(p.created_at), m.model_key, count(*)::integer,
       array_agg(v.numbers ORDER BY p.row_index),
       array_agg((array_position(m.classes, p.prediction) - 1)::smallint ORDER BY p.row_index)
           FILTER (WHERE m.classes IS NOT NULL),
       array_agg(p.prediction::float8 ORDER BY p.row_index) FILTER (WHERE m.classes IS NULL),
       array_agg(v.probabilities ORDER BY p.row_index) FILTER (WHERE m.classes IS NOT NULL),
       min(p.latency_ms),
       array_agg(v.texts ORDER BY p.row_index) FILTER (WHERE v.texts IS NOT NULL),
       min(p.client_id), min(p.client_request_id)
FROM predictions p
JOIN prediction_models m USING (model_name, model_version)
CROSS JOIN LATERAL (
    SELECT array_agg(CASE WHEN json_typeof(e.value) = 'number' THEN e.value::text::float8
                          ELSE 'NaN' END ORDER BY k.i) AS numbers,
           string_agg(CASE WHEN k.kind <> 'number' THEN e.value::text END, E'\\x1f'
                      ORDER BY k.i) AS texts,
           (SELECT array_agg(pe.value::text::float8 ORDER BY c.i)
            FROM unnest(m.classes) WITH ORDINALITY AS c(name, i)
            JOIN json_each(p.probabilities) pe ON pe.key = c.name) AS probabilities
    FROM unnest(m.feature_names, m.feature_kinds) WITH ORDINALITY AS k(name, kind, i)
    LEFT JOIN json_each(p.features) e ON e.key = k.name
) v
GROUP BY p.request_id, m.model_key, m.classes;

DROP TABLE predictions;
CREATE VIEW predictions AS{schemas.D_TABLE.split("CREATE VIEW predictions AS")[1]}
{GRANTS}
"""


def _fill(conn: psycopg.Connection[Any], model: Model, rows: int, per_request: int) -> None:
    encoder = LayoutA(model)
    made = requests(model, rows // per_request, per_request, start=time.time() - 86400, seed=9)
    for chunk in chunks_of_rows(made, 5000):
        statement = f"COPY predictions ({encoder.columns}) FROM STDIN"
        with conn.transaction(), conn.cursor() as cur, cur.copy(statement) as copy:
            copy.write(encoder.encode(chunk))


AFTER = """
CREATE TEMP TABLE after AS
SELECT request_id, row_index, created_at, model_name, model_version, features::jsonb AS features,
       prediction, probabilities::jsonb AS probabilities, latency_ms, client_request_id
FROM predictions"""
COMPARE = """
SELECT count(*) AS copied,
       count(*) FILTER (
           WHERE a.features = b.features::jsonb
             AND a.prediction = b.prediction
             AND a.probabilities IS NOT DISTINCT FROM b.probabilities::jsonb
             AND a.created_at = b.created_at AND a.latency_ms = b.latency_ms
             AND a.model_name = b.model_name AND a.model_version = b.model_version
             AND a.client_request_id IS NOT DISTINCT FROM b.client_request_id
       ) AS equal
FROM before b JOIN after a USING (request_id, row_index)"""


def run(url: str | None, rows: int, log: Callable[[str], None]) -> dict[str, Any]:
    cluster: PgCluster | None = None
    if url is None:
        cluster = PgCluster(fsync=True)
        cluster.start()
        url = cluster.url
    base = url.rsplit("/", 1)[0]
    try:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute("DROP DATABASE IF EXISTS layouts_migrate")
            admin.execute("CREATE DATABASE layouts_migrate")
        with psycopg.connect(f"{base}/layouts_migrate", autocommit=True) as conn:
            conn.execute(schemas.A_TABLE)
            _fill(conn, W1, rows, 100)
            _fill(conn, W2, 1000, 10)
            conn.execute("CREATE TABLE before AS SELECT * FROM predictions")
            conn.execute("VACUUM ANALYZE")
            total = rows + 1000
            pid = conn.execute("SELECT pg_backend_pid()").fetchone()
            backend = int(pid[0]) if pid else 0
            cpu = cpu_seconds(backend)
            started = time.perf_counter()
            with conn.transaction():
                conn.execute(MIGRATION)
            seconds = time.perf_counter() - started
            cpu = cpu_seconds(backend) - cpu
            conn.execute("VACUUM ANALYZE")
            conn.execute(AFTER)  # the view read once, then compared with a hash join
            row = conn.execute(COMPARE).fetchone()
            copied, equal = (int(v) for v in row) if row else (0, 0)
            count = conn.execute("SELECT count(*) FROM predictions").fetchone()
            result = {
                "rows": total,
                "seconds": round(seconds, 1),
                "backend_cpu_s": round(cpu, 1),
                "copied": copied,
                "equal": equal,
                "view_rows": int(count[0]) if count else 0,
            }
        log(f"migrate A -> D: {result}")
        if not copied == equal == total == result["view_rows"]:
            raise AssertionError(f"the migration lost or changed rows: {result}")
        return result
    finally:
        if cluster is not None:
            cluster.destroy()
        else:
            with psycopg.connect(url, autocommit=True) as admin:
                admin.execute("DROP DATABASE IF EXISTS layouts_migrate")
