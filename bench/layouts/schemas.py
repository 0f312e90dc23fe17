"""The candidate layouts in SQL: tables, indexes, the ``predictions`` view, the queries.

Every layout keeps the relation ``predictions`` with today's columns (plus
``client_request_id``), so the README's SQL, ``GET /predictions`` and exports read it
unchanged; the new layouts store the feature names and classes once per model version in
``prediction_models`` and rebuild the JSON objects in the view with ``format()`` and a
per-version template.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import orjson

from bench.layouts.workloads import Model

MODELS_TABLE = """
CREATE TABLE prediction_models (
    model_key            bigint PRIMARY KEY,  -- computed by the server from name and version
    model_name           text   NOT NULL,
    model_version        text   NOT NULL,
    feature_names        text[] NOT NULL,
    feature_kinds        text[] NOT NULL,      -- number | integer | category | boolean
    classes              text[],               -- NULL for regressors
    features_format      text   NOT NULL,      -- format() template of the features object
    probabilities_format text,                 -- format() template of the probabilities
    UNIQUE (model_name, model_version)
)"""
INSERT_MODEL = """
INSERT INTO prediction_models VALUES (
    %(key)s, %(name)s, %(version)s, %(names)s, %(kinds)s, %(classes)s, %(features)s,
    %(probabilities)s)
ON CONFLICT DO NOTHING"""


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _key(name: str) -> str:
    return orjson.dumps(name).decode().replace("%", "%%")


def features_format(model: Model, *, positional: bool) -> str:
    """``{"name":%1$s,...}``. The view passes one text per feature (its number, or null),
    then, unless ``positional`` (layout C: one JSON text per feature), the JSON texts of
    the category features: feature i takes argument i + 1 when numeric, else the slot
    after all features that holds its text."""
    slots = []
    for i, kind in enumerate(model.kinds):
        if positional or kind != "category":
            slots.append(i + 1)
        else:
            slots.append(len(model.kinds) + model.textual.index(i) + 1)
    parts = [f"{_key(n)}:%{s}$s" for n, s in zip(model.feature_names, slots, strict=True)]
    return "{" + ",".join(parts) + "}"


def probabilities_format(model: Model) -> str:
    return "{" + ",".join(f"{_key(c)}:%s" for c in model.classes) + "}"


def model_params(model: Model, *, positional: bool = False) -> dict[str, object]:
    return {
        "key": model.key,
        "name": model.name,
        "version": model.version,
        "names": list(model.feature_names),
        "kinds": list(model.kinds),
        "classes": list(model.classes),
        "features": features_format(model, positional=positional),
        "probabilities": probabilities_format(model),
    }


@dataclass(frozen=True)
class Layout:
    name: str
    summary: str
    binary: bool
    tables: tuple[str, ...]
    """The tables whose size counts (the log's own, not prediction_models)."""
    ddl: str
    staging: str
    """Statements that create the session's staging table (replay)."""
    move: str
    """INSERT ... SELECT ... ON CONFLICT DO NOTHING from the staging table."""
    fast_feature: str
    """The one-feature query's equivalent through the view without rebuilding JSON
    (``%(feature)s``: the feature's name)."""
    base_feature: str
    """Its fastest form on the layout's own table (``%(position)s``: the feature's 1-based
    position, ``%(key)s``: the model key)."""
    positional: bool = False
    per_model: bool = False


_LITERAL = """
SELECT avg((features->>%(feature)s)::float8) FROM predictions
WHERE created_at > now() - interval '1 hour'"""

A_TABLE = """
CREATE TABLE predictions (
    request_id uuid NOT NULL, row_index integer NOT NULL, created_at timestamptz NOT NULL,
    model_name text NOT NULL, model_version text NOT NULL, features json NOT NULL,
    prediction text NOT NULL, probabilities json, latency_ms double precision NOT NULL,
    client_id text, client_request_id text,
    CONSTRAINT predictions_request_row_key UNIQUE (request_id, row_index)
);
CREATE INDEX predictions_created_at_idx ON predictions (created_at);
CREATE INDEX predictions_model_version_idx ON predictions USING brin (model_version);
"""
A = Layout(
    "A",
    "today: a row per instance, features and probabilities JSON objects (COPY text)",
    binary=False,
    tables=("predictions",),
    ddl=A_TABLE,
    staging="CREATE TEMP TABLE IF NOT EXISTS staging (LIKE predictions) ON COMMIT DELETE ROWS",
    move="INSERT INTO predictions SELECT * FROM staging ON CONFLICT DO NOTHING",
    fast_feature=_LITERAL,
    base_feature=_LITERAL,
)

ROWS_TABLE = """
CREATE TABLE prediction_rows (
    request_id        uuid        NOT NULL,
    row_index         integer     NOT NULL,
    created_at        timestamptz NOT NULL,
    model_key         bigint      NOT NULL,
    features          float8[]    NOT NULL,  -- one per feature in model order; NaN = null
                                             -- (and for category features)
    label             smallint,              -- index into prediction_models.classes
    value             float8,                -- a regressor's prediction
    probabilities     float8[],              -- in prediction_models.classes order
    latency_ms        float8      NOT NULL,
    feature_texts     text[],                -- JSON text of each category/boolean feature
    client_id         text,
    client_request_id text,
    CONSTRAINT prediction_rows_request_row_key UNIQUE (request_id, row_index)
);
CREATE INDEX prediction_rows_created_at_idx ON prediction_rows (created_at);
CREATE INDEX prediction_rows_model_key_idx ON prediction_rows USING brin (model_key);
"""
ROWS_VIEW = """
CREATE VIEW predictions AS
SELECT r.request_id, r.row_index, r.created_at, m.model_name, m.model_version,
       format(m.features_format,
              VARIADIC array_replace(r.features::text[], 'NaN', 'null') || r.feature_texts
       )::json AS features,
       coalesce(m.classes[r.label + 1], r.value::text) AS prediction,
       format(m.probabilities_format, VARIADIC r.probabilities::text[])::json AS probabilities,
       r.latency_ms, r.client_id, r.client_request_id,
       m.feature_names, r.features AS feature_values
FROM prediction_rows r
LEFT JOIN prediction_models m USING (model_key);
"""
_ROWS_FAST = """
SELECT avg(feature_values[array_position(feature_names, %(feature)s)]) FROM predictions
WHERE created_at > now() - interval '1 hour'"""
_ROWS_BASE = """
SELECT avg(features[%(position)s]) FROM prediction_rows
WHERE created_at > now() - interval '1 hour' AND model_key = %(key)s"""
_ROWS_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS staging (LIKE prediction_rows) ON COMMIT DELETE ROWS"""
_ROWS_MOVE = "INSERT INTO prediction_rows SELECT * FROM staging ON CONFLICT DO NOTHING"

B = Layout(
    "B",
    "a row per instance, float8[] features and probabilities, class index (COPY BINARY)",
    binary=True,
    tables=("prediction_rows",),
    ddl=MODELS_TABLE + ";" + ROWS_TABLE + ROWS_VIEW,
    staging=_ROWS_STAGING,
    move=_ROWS_MOVE,
    fast_feature=_ROWS_FAST,
    base_feature=_ROWS_BASE,
)
B_TEXT = Layout(
    "B-text",
    "as B, written as COPY text array literals",
    binary=False,
    tables=("prediction_rows",),
    ddl=B.ddl,
    staging=_ROWS_STAGING,
    move=_ROWS_MOVE,
    fast_feature=_ROWS_FAST,
    base_feature=_ROWS_BASE,
)

_REQUEST_KEY_TABLE = (
    ROWS_TABLE.replace(
        ",\n    CONSTRAINT prediction_rows_request_row_key UNIQUE (request_id, row_index)\n", "\n"
    )
    + """
-- One entry per request, not per row: a request's rows are always written together (one
-- spool frame, never split across batches), so its row 0 stands for all of them.
CREATE UNIQUE INDEX prediction_rows_request_key ON prediction_rows (request_id)
    WHERE row_index = 0;
"""
)
B_REQ = Layout(
    "B-req",
    "as B, uniqueness per request (a partial unique index on row 0)",
    binary=True,
    tables=("prediction_rows",),
    ddl=MODELS_TABLE + ";" + _REQUEST_KEY_TABLE + ROWS_VIEW,
    staging=_ROWS_STAGING,
    move="""
INSERT INTO prediction_rows SELECT s.* FROM staging s
WHERE NOT EXISTS (
    SELECT FROM prediction_rows r WHERE r.request_id = s.request_id AND r.row_index = 0)""",
    fast_feature=_ROWS_FAST,
    base_feature=_ROWS_BASE,
)

C_TABLE = """
CREATE TABLE prediction_rows (
    request_id        uuid        NOT NULL,
    row_index         integer     NOT NULL,
    created_at        timestamptz NOT NULL,
    model_key         bigint      NOT NULL,
    features          json        NOT NULL,  -- [v1, v2, ...] in model order
    label             smallint,
    value             float8,
    probabilities     json,                  -- [p1, p2, ...] in classes order
    latency_ms        float8      NOT NULL,
    client_id         text,
    client_request_id text,
    CONSTRAINT prediction_rows_request_row_key UNIQUE (request_id, row_index)
);
CREATE INDEX prediction_rows_created_at_idx ON prediction_rows (created_at);
CREATE INDEX prediction_rows_model_key_idx ON prediction_rows USING brin (model_key);
CREATE VIEW predictions AS
SELECT r.request_id, r.row_index, r.created_at, m.model_name, m.model_version,
       format(m.features_format,
              VARIADIC ARRAY(SELECT e::text FROM json_array_elements(r.features) e))::json
           AS features,
       coalesce(m.classes[r.label + 1], r.value::text) AS prediction,
       format(m.probabilities_format,
              VARIADIC string_to_array(btrim(r.probabilities::text, '[]'), ','))::json
           AS probabilities,
       r.latency_ms, r.client_id, r.client_request_id
FROM prediction_rows r
LEFT JOIN prediction_models m USING (model_key);
"""
C = Layout(
    "C",
    "a row per instance, features a positional JSON array, class index (COPY text)",
    binary=False,
    tables=("prediction_rows",),
    ddl=MODELS_TABLE + ";" + C_TABLE,
    staging=_ROWS_STAGING,
    move=_ROWS_MOVE,
    fast_feature=_LITERAL,
    base_feature="""
SELECT avg((features->>(%(position)s - 1))::float8) FROM prediction_rows
WHERE created_at > now() - interval '1 hour' AND model_key = %(key)s""",
    positional=True,
)

D_TABLE = """
CREATE TABLE prediction_requests (
    request_id        uuid        PRIMARY KEY,
    created_at        timestamptz NOT NULL,
    model_key         bigint      NOT NULL,
    row_count         integer     NOT NULL,
    features          float8[]    NOT NULL,  -- [row][feature], NaN = null (and categories)
    labels            smallint[],            -- [row]: index into classes
    "values"          float8[],              -- [row]: a regressor's predictions
    probabilities     float8[],              -- [row][class]
    latency_ms        float8      NOT NULL,
    feature_texts     text[],                -- [row]: category JSON texts joined by U+001F
    client_id         text,
    client_request_id text
);
ALTER TABLE prediction_requests
    ALTER features SET STORAGE EXTERNAL, ALTER probabilities SET STORAGE EXTERNAL;
CREATE INDEX prediction_requests_created_at_idx ON prediction_requests (created_at);
CREATE INDEX prediction_requests_model_key_idx ON prediction_requests USING brin (model_key);
CREATE VIEW predictions AS
SELECT q.request_id, i.row_index, q.created_at, m.model_name, m.model_version,
       format(m.features_format,
              VARIADIC string_to_array(replace(t.features[i.n], 'NaN', 'null'), ',')
                       || string_to_array(t.texts[i.n], E'\\x1f'))::json AS features,
       coalesce(m.classes[q.labels[i.n] + 1], q."values"[i.n]::text) AS prediction,
       format(m.probabilities_format,
              VARIADIC string_to_array(t.probabilities[i.n], ','))::json AS probabilities,
       q.latency_ms, q.client_id, q.client_request_id,
       m.feature_names, t.matrix[i.n:i.n][:] AS feature_values  -- a 1 x features matrix
FROM prediction_requests q
LEFT JOIN prediction_models m USING (model_key)
-- Each request's arrays are detoasted and printed once (not once per row); the planner
-- drops these columns when a query does not use them (the OFFSET 0 keeps it a subquery).
CROSS JOIN LATERAL (
    SELECT string_to_array(btrim(q.features::text, '{}'), '},{') AS features,
           string_to_array(btrim(q.probabilities::text, '{}'), '},{') AS probabilities,
           q.feature_texts[:] AS texts,
           q.features[:][:] AS matrix
    OFFSET 0
) t
CROSS JOIN LATERAL (
    SELECT n, (n - 1)::integer AS row_index FROM generate_series(1, q.row_count) n
) i;
"""
D = Layout(
    "D",
    "a row per request: 2-d float8[] features and probabilities, smallint[] labels (BINARY)",
    binary=True,
    tables=("prediction_requests",),
    ddl=MODELS_TABLE + ";" + D_TABLE,
    staging="""
CREATE TEMP TABLE IF NOT EXISTS staging (LIKE prediction_requests INCLUDING STORAGE)
ON COMMIT DELETE ROWS""",
    move="INSERT INTO prediction_requests SELECT * FROM staging ON CONFLICT DO NOTHING",
    fast_feature="""
SELECT avg(feature_values[1][array_position(feature_names, %(feature)s)]) FROM predictions
WHERE created_at > now() - interval '1 hour'""",
    base_feature="""
SELECT avg(v) FROM prediction_requests q, unnest(q.features[:][%(position)s:%(position)s]) v
WHERE q.created_at > now() - interval '1 hour' AND q.model_key = %(key)s""",
)

D_PGLZ = dataclasses.replace(
    D,
    name="D-pglz",
    summary="as D, arrays compressed with pglz (the default STORAGE EXTENDED)",
    ddl=D.ddl.replace(
        "ALTER features SET STORAGE EXTERNAL, ALTER probabilities SET STORAGE EXTERNAL",
        "ALTER features SET STORAGE EXTENDED",
    ),
)
D_LZ4 = dataclasses.replace(
    D,
    name="D-lz4",
    summary="as D, arrays compressed with lz4",
    ddl=D.ddl.replace(
        "ALTER features SET STORAGE EXTERNAL, ALTER probabilities SET STORAGE EXTERNAL",
        "ALTER features SET COMPRESSION lz4, ALTER probabilities SET COMPRESSION lz4",
    ),
)


def wide_ddl(model: Model) -> str:
    """E: a table per model version, one float8 column per feature and per class."""
    features = ", ".join(f"f{i + 1} float8" for i in range(len(model.numeric)))
    classes = ", ".join(f"p{i + 1} float8" for i in range(len(model.classes)))
    pairs = ", ".join(f"{_literal(n)}, f{i + 1}" for i, n in enumerate(model.feature_names))
    probabilities = ", ".join(f"{_literal(c)}, p{i + 1}" for i, c in enumerate(model.classes))
    classes_array = ", ".join(_literal(c) for c in model.classes)
    return f"""
CREATE TABLE prediction_rows (
    request_id uuid NOT NULL, row_index integer NOT NULL, created_at timestamptz NOT NULL,
    {features}, label smallint, {classes}, latency_ms float8 NOT NULL,
    client_id text, client_request_id text,
    CONSTRAINT prediction_rows_request_row_key UNIQUE (request_id, row_index)
);
CREATE INDEX prediction_rows_created_at_idx ON prediction_rows (created_at);
CREATE VIEW predictions AS
SELECT request_id, row_index, created_at, {_literal(model.name)}::text AS model_name,
       {_literal(model.version)}::text AS model_version,
       json_build_object({pairs}) AS features,
       (ARRAY[{classes_array}])[label + 1] AS prediction,
       json_build_object({probabilities}) AS probabilities,
       latency_ms, client_id, client_request_id
FROM prediction_rows;
"""


def wide_layout(model: Model) -> Layout:
    return Layout(
        "E",
        "upper bound: a table per model version, a float8 column per feature (BINARY)",
        binary=True,
        tables=("prediction_rows",),
        ddl=wide_ddl(model),
        staging=_ROWS_STAGING,
        move=_ROWS_MOVE,
        fast_feature=_LITERAL,
        base_feature="""
SELECT avg(f1) FROM prediction_rows
WHERE created_at > now() - interval '1 hour'""",
        per_model=True,
    )


# -- the queries of issue 13, through the view ---------------------------------------------

FEATURE_QUERY = """
SELECT avg((features->>%(feature)s)::float8) FROM predictions
WHERE created_at > now() - interval '1 hour'"""
PAGE_QUERY = """
SELECT request_id, row_index, created_at, model_name, model_version, features, prediction,
       probabilities, latency_ms, client_id, client_request_id
FROM predictions
ORDER BY created_at DESC, request_id DESC, row_index DESC
LIMIT 100"""
NEXT_PAGE_QUERY = """
SELECT request_id, row_index, created_at, model_name, model_version, features, prediction,
       probabilities, latency_ms, client_id, client_request_id
FROM predictions
WHERE (created_at, request_id, row_index) < (%(at)s, %(id)s, %(row)s)
ORDER BY created_at DESC, request_id DESC, row_index DESC
LIMIT 100"""
COUNT_QUERY = "SELECT model_version, count(*) FROM predictions GROUP BY model_version"
VERSION_PAGE_QUERY = """
SELECT request_id, row_index, created_at, features, prediction, probabilities
FROM predictions
WHERE model_version = %(version)s
ORDER BY created_at DESC, request_id DESC, row_index DESC
LIMIT 100"""
