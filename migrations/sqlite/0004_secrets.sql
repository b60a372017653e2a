-- Secret config vars, as migrations/postgres/0004_secrets.sql in SQLite's
-- terms: a JSON array of env var names in TEXT.

alter table apps add column secret_env text not null default '[]';
