-- Queue transparency: `jobs run --queue-timeout DUR` gives up on a job that
-- no worker started within DUR of its creation (the reaper ends it
-- `canceled`), and a queued job's position is counted over the queued jobs
-- created before it, which this partial index keeps cheap however many
-- ended jobs the table holds.
alter table jobs add column queue_timeout_seconds bigint;

create index jobs_queued_in_order on jobs (created_at, id) where state = 'queued';
