-- Output and storage caps, as migrations/postgres/0017_storage.sql.
alter table apps add column max_output_bytes integer check (max_output_bytes > 0);
alter table apps add column storage_quota_bytes integer check (storage_quota_bytes > 0);
alter table jobs add column output_bytes integer not null default 0;
update jobs set output_bytes = coalesce(
    (select sum(length(data)) from job_logs where job_logs.job_id = jobs.id), 0);
