-- Batch scheduling (jobs_core::scheduling): an app's cap on its starting
-- and running jobs (null: none) and its weight in the share of free slots;
-- a job's priority within its app (-1 low, 0 normal, 1 high) and its place
-- in the app's line, its creation time moved by its priority.
alter table apps
    add column max_running integer check (max_running > 0),
    add column weight integer not null default 1 check (weight > 0);
alter table jobs
    add column priority smallint not null default 0 check (priority between -1 and 1),
    add column line_at timestamptz not null default now();
update jobs set line_at = created_at where state = 'queued';
-- The head of each app's line, and each app's starting and running jobs,
-- which a claim reads for every app with queued work.
create index jobs_app_line on jobs (app, line_at, id)
    where state = 'queued' and interactive_tty is null;
create index jobs_app_active on jobs (app) where state in ('starting', 'running');
