#!/usr/bin/env bash
# Creates the prediction log's two PostgreSQL roles in one database (idempotent):
#   skship_writer  may only INSERT into the log's tables and upsert into feedback (plus
#                  read schema_migrations, to check the schema is current, and use
#                  temporary tables, for replayed batches);
#   skship_reader  may only SELECT.
# Tables are created by `python -m serving migrate` (the owner); migrations grant these
# roles their rights when the roles exist, and this script grants them on tables that exist
# already, so the two may run in either order.
#
# By hand (as a superuser, with the usual libpq variables):
#   SKSHIP_WRITER_PASSWORD=... SKSHIP_READER_PASSWORD=... \
#     PGHOST=localhost PGUSER=postgres PGDATABASE=skship serving/predlog/sql/roles.sh
# In docker compose, mount it as /docker-entrypoint-initdb.d/10-skship-roles.sh: the postgres
# image runs it once, when it initialises the volume, with POSTGRES_USER and POSTGRES_DB set.
set -euo pipefail

: "${SKSHIP_WRITER_PASSWORD:?set SKSHIP_WRITER_PASSWORD}"
: "${SKSHIP_READER_PASSWORD:?set SKSHIP_READER_PASSWORD}"

psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet \
  --username "${POSTGRES_USER:-${PGUSER:-postgres}}" \
  --dbname "${POSTGRES_DB:-${PGDATABASE:-postgres}}" \
  -v writer_password="$SKSHIP_WRITER_PASSWORD" \
  -v reader_password="$SKSHIP_READER_PASSWORD" <<'SQL'
SELECT 'CREATE ROLE skship_writer'
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'skship_writer') \gexec
SELECT 'CREATE ROLE skship_reader'
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'skship_reader') \gexec
ALTER ROLE skship_writer WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'writer_password';
ALTER ROLE skship_reader WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'reader_password';

SELECT format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO skship_writer', current_database()) \gexec
SELECT format('GRANT CONNECT ON DATABASE %I TO skship_reader', current_database()) \gexec
GRANT USAGE ON SCHEMA public TO skship_writer, skship_reader;
-- Nobody but the owner creates tables (already so by default since PostgreSQL 15).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- Tables that exist already, when this runs after `python -m serving migrate`.
-- Before migration 0004 predictions is the table; from 0004 on it is a view over
-- prediction_requests and prediction_models, which the writer inserts into (and reads back
-- the ids and row counts of a replayed batch from).
SELECT 'GRANT INSERT ON predictions TO skship_writer'
WHERE to_regclass('predictions') IS NOT NULL AND to_regclass('prediction_requests') IS NULL \gexec
SELECT 'GRANT SELECT ON predictions TO skship_reader'
WHERE to_regclass('predictions') IS NOT NULL \gexec
SELECT 'GRANT INSERT, SELECT (request_id, row_count) ON prediction_requests TO skship_writer'
WHERE to_regclass('prediction_requests') IS NOT NULL \gexec
SELECT 'GRANT INSERT, SELECT (model_key) ON prediction_models TO skship_writer'
WHERE to_regclass('prediction_models') IS NOT NULL \gexec
SELECT 'GRANT SELECT ON prediction_requests, prediction_models TO skship_reader'
WHERE to_regclass('prediction_requests') IS NOT NULL \gexec
SELECT 'GRANT INSERT, SELECT, UPDATE (label, received_at, client_id) ON feedback TO skship_writer'
WHERE to_regclass('feedback') IS NOT NULL \gexec
SELECT 'GRANT SELECT ON feedback TO skship_reader'
WHERE to_regclass('feedback') IS NOT NULL \gexec
SELECT 'GRANT SELECT ON schema_migrations TO skship_writer, skship_reader'
WHERE to_regclass('schema_migrations') IS NOT NULL \gexec
SQL
