-- The start and stop intents, as migrations/postgres/0010_intents.sql.
alter table jobs add column start_requested_at integer;
alter table jobs add column stop_reason text;
