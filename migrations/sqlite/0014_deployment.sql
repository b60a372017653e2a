-- The deployment's name, as migrations/postgres/0014_deployment.sql in
-- SQLite's terms (`jobs dev` sends its signals in memory, but the store's
-- contract is the same).
create table deployment (
    one_row integer primary key default 1 check (one_row = 1),
    id text not null
);
insert into deployment (id) values (lower(hex(randomblob(16))));
