-- 0003: ground truth, one label per predicted instance (same columns as PostgreSQL).
-- label is JSON text; received_at is ISO 8601 UTC text like predictions.created_at.
-- A later label for the same row replaces the earlier one (writes are upserts).
CREATE TABLE feedback (
    request_id  TEXT    NOT NULL,
    row_index   INTEGER NOT NULL,
    label       TEXT    NOT NULL,
    received_at TEXT    NOT NULL,
    client_id   TEXT,
    UNIQUE (request_id, row_index)
);

-- The join with predictions uses the unique indexes on (request_id, row_index) of both tables.
CREATE INDEX feedback_received_at_idx ON feedback (received_at);
