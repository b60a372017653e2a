-- Output and storage caps (jobs_core::storage): the most output one job of
-- the app keeps (null: the default, 1 GiB), the app's storage quota over
-- logs, uploads and artifacts (null: none), and each job's stored output,
-- counted as its chunks are stored, so that an app's use is a sum over its
-- jobs rather than over every chunk.
alter table apps
    add column max_output_bytes bigint check (max_output_bytes > 0),
    add column storage_quota_bytes bigint check (storage_quota_bytes > 0);
alter table jobs
    add column output_bytes bigint not null default 0;
update jobs set output_bytes = coalesce(
    (select sum(octet_length(data)) from job_logs where job_logs.job_id = jobs.id), 0);
