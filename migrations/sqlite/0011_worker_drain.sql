-- Draining workers and their versions, as
-- migrations/postgres/0011_worker_drain.sql in SQLite's terms
-- (`draining_since` in microseconds since the Unix epoch).
alter table workers add column version text;
alter table workers add column draining_since integer;
