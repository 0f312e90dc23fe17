-- 0003: ground truth. One label per predicted instance, keyed like the prediction it labels
-- (the request_id and row_index of a /predict answer). A later label for the same row
-- replaces the earlier one: writes are upserts that keep the most recently received label.
-- No foreign key to predictions: a label may reach the store before its prediction (both
-- travel through spools), and predictions may become a view (a later migration).
CREATE TABLE feedback (
    request_id  uuid        NOT NULL,
    row_index   integer     NOT NULL,
    label       json        NOT NULL,  -- the true value: a class label or a number, as sent
    received_at timestamptz NOT NULL,  -- when the server accepted the label
    client_id   text,                  -- the API key's client when auth is on
    CONSTRAINT feedback_request_row_key UNIQUE (request_id, row_index)
);

-- The join with predictions goes through the two unique indexes on (request_id, row_index)
-- (this table's and predictions'). Labels arrive in time order: BRIN finds a time range's.
CREATE INDEX feedback_received_at_idx ON feedback USING brin (received_at);

-- The roles of serving/predlog/sql/roles.sh, when it ran before this migration. The writer
-- upserts (INSERT ... ON CONFLICT (request_id, row_index) DO UPDATE ... WHERE the stored
-- label is not newer): PostgreSQL asks for INSERT, UPDATE of the replaced columns, and
-- SELECT of every column the conflict target, the condition and EXCLUDED read, which is all
-- of them. So the writer may read labels (not predictions); it may not delete any.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'skship_writer') THEN
        GRANT INSERT, SELECT ON feedback TO skship_writer;
        GRANT UPDATE (label, received_at, client_id) ON feedback TO skship_writer;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'skship_reader') THEN
        GRANT SELECT ON feedback TO skship_reader;
    END IF;
END
$$;
