"""Every SQL statement of the prediction log, for both stores; values are always bound.

PostgreSQL statements use ``%(name)s`` parameters (psycopg), SQLite ones ``:name``
(sqlite3). Optional filters are written ``(:x IS NULL OR column = :x)`` so one statement
serves every combination; PostgreSQL plans each execution with its values (the query
connections never prepare statements), so an absent filter costs nothing.
"""

from __future__ import annotations

COLUMN_NAMES = (
    "request_id", "row_index", "created_at", "model_name", "model_version",
    "features", "prediction", "probabilities", "latency_ms", "client_id", "client_request_id",
)  # fmt: skip
"""In the order of a spooled row's fields (serving/predlog/lines.py)."""
COLUMNS = ", ".join(COLUMN_NAMES)

# -- migrations --------------------------------------------------------------------------

PG_MIGRATION_LOCK = "SELECT pg_advisory_xact_lock(%(key)s)"
PG_MIGRATIONS_TABLE_EXISTS = "SELECT to_regclass('schema_migrations') IS NOT NULL"
PG_CREATE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""
PG_APPLIED_MIGRATIONS = "SELECT version, name, checksum FROM schema_migrations ORDER BY version"
PG_RECORD_MIGRATION = """
INSERT INTO schema_migrations (version, name, checksum)
VALUES (%(version)s, %(name)s, %(checksum)s)"""

SQLITE_BEGIN_EXCLUSIVE = "BEGIN IMMEDIATE"
SQLITE_CREATE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    checksum   TEXT    NOT NULL,
    applied_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
)"""
SQLITE_APPLIED_MIGRATIONS = PG_APPLIED_MIGRATIONS
SQLITE_RECORD_MIGRATION = """
INSERT INTO schema_migrations (version, name, checksum) VALUES (:version, :name, :checksum)"""

# -- writing -----------------------------------------------------------------------------

# A batch is copied straight into the table. COPY cannot skip duplicates, so when one is
# there already (a replay after a crash) the batch is copied into a session-private staging
# table instead and moved with INSERT ... ON CONFLICT DO NOTHING.
PG_COPY_DIRECT = f"COPY predictions ({COLUMNS}) FROM STDIN"
PG_CREATE_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS predictions_staging (
    request_id uuid, row_index integer, created_at timestamptz, model_name text,
    model_version text, features json, prediction text, probabilities json,
    latency_ms double precision, client_id text, client_request_id text
) ON COMMIT DELETE ROWS"""
PG_COPY_STAGING = f"COPY predictions_staging ({COLUMNS}) FROM STDIN"
PG_INSERT_FROM_STAGING = f"""
INSERT INTO predictions ({COLUMNS})
SELECT request_id, row_index, created_at, model_name, model_version,
       features, prediction, probabilities, latency_ms, client_id, client_request_id
FROM predictions_staging
ON CONFLICT DO NOTHING"""
PG_INSERT_ROW = f"""
INSERT INTO predictions ({COLUMNS})
VALUES (%(request_id)s, %(row_index)s, %(created_at)s, %(model_name)s,
        %(model_version)s, %(features)s::json, %(prediction)s, %(probabilities)s::json,
        %(latency_ms)s, %(client_id)s, %(client_request_id)s)
ON CONFLICT DO NOTHING"""
PING = "SELECT 1"

SQLITE_INSERT_ROW = f"""
INSERT OR IGNORE INTO predictions ({COLUMNS})
VALUES (:request_id, :row_index, :created_at, :model_name, :model_version, :features,
        :prediction, :probabilities, :latency_ms, :client_id, :client_request_id)"""

# -- queries -----------------------------------------------------------------------------

PG_PAGE = f"""
SELECT {COLUMNS}
FROM predictions
WHERE (%(since)s::timestamptz IS NULL OR created_at >= %(since)s)
  AND (%(until)s::timestamptz IS NULL OR created_at < %(until)s)
  AND (%(model_version)s::text IS NULL OR model_version = %(model_version)s)
  AND (%(after_created_at)s::timestamptz IS NULL
       OR (created_at, request_id, row_index)
          < (%(after_created_at)s, %(after_request_id)s::uuid, %(after_row_index)s::integer))
ORDER BY created_at DESC, request_id DESC, row_index DESC
LIMIT %(limit)s"""

SQLITE_PAGE = f"""
SELECT {COLUMNS}
FROM predictions
WHERE (:since IS NULL OR created_at >= :since)
  AND (:until IS NULL OR created_at < :until)
  AND (:model_version IS NULL OR model_version = :model_version)
  AND (:after_created_at IS NULL
       OR (created_at, request_id, row_index)
          < (:after_created_at, :after_request_id, :after_row_index))
ORDER BY created_at DESC, request_id DESC, row_index DESC
LIMIT :limit"""

_PG_FILTERS = """
WHERE (%(since)s::timestamptz IS NULL OR created_at >= %(since)s)
  AND (%(until)s::timestamptz IS NULL OR created_at < %(until)s)
  AND (%(model_version)s::text IS NULL OR model_version = %(model_version)s)"""
_SQLITE_FILTERS = """
WHERE (:since IS NULL OR created_at >= :since)
  AND (:until IS NULL OR created_at < :until)
  AND (:model_version IS NULL OR model_version = :model_version)"""

# Latency is the request's, repeated on each of its rows: percentiles count requests
# (row_index = 0); counts, classes and probabilities count rows (instances).
PG_STATS = f"""
SELECT model_name, model_version,
       count(*) AS rows,
       count(*) FILTER (WHERE row_index = 0) AS requests,
       avg((SELECT max(value::double precision) FROM json_each_text(probabilities)))
           AS mean_top_probability,
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY latency_ms)
           FILTER (WHERE row_index = 0) AS latency_percentiles,
       min(created_at) AS first_at,
       max(created_at) AS last_at
FROM predictions{_PG_FILTERS}
GROUP BY model_name, model_version
ORDER BY max(created_at) DESC"""
PG_CLASS_COUNTS = f"""
SELECT model_name, model_version, prediction, count(*) AS rows
FROM predictions{_PG_FILTERS}
GROUP BY model_name, model_version, prediction
ORDER BY model_name, model_version, count(*) DESC, prediction"""

SQLITE_STATS = f"""
SELECT model_name, model_version,
       count(*) AS rows,
       sum(row_index = 0) AS requests,
       avg((SELECT max(value) FROM json_each(probabilities))) AS mean_top_probability,
       min(created_at) AS first_at,
       max(created_at) AS last_at
FROM predictions{_SQLITE_FILTERS}
GROUP BY model_name, model_version
ORDER BY max(created_at) DESC"""
SQLITE_CLASS_COUNTS = f"""
SELECT model_name, model_version, prediction, count(*) AS rows
FROM predictions{_SQLITE_FILTERS}
GROUP BY model_name, model_version, prediction
ORDER BY model_name, model_version, count(*) DESC, prediction"""
SQLITE_LATENCIES = f"""
SELECT latency_ms
FROM predictions{_SQLITE_FILTERS}
  AND row_index = 0 AND model_name = :model_name AND model_version = :version
ORDER BY latency_ms"""

# Export, oldest first. On PostgreSQL the server renders the lines: CSV natively, JSON lines
# through a CSV "quote" that JSON text never contains, so no line is ever quoted.
_EXPORT_SELECT = f"SELECT {COLUMNS} FROM predictions{_PG_FILTERS}"
_EXPORT_ORDER = "\nORDER BY created_at, request_id, row_index"
PG_EXPORT_CSV = f"COPY ({_EXPORT_SELECT}{_EXPORT_ORDER}) TO STDOUT WITH (FORMAT csv, HEADER)"
PG_EXPORT_JSONL = f"""COPY (
SELECT json_build_object(
    'request_id', request_id, 'row_index', row_index, 'created_at', created_at,
    'model_name', model_name, 'model_version', model_version, 'features', features,
    'prediction', prediction, 'probabilities', probabilities, 'latency_ms', latency_ms,
    'client_id', client_id, 'client_request_id', client_request_id)
FROM predictions{_PG_FILTERS}{_EXPORT_ORDER}
) TO STDOUT WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"""
SQLITE_EXPORT = f"SELECT {COLUMNS} FROM predictions{_SQLITE_FILTERS}{_EXPORT_ORDER}"

# -- feedback (labels) -------------------------------------------------------------------

# A batch of labels is upserted: for each row the label received last wins, so a replayed
# older batch changes nothing. PostgreSQL's ON CONFLICT DO UPDATE may touch a row once per
# statement, so the staging table's labels are reduced to the last one per row first (seq:
# the record's position in the batch, for labels received at the same instant).
PG_CREATE_FEEDBACK_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS feedback_staging (
    seq integer, request_id uuid, row_index integer, label json, received_at timestamptz,
    client_id text
) ON COMMIT DELETE ROWS"""
PG_COPY_FEEDBACK_STAGING = """
COPY feedback_staging (seq, request_id, row_index, label, received_at, client_id) FROM STDIN"""
PG_UPSERT_FEEDBACK = """
INSERT INTO feedback AS f (request_id, row_index, label, received_at, client_id)
SELECT DISTINCT ON (request_id, row_index) request_id, row_index, label, received_at, client_id
FROM feedback_staging
ORDER BY request_id, row_index, received_at DESC, seq DESC
ON CONFLICT (request_id, row_index) DO UPDATE
SET label = EXCLUDED.label, received_at = EXCLUDED.received_at, client_id = EXCLUDED.client_id
WHERE f.received_at <= EXCLUDED.received_at"""

SQLITE_UPSERT_FEEDBACK = """
INSERT INTO feedback (request_id, row_index, label, received_at, client_id)
VALUES (:request_id, :row_index, :label, :received_at, :client_id)
ON CONFLICT (request_id, row_index) DO UPDATE
SET label = excluded.label, received_at = excluded.received_at, client_id = excluded.client_id
WHERE feedback.received_at <= excluded.received_at"""
