-- Interactive runs and the worker registry, as
-- migrations/postgres/0006_interactive.sql in SQLite's terms.

alter table jobs add column interactive_tty integer;
alter table jobs add column attach_url text;
alter table jobs add column attach_secret text;

create table workers (
    id           text primary key,
    slots        integer not null check (slots >= 0),
    free_slots   integer not null check (free_slots >= 0),
    heartbeat_at integer not null
);
