-- Fan-out (jobs_core::groups): a group of tasks, jobs of one app made by
-- one request, at most `parallelism` of them starting or running at once.
create table job_groups (
    id text primary key,
    app text not null references apps (name) on delete cascade,
    tasks integer not null check (tasks > 0),
    parallelism integer check (parallelism > 0),
    idempotency_key text,
    created_by text,
    created_at timestamptz not null default now(),
    constraint job_groups_app_idempotency_key unique (app, idempotency_key)
);
alter table jobs
    add column group_id text references job_groups (id) on delete cascade,
    add column task_index integer check (task_index >= 0);
-- A group's tasks by index, and its starting and running ones, which a
-- claim counts against its parallelism.
create index jobs_group_tasks on jobs (group_id, task_index) where group_id is not null;
create index jobs_group_active on jobs (group_id)
    where group_id is not null and state in ('starting', 'running');
