-- 0001: the prediction log, one row per predicted instance (same columns as PostgreSQL).
-- created_at is ISO 8601 UTC text, 'YYYY-MM-DDTHH:MM:SS.ffffffZ': it sorts by time and
-- SQLite's date functions read it. features and probabilities are JSON text.
CREATE TABLE predictions (
    request_id    TEXT    NOT NULL,
    row_index     INTEGER NOT NULL,
    created_at    TEXT    NOT NULL,
    model_name    TEXT    NOT NULL,
    model_version TEXT    NOT NULL,
    features      TEXT    NOT NULL,
    prediction    TEXT    NOT NULL,
    probabilities TEXT,
    latency_ms    REAL    NOT NULL,
    client_id     TEXT,
    UNIQUE (request_id, row_index)
);

CREATE INDEX predictions_created_at_idx ON predictions (created_at, request_id, row_index);
CREATE INDEX predictions_model_version_idx ON predictions (model_version, created_at);
