-- Interactive runs and the worker registry.
--
-- An interactive job never enters the queue: it is inserted with
-- `published_at` set (so the relay never publishes it), a worker with a
-- free slot is offered it directly (NOTIFY jobs_direct), and that worker
-- dials back to `attach_url` with `attach_secret` as its bearer token.
-- `interactive_tty` is null for a queued job, and says whether the
-- interactive run has a pseudo-terminal otherwise.

alter table jobs
    add column interactive_tty boolean,
    add column attach_url text,
    add column attach_secret text;

-- Live workers and their free slots, written by each worker on every slot
-- change and heartbeat; the API picks a worker for an interactive run here.
create table workers (
    id           text primary key,
    slots        integer not null check (slots >= 0),
    free_slots   integer not null check (free_slots >= 0),
    heartbeat_at timestamptz not null default now()
);
