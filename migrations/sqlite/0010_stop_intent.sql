-- The stop intent, as migrations/postgres/0010_stop_intent.sql.
alter table jobs add column stop_reason text;
