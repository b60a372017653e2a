-- Apps, jobs and their logs, for the embedded store of `jobs dev`.
--
-- The same tables and constraints as migrations/postgres, in SQLite's terms:
-- - every timestamp is an INTEGER of microseconds since the Unix epoch (UTC),
--   so that comparisons and lease arithmetic are plain integer operations;
--   the database clock is `unixepoch('subsec')` (millisecond resolution);
-- - JSON documents (env, command) are TEXT;
-- - tables are STRICT, so a value of the wrong type is an error, as in
--   PostgreSQL;
-- - foreign keys need `PRAGMA foreign_keys = ON`, which every connection of
--   the store sets.

create table apps (
    name            text not null primary key,
    image           text not null,
    env             text not null default '{}',
    size            text not null default 'M',
    timeout_seconds integer not null default 3600,
    created_at      integer not null
        default (cast(round(unixepoch('subsec') * 1000) as integer) * 1000),
    updated_at      integer not null
        default (cast(round(unixepoch('subsec') * 1000) as integer) * 1000)
) strict;

create table jobs (
    id                  text not null primary key,
    app                 text not null references apps(name) on delete cascade,
    command             text not null,
    env                 text not null default '{}',
    size                text not null,
    timeout_seconds     integer not null,
    state               text not null default 'queued' check (state in
        ('queued', 'starting', 'running', 'succeeded', 'failed', 'canceled', 'timed_out', 'lost')),
    attempt             integer not null default 0,
    max_attempts        integer not null default 3,
    exit_code           integer,
    reason              text,
    cancel_requested_at integer,
    lease_owner         text,
    lease_expires_at    integer,
    -- The outbox: null until the dispatcher confirmed the wake-up for this job.
    published_at        integer,
    idempotency_key     text,
    created_at          integer not null
        default (cast(round(unixepoch('subsec') * 1000) as integer) * 1000),
    updated_at          integer not null
        default (cast(round(unixepoch('subsec') * 1000) as integer) * 1000),
    started_at          integer,
    finished_at         integer
) strict;

create unique index jobs_app_idempotency_key on jobs (app, idempotency_key)
    where idempotency_key is not null;
create index jobs_app_created on jobs (app, created_at desc);
create index jobs_unpublished on jobs (created_at)
    where state = 'queued' and published_at is null;
create index jobs_leased on jobs (lease_expires_at)
    where state in ('starting', 'running');

create table job_logs (
    job_id text not null references jobs(id) on delete cascade,
    seq    integer not null,
    -- 1 is stdout, 2 is stderr.
    stream integer not null check (stream in (1, 2)),
    time   integer not null,
    data   blob not null,
    primary key (job_id, seq)
) strict;
