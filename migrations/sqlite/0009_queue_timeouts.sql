-- Queue timeouts and queue positions, as
-- migrations/postgres/0009_queue_timeouts.sql in SQLite's terms.
alter table jobs add column queue_timeout_seconds integer;

create index jobs_queued_in_order on jobs (created_at, id) where state = 'queued';
