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
"""The columns of ``predictions`` (a view on PostgreSQL, a table on SQLite)."""
COLUMNS = ", ".join(COLUMN_NAMES)
REQUEST_COLUMNS = (
    'request_id, created_at, model_key, row_count, features, labels, "values", '
    "probabilities, latency_ms, feature_texts, client_id, client_request_id"
)
"""prediction_requests' columns in the order of a spooled tuple's fields (frames.py)."""

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

# A batch is copied straight into the table, after the model rows its requests refer to.
# COPY cannot skip duplicates, so when a request is there already (a replay after a crash)
# the batch is copied into a session-private staging table instead and moved with
# INSERT ... ON CONFLICT DO NOTHING, which counts the instances it added.
PG_INSERT_MODEL = """
INSERT INTO prediction_models (model_key, model_name, model_version, feature_names,
    feature_kinds, classes, features_format, probabilities_format)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT DO NOTHING"""
PG_COPY_DIRECT = f"COPY prediction_requests ({REQUEST_COLUMNS}) FROM STDIN (FORMAT binary)"
PG_CREATE_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS prediction_requests_staging
    (LIKE prediction_requests INCLUDING STORAGE) ON COMMIT DELETE ROWS"""
PG_COPY_STAGING = f"COPY prediction_requests_staging ({REQUEST_COLUMNS}) FROM STDIN (FORMAT binary)"
PG_INSERT_FROM_STAGING = f"""
WITH added AS (
    INSERT INTO prediction_requests ({REQUEST_COLUMNS})
    SELECT {REQUEST_COLUMNS} FROM prediction_requests_staging
    ON CONFLICT DO NOTHING
    RETURNING row_count
)
SELECT coalesce(sum(row_count), 0)::bigint FROM added"""
PING = "SELECT 1"

SQLITE_INSERT_ROW = f"""
INSERT OR IGNORE INTO predictions ({COLUMNS})
VALUES (:request_id, :row_index, :created_at, :model_name, :model_version, :features,
        :prediction, :probabilities, :latency_ms, :client_id, :client_request_id)"""

# -- queries -----------------------------------------------------------------------------

# Every filter is optional: since <= created_at < until, one model, one version.
_PG_FILTERS = """
WHERE (%(since)s::timestamptz IS NULL OR created_at >= %(since)s)
  AND (%(until)s::timestamptz IS NULL OR created_at < %(until)s)
  AND (%(model_name)s::text IS NULL OR model_name = %(model_name)s)
  AND (%(model_version)s::text IS NULL OR model_version = %(model_version)s)"""
_SQLITE_FILTERS = """
WHERE (:since IS NULL OR created_at >= :since)
  AND (:until IS NULL OR created_at < :until)
  AND (:model_name IS NULL OR model_name = :model_name)
  AND (:model_version IS NULL OR model_version = :model_version)"""
# The filters narrowed to one version that statistics or an export describe.
_PG_ONE_VERSION = f"""{_PG_FILTERS}
  AND model_name = %(of_name)s AND model_version = %(of_version)s"""
_SQLITE_ONE_VERSION = f"""{_SQLITE_FILTERS}
  AND model_name = :of_name AND model_version = :of_version"""

PG_PAGE = f"""
SELECT {COLUMNS}
FROM predictions{_PG_FILTERS}
  AND (%(after_created_at)s::timestamptz IS NULL
       OR (created_at, request_id, row_index)
          < (%(after_created_at)s, %(after_request_id)s::uuid, %(after_row_index)s::integer))
ORDER BY created_at DESC, request_id DESC, row_index DESC
LIMIT %(limit)s"""

SQLITE_PAGE = f"""
SELECT {COLUMNS}
FROM predictions{_SQLITE_FILTERS}
  AND (:after_created_at IS NULL
       OR (created_at, request_id, row_index)
          < (:after_created_at, :after_request_id, :after_row_index))
ORDER BY created_at DESC, request_id DESC, row_index DESC
LIMIT :limit"""

# Read from the base tables, not the view (a version's totals need no JSON: through the
# view they took 5.7 times as long, docs/log-layout.md). One request is one row here:
# latency percentiles count requests, counts and probabilities count instances; a request
# with no instances has no row in the view, so it is left out here too.
PG_STATS = """
SELECT m.model_name, m.model_version,
       sum(q.row_count) AS rows,
       count(*) AS requests,
       coalesce(sum(q.row_count) FILTER (WHERE q.probabilities IS NOT NULL), 0)
           AS with_probabilities,
       sum(top.total) / sum(q.row_count) FILTER (WHERE q.probabilities IS NOT NULL)
           AS mean_top_probability,
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY q.latency_ms)
           AS latency_percentiles,
       min(q.created_at) AS first_at,
       max(q.created_at) AS last_at
FROM prediction_requests q
LEFT JOIN prediction_models m USING (model_key)
-- Each instance's highest probability: its row of the (instances x classes) matrix.
CROSS JOIN LATERAL (
    SELECT sum(highest) AS total FROM (
        SELECT max(p) AS highest FROM unnest(q.probabilities) WITH ORDINALITY AS u(p, k)
        GROUP BY (k - 1) / array_length(q.probabilities, 2)
    ) per_instance
) top
WHERE q.row_count > 0
  AND (%(since)s::timestamptz IS NULL OR q.created_at >= %(since)s)
  AND (%(until)s::timestamptz IS NULL OR q.created_at < %(until)s)
  AND (%(model_name)s::text IS NULL OR m.model_name = %(model_name)s)
  AND (%(model_version)s::text IS NULL OR m.model_version = %(model_version)s)
GROUP BY m.model_name, m.model_version
ORDER BY max(q.created_at) DESC, m.model_name, m.model_version"""
# A version without probabilities whose predictions are all numbers is a regressor's.
PG_ANY_NON_NUMBER = f"""
SELECT EXISTS (SELECT FROM predictions{_PG_ONE_VERSION}
  AND prediction !~ %(number)s) AS found"""
# The most frequent classes (ties by label, byte order as in SQLite), and how many there are.
PG_TOP_CLASSES = f"""
SELECT prediction, count(*) AS rows, count(*) OVER () AS classes
FROM predictions{_PG_ONE_VERSION}
GROUP BY prediction
ORDER BY count(*) DESC, prediction COLLATE "C"
LIMIT %(top)s"""
PG_VALUES = f"""
SELECT count(*) AS count, avg(v) AS mean, min(v) AS min, max(v) AS max,
       percentile_cont(%(fractions)s::double precision[]) WITHIN GROUP (ORDER BY v) AS quantiles
FROM (SELECT prediction::double precision AS v
      FROM predictions{_PG_ONE_VERSION}) AS version_values"""

# SQLite has no percentile_cont: statistics fetch only the ranks that the interpolation
# needs (``positions``, a JSON array of 0-based ranks), never a version's whole column.
SQLITE_STATS = f"""
SELECT model_name, model_version,
       count(*) AS rows,
       sum(row_index = 0) AS requests,
       count(probabilities) AS with_probabilities,
       avg((SELECT max(value) FROM json_each(probabilities))) AS mean_top_probability,
       min(created_at) AS first_at,
       max(created_at) AS last_at
FROM predictions{_SQLITE_FILTERS}
GROUP BY model_name, model_version
ORDER BY max(created_at) DESC, model_name, model_version"""
SQLITE_ANY_NON_NUMBER = f"""
SELECT EXISTS (SELECT 1 FROM predictions{_SQLITE_ONE_VERSION}
  AND NOT (prediction REGEXP :number)) AS found"""
SQLITE_TOP_CLASSES = f"""
SELECT prediction, count(*) AS rows, count(*) OVER () AS classes
FROM predictions{_SQLITE_ONE_VERSION}
GROUP BY prediction
ORDER BY count(*) DESC, prediction
LIMIT :top"""
SQLITE_VALUES = f"""
SELECT count(*) AS count, avg(v) AS mean, min(v) AS min, max(v) AS max
FROM (SELECT CAST(prediction AS REAL) AS v FROM predictions{_SQLITE_ONE_VERSION})"""
SQLITE_VALUE_RANKS = f"""
SELECT position, v FROM (
    SELECT CAST(prediction AS REAL) AS v,
           row_number() OVER (ORDER BY CAST(prediction AS REAL)) - 1 AS position
    FROM predictions{_SQLITE_ONE_VERSION})
WHERE position IN (SELECT value FROM json_each(:positions))"""
SQLITE_LATENCY_RANKS = f"""
SELECT position, v FROM (
    SELECT latency_ms AS v, row_number() OVER (ORDER BY latency_ms) - 1 AS position
    FROM predictions{_SQLITE_ONE_VERSION} AND row_index = 0)
WHERE position IN (SELECT value FROM json_each(:positions))"""

# Export, oldest first. The CSV header needs every version's feature and class names
# before the first row: the versions in range, then the keys of each one's first row.
PG_EXPORT_VERSIONS = f"""
SELECT model_name, model_version
FROM predictions{_PG_FILTERS}
GROUP BY model_name, model_version
ORDER BY min(created_at), model_name, model_version"""
PG_EXPORT_SHAPE = f"""
SELECT features::text AS features, probabilities::text AS probabilities
FROM predictions{_PG_ONE_VERSION}
ORDER BY created_at, request_id, row_index
LIMIT 1"""
# Rows as the SQLite store holds them: text UUID, ISO 8601 UTC text time, JSON as text.
PG_EXPORT_ROWS = f"""COPY (
SELECT request_id::text, row_index,
       to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       model_name, model_version, features::text, prediction, probabilities::text,
       latency_ms, client_id, client_request_id
FROM predictions{_PG_FILTERS}
ORDER BY created_at, request_id, row_index
) TO STDOUT (FORMAT BINARY)"""
PG_EXPORT_TYPES = (
    "text", "int4", "text", "text", "text", "text", "text", "text", "float8", "text", "text",
)  # fmt: skip

SQLITE_EXPORT_VERSIONS = f"""
SELECT model_name, model_version
FROM predictions{_SQLITE_FILTERS}
GROUP BY model_name, model_version
ORDER BY min(created_at), model_name, model_version"""
SQLITE_EXPORT_SHAPE = f"""
SELECT features, probabilities
FROM predictions{_SQLITE_ONE_VERSION}
ORDER BY created_at, request_id, row_index
LIMIT 1"""
SQLITE_EXPORT_ROWS = f"""
SELECT {COLUMNS}
FROM predictions{_SQLITE_FILTERS}
ORDER BY created_at, request_id, row_index"""

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

# The latest labels beside the predictions they label (`log feedback`); both stores.
_LABELS = """
SELECT f.received_at, f.request_id, f.row_index, {label}, p.model_name, p.model_version,
       p.prediction
FROM feedback f
LEFT JOIN predictions p ON p.request_id = f.request_id AND p.row_index = f.row_index
WHERE {model} IS NULL OR p.model_name = {model}
ORDER BY f.received_at DESC, f.request_id, f.row_index
LIMIT {limit}"""
PG_LABELS = _LABELS.format(label="f.label::text", model="%(model_name)s::text", limit="%(limit)s")
SQLITE_LABELS = _LABELS.format(label="f.label", model=":model_name", limit=":limit")
