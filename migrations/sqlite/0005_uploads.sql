-- Uploads and artifacts, as in migrations/postgres/0005_uploads.sql.

create table uploads (
    id         text not null primary key,
    app        text not null references apps(name) on delete cascade,
    name       text not null,
    size       integer not null check (size >= 0),
    sha256     text not null check (length(sha256) = 64),
    job_id     text references jobs(id) on delete cascade,
    created_at integer not null
        default (cast(round(unixepoch('subsec') * 1000) as integer) * 1000)
) strict;

create index uploads_unattached on uploads (created_at) where job_id is null;
create index uploads_job on uploads (job_id) where job_id is not null;

alter table jobs add column uploads text not null default '[]';
alter table jobs add column artifact_paths text not null default '[]';
alter table jobs add column artifacts text not null default '[]';

create index jobs_finished on jobs (finished_at) where finished_at is not null;
