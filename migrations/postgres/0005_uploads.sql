-- Uploads and artifacts. Their bytes live in the object store (jobs-blobs);
-- these rows say what exists there, so that a purge or a garbage collection
-- knows which objects to delete.
--
-- An upload is stored before its job exists (the CLI sends the files, then
-- creates the job naming them); `job_id` stays null until a job takes it.
-- An upload no job took within a while is garbage-collected.

create table uploads (
    id         text primary key,
    app        text not null references apps(name) on delete cascade,
    -- The file name in /tmp/uploads: no separator, never `.` or `..`.
    name       text not null,
    size       bigint not null check (size >= 0),
    sha256     text not null check (length(sha256) = 64),
    job_id     text references jobs(id) on delete cascade,
    created_at timestamptz not null default now()
);

create index uploads_unattached on uploads (created_at) where job_id is null;
create index uploads_job on uploads (job_id) where job_id is not null;

alter table jobs
    -- What the job's container receives: a JSON array of
    -- {id, name, size, sha256}, copied from `uploads` when the job is created.
    add column uploads        jsonb not null default '[]'::jsonb,
    -- The paths to collect when the command ends, a JSON array of strings.
    add column artifact_paths jsonb not null default '[]'::jsonb,
    -- What was collected, a JSON array of {path, size, error}, written by
    -- the worker (fenced) before the terminal state.
    add column artifacts      jsonb not null default '[]'::jsonb;

-- The purge looks for long-ended jobs.
create index jobs_finished on jobs (finished_at) where finished_at is not null;
