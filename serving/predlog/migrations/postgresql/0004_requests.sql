-- 0004: one row per request (docs/log-layout.md). A request's instances are stored as 2-d
-- arrays in prediction_requests, written with COPY BINARY; the names of a model version
-- are stored once, in prediction_models; the view predictions gives back one row per
-- instance with the columns of 0001-0002, so users' SQL keeps working.

-- Older servers still writing would lose rows inserted after this transaction's snapshot:
-- block their writes (reads go on) until the old table is gone. Their spools keep what
-- they answered until they are upgraded and replay it.
LOCK TABLE predictions IN EXCLUSIVE MODE;
SET LOCAL work_mem = '64MB';

CREATE TABLE prediction_models (
    model_key            bigint PRIMARY KEY,  -- first 8 bytes of sha256(name U+001F version)
    model_name           text   NOT NULL,
    model_version        text   NOT NULL,
    feature_names        text[] NOT NULL,
    feature_kinds        text[] NOT NULL,      -- number | category | boolean
    classes              text[],               -- NULL for regressors
    features_format      text   NOT NULL,      -- format() template of the features object
    probabilities_format text,                 -- format() template of the probabilities
    UNIQUE (model_name, model_version)
);

CREATE TABLE prediction_requests (
    request_id        uuid        PRIMARY KEY,
    created_at        timestamptz NOT NULL,
    model_key         bigint      NOT NULL,
    row_count         integer     NOT NULL,
    features          float8[]    NOT NULL,  -- [row][feature]; NaN: null, or a category's
    labels            smallint[],            -- [row]: index into the model's classes
    "values"          float8[],              -- [row]: a regressor's predictions
    probabilities     float8[],              -- [row][class]
    latency_ms        float8      NOT NULL,  -- of the whole request
    feature_texts     text[],                -- [row]: category JSON texts joined by U+001F
    client_id         text,
    client_request_id text
);
-- Arrays of floats hardly compress: pglz (the default) costs 4 us of CPU per logged row
-- for about 6 % less disk; EXTERNAL stores them out of line, uncompressed (measured).
ALTER TABLE prediction_requests
    ALTER features SET STORAGE EXTERNAL, ALTER probabilities SET STORAGE EXTERNAL;
CREATE INDEX prediction_requests_created_at_idx ON prediction_requests (created_at);
CREATE INDEX prediction_requests_model_key_idx ON prediction_requests USING brin (model_key);

-- One model row per version, from one of its rows: names in the order the server wrote
-- them; a feature is a category (or boolean) when that row holds a string (or true/false).
-- Classes are the probabilities' keys; a classifier logged without probabilities gets its
-- distinct labels; a version whose predictions are all numbers without probabilities is a
-- regressor's.
INSERT INTO prediction_models
SELECT ('x' || left(encode(sha256(convert_to(v.model_name || E'\x1f' || v.model_version,
                                              'UTF8')), 'hex'), 16))::bit(64)::bigint,
       v.model_name, v.model_version, f.names, f.kinds, coalesce(c.classes, l.classes),
       f.format, c.format
FROM (SELECT model_name, model_version FROM predictions GROUP BY 1, 2) v
CROSS JOIN LATERAL (
    SELECT features, probabilities FROM predictions p
    WHERE p.model_name = v.model_name AND p.model_version = v.model_version LIMIT 1
) one
CROSS JOIN LATERAL (
    SELECT array_agg(key ORDER BY i) AS names, array_agg(kind ORDER BY i) AS kinds,
           '{' || string_agg(
               replace(to_json(key)::text, '%', '%%') || ':%'
               || CASE WHEN kind = 'category' OR kind = 'boolean'
                       THEN total + textual ELSE i END || '$s',
               ',' ORDER BY i) || '}' AS format
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
           '{' || string_agg(replace(to_json(key)::text, '%', '%%') || ':%s', ','
                             ORDER BY i) || '}' AS format
    FROM json_each(one.probabilities) WITH ORDINALITY AS e(key, value, i)
) c
LEFT JOIN LATERAL (
    SELECT array_agg(DISTINCT p.prediction ORDER BY p.prediction) AS classes
    FROM predictions p
    WHERE p.model_name = v.model_name AND p.model_version = v.model_version
    HAVING bool_or(p.prediction !~ '^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$'
                   AND p.prediction NOT IN ('NaN', 'Infinity', '-Infinity'))
) l ON true;

-- One row per request: each row's values put in its version's feature order (by name),
-- then the rows of a request stacked in row order.
INSERT INTO prediction_requests
SELECT p.request_id, min(p.created_at), m.model_key, count(*)::integer,
       array_agg(v.numbers ORDER BY p.row_index),
       array_agg((array_position(m.classes, p.prediction) - 1)::smallint ORDER BY p.row_index)
           FILTER (WHERE m.classes IS NOT NULL),
       array_agg(p.prediction::float8 ORDER BY p.row_index) FILTER (WHERE m.classes IS NULL),
       array_agg(v.probabilities ORDER BY p.row_index)
           FILTER (WHERE m.classes IS NOT NULL AND v.probabilities IS NOT NULL),
       min(p.latency_ms),
       array_agg(v.texts ORDER BY p.row_index) FILTER (WHERE v.texts IS NOT NULL),
       min(p.client_id), min(p.client_request_id)
FROM predictions p
JOIN prediction_models m USING (model_name, model_version)
CROSS JOIN LATERAL (
    SELECT array_agg(CASE WHEN json_typeof(e.value) = 'number' THEN e.value::text::float8
                          ELSE 'NaN' END ORDER BY k.i) AS numbers,
           string_agg(CASE WHEN k.kind <> 'number' THEN e.value::text END, E'\x1f'
                      ORDER BY k.i) AS texts,
           (SELECT array_agg(pe.value::text::float8 ORDER BY c.i)
            FROM unnest(m.classes) WITH ORDINALITY AS c(name, i)
            JOIN json_each(p.probabilities) pe ON pe.key = c.name) AS probabilities
    FROM unnest(m.feature_names, m.feature_kinds) WITH ORDINALITY AS k(name, kind, i)
    LEFT JOIN json_each(p.features) e ON e.key = k.name
) v
GROUP BY p.request_id, m.model_key, m.classes;

DROP TABLE predictions;

-- One row per predicted instance, as before, plus feature_names and feature_values (a
-- 1 x features matrix of the numbers: cheaper to aggregate than features->>'name').
CREATE VIEW predictions AS
SELECT q.request_id, i.row_index, q.created_at, m.model_name, m.model_version,
       format(m.features_format,
              VARIADIC string_to_array(replace(t.features[i.n], 'NaN', 'null'), ',')
                       || string_to_array(t.texts[i.n], E'\x1f'))::json AS features,
       coalesce(m.classes[q.labels[i.n] + 1], q."values"[i.n]::text) AS prediction,
       CASE WHEN q.probabilities IS NOT NULL THEN
           format(m.probabilities_format,
                  VARIADIC string_to_array(t.probabilities[i.n], ','))::json
       END AS probabilities,
       q.latency_ms, q.client_id, q.client_request_id,
       m.feature_names, t.matrix[i.n:i.n][:] AS feature_values
FROM prediction_requests q
LEFT JOIN prediction_models m USING (model_key)
-- Each request's arrays are detoasted and printed once, not once per row; the planner
-- drops these columns when a query does not use them (OFFSET 0 keeps this a subquery).
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

-- The roles of serving/predlog/sql/roles.sh, when they exist: the writer inserts requests
-- and model rows (and reads back the rows counted in a replayed batch); the reader reads.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'skship_writer') THEN
        GRANT INSERT ON prediction_requests, prediction_models TO skship_writer;
        GRANT SELECT (request_id, row_count) ON prediction_requests TO skship_writer;
        GRANT SELECT (model_key) ON prediction_models TO skship_writer;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'skship_reader') THEN
        GRANT SELECT ON predictions, prediction_requests, prediction_models TO skship_reader;
    END IF;
END
$$;
