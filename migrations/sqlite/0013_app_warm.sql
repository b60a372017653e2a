-- The warm pool, as migrations/postgres/0013_app_warm.sql in SQLite's terms.
alter table apps add column warm integer not null default 0
    check (warm >= 0);
