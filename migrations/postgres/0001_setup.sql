-- Apps, jobs and their logs. PostgreSQL is the single source of truth.

create table apps (
    name            text primary key,
    image           text not null,
    env             jsonb not null default '{}'::jsonb,
    size            text not null default 'M',
    timeout_seconds bigint not null default 3600,
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now()
);

create table jobs (
    id                  text primary key,
    app                 text not null references apps(name) on delete cascade,
    command             jsonb not null,
    env                 jsonb not null default '{}'::jsonb,
    size                text not null,
    timeout_seconds     bigint not null,
    state               text not null default 'queued' check (state in
        ('queued', 'starting', 'running', 'succeeded', 'failed', 'canceled', 'timed_out', 'lost')),
    attempt             integer not null default 0,
    max_attempts        integer not null default 3,
    exit_code           integer,
    reason              text,
    cancel_requested_at timestamptz,
    lease_owner         text,
    lease_expires_at    timestamptz,
    -- The outbox: null until the broker confirmed the wake-up for this job.
    published_at        timestamptz,
    idempotency_key     text,
    created_at          timestamptz not null default now(),
    updated_at          timestamptz not null default now(),
    started_at          timestamptz,
    finished_at         timestamptz
);

create unique index jobs_app_idempotency_key on jobs (app, idempotency_key)
    where idempotency_key is not null;
create index jobs_app_created on jobs (app, created_at desc);
create index jobs_unpublished on jobs (created_at)
    where state = 'queued' and published_at is null;
create index jobs_leased on jobs (lease_expires_at)
    where state in ('starting', 'running');

create table job_logs (
    job_id text not null references jobs(id) on delete cascade,
    seq    bigint not null,
    -- 1 is stdout, 2 is stderr.
    stream smallint not null check (stream in (1, 2)),
    time   timestamptz not null,
    data   bytea not null,
    primary key (job_id, seq)
);

-- Output is mostly incompressible or already small; skipping pglz keeps the
-- log pump's insert path cheap.
alter table job_logs alter column data set storage external;
