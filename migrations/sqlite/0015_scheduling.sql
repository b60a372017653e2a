-- Batch scheduling, as migrations/postgres/0015_scheduling.sql in SQLite's
-- terms (line_at in microseconds since the Unix epoch, as every time here).
alter table apps add column max_running integer check (max_running > 0);
alter table apps add column weight integer not null default 1 check (weight > 0);
alter table jobs add column priority integer not null default 0
    check (priority between -1 and 1);
alter table jobs add column line_at integer not null default 0;
update jobs set line_at = created_at;
create index jobs_app_line on jobs (app, line_at, id)
    where state = 'queued' and interactive_tty is null;
create index jobs_app_active on jobs (app) where state in ('starting', 'running');
