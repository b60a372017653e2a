-- One row that names this deployment (this database) where the database is
-- not: the broker's exchange of the workers' signals (cancels, drains,
-- interactive offers) is `jobs.signals.ID`, so that every API and worker of
-- one deployment meet there whatever their queue, and deployments sharing
-- a broker stay apart, as NOTIFY's channels did within their database.
create table deployment (
    one_row boolean primary key default true check (one_row),
    id text not null
);
insert into deployment (id) values (replace(gen_random_uuid()::text, '-', ''));
