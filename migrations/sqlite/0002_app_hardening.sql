-- Per-app container hardening, as migrations/postgres/0002_app_hardening.sql
-- in SQLite's terms: the array is TEXT holding JSON, booleans are INTEGER
-- 0 or 1. Every default keeps what apps had before.

alter table apps add column cap_add text not null default '[]';
alter table apps add column run_as_user text;
alter table apps add column read_only_root integer not null default 0
    check (read_only_root in (0, 1));
alter table apps add column network_none integer not null default 0
    check (network_none in (0, 1));
