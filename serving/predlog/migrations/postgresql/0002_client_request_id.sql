-- 0002: the client's X-Request-ID (or an Open Inference Protocol request's "id") is a
-- correlation id, stored beside the server-made request_id that keys the log. Rows logged
-- before this migration keep their request_id (then possibly client-chosen) and get NULL.
ALTER TABLE predictions ADD COLUMN client_request_id text;
