-- Fan-out, as migrations/postgres/0016_groups.sql in SQLite's terms.
create table job_groups (
    id text primary key,
    app text not null references apps (name) on delete cascade,
    tasks integer not null check (tasks > 0),
    parallelism integer check (parallelism > 0),
    idempotency_key text,
    created_by text,
    created_at integer not null,
    unique (app, idempotency_key)
);
alter table jobs add column group_id text references job_groups (id) on delete cascade;
alter table jobs add column task_index integer check (task_index >= 0);
create index jobs_group_tasks on jobs (group_id, task_index) where group_id is not null;
create index jobs_group_active on jobs (group_id)
    where group_id is not null and state in ('starting', 'running');
