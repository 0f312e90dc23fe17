-- 0002: the client's correlation id beside the server-made request_id (NULL for older rows).
ALTER TABLE predictions ADD COLUMN client_request_id TEXT;
