//! What a worker does to a job it holds: the fenced claim, the move to
//! `running`, heartbeats and the terminal write.
//!
//! Every statement here is fenced on `(id, attempt, lease_owner)` and on the
//! states it may leave, so a stale worker can never overwrite a newer attempt.
//! Lease times come from the database clock, never the worker's.

use std::{collections::BTreeMap, time::Duration};

use jobs_core::{JobState, wire::Job};
use sqlx::types::Json;

use super::{
    SqliteStore, duration_micros,
    rows::{HardeningRow, JobRow, job_columns, now},
};
use crate::{
    JOB_EVENTS_CHANNEL, StoreError,
    model::{AttachEndpoint, ClaimedJob, Fence, Heartbeat, HeldJob, secret_values},
    shared_rows::{group_has_room, max_output},
};

#[derive(sqlx::FromRow)]
struct ClaimRow {
    #[sqlx(flatten)]
    job: JobRow,
    image: String,
    app_env: Json<BTreeMap<String, String>>,
    app_secret_env: Json<Vec<String>>,
    #[sqlx(flatten)]
    hardening: HardeningRow,
    max_output_bytes: Option<i64>,
    attach_url: Option<String>,
    attach_secret: Option<String>,
    queued_micros: i64,
    last_log_seq: i64,
}

/// The claim of the queued job whose id the SQL expression `$target` gives
/// (`$1` its parameter, `$2` the worker, `$3` the lease in microseconds):
/// refused while the worker drains or the app is at its `max_running` cap.
macro_rules! claim_statement {
    ($target:expr) => {
        concat!(
            "update jobs set state = 'starting', attempt = attempt + 1, lease_owner = $2, \
               start_requested_at = null, stop_reason = null, lease_expires_at = ",
            now!(),
            " + $3, updated_at = ",
            now!(),
            " where id in ",
            $target,
            " and state = 'queued' \
               and not exists (select 1 from workers w \
                 where w.id = $2 and w.draining_since is not null) \
               and coalesce((select count(*) from jobs r where r.app = jobs.app \
                 and r.state in ('starting', 'running')) \
                 < (select a.max_running from apps a where a.name = jobs.app), 1) \
               and ",
            group_has_room!("jobs"),
            " returning ",
            job_columns!(),
            ", (select image from apps where apps.name = jobs.app) as image, \
               (select env from apps where apps.name = jobs.app) as app_env, \
               (select secret_env from apps where apps.name = jobs.app) as app_secret_env, \
               (select cap_add from apps where apps.name = jobs.app) as cap_add, \
               (select run_as_user from apps where apps.name = jobs.app) as run_as_user, \
               (select read_only_root from apps where apps.name = jobs.app) as read_only_root, \
               (select network_none from apps where apps.name = jobs.app) as network_none, \
               (select network_name from apps where apps.name = jobs.app) as network_name, \
               (select max_output_bytes from apps where apps.name = jobs.app) \
                 as max_output_bytes, \
               attach_url, attach_secret, updated_at - created_at as queued_micros, \
               coalesce((select max(seq) from job_logs where job_id = jobs.id), 0) \
                 as last_log_seq"
        )
    };
}

impl SqliteStore {
    /// Claims a queued job: `queued → starting`, `attempt + 1`, and a lease.
    /// `None` when the job is not queued, the worker is draining, or the
    /// job's app is at its `max_running` cap. One statement: SQLite runs it
    /// under the write lock, so the cap's count cannot go stale.
    pub async fn claim(
        &self,
        job_id: &str,
        worker_id: &str,
        lease: Duration,
    ) -> Result<Option<ClaimedJob>, StoreError> {
        let row: Option<ClaimRow> = sqlx::query_as(claim_statement!("($1)"))
            .bind(job_id)
            .bind(worker_id)
            .bind(duration_micros(lease))
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|row| self.claimed_job(row, worker_id)))
    }

    /// Claims the job a free slot should take (see `jobs_core::scheduling`):
    /// the head of the line of the app with the fewest starting and running
    /// jobs per unit of weight, among the apps under their cap.
    pub async fn claim_next(
        &self,
        worker_id: &str,
        lease: Duration,
    ) -> Result<Option<ClaimedJob>, StoreError> {
        // Only jobs that may start count: a group at its parallelism
        // neither gives its app a head nor is taken.
        let row: Option<ClaimRow> = sqlx::query_as(claim_statement!(concat!(
            "(select q.id from jobs q where q.state = 'queued' and q.interactive_tty is null \
               and ",
            group_has_room!("q"),
            " and q.app = (select a.name from apps a \
                 where exists (select 1 from jobs h where h.app = a.name \
                     and h.state = 'queued' and h.interactive_tty is null and ",
            group_has_room!("h"),
            ") and coalesce((select count(*) from jobs r where r.app = a.name \
                     and r.state in ('starting', 'running')) < a.max_running, 1) \
                 order by (select count(*) from jobs r where r.app = a.name \
                     and r.state in ('starting', 'running')) * 1.0 / a.weight, \
                   (select min(h.line_at) from jobs h where h.app = a.name \
                     and h.state = 'queued' and h.interactive_tty is null and ",
            group_has_room!("h"),
            ") limit 1) \
               order by q.line_at, q.id limit 1) and $1 is null"
        )))
        .bind(None::<String>)
        .bind(worker_id)
        .bind(duration_micros(lease))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|row| self.claimed_job(row, worker_id)))
    }

    /// Claims up to `max` jobs for free slots, one [`Self::claim_next`]
    /// after the other: one process writes the file, so a batch saves no
    /// round trip here.
    pub async fn claim_batch(
        &self,
        worker_id: &str,
        lease: Duration,
        max: u32,
    ) -> Result<Vec<ClaimedJob>, StoreError> {
        let mut claimed = Vec::new();
        while claimed.len() < max.max(1) as usize {
            match self.claim_next(worker_id, lease).await? {
                Some(job) => claimed.push(job),
                None => break,
            }
        }
        Ok(claimed)
    }

    /// What a worker needs of a job it claimed; wakes the job's followers.
    fn claimed_job(&self, row: ClaimRow, worker_id: &str) -> ClaimedJob {
        let job: Job = row.job.into();
        // The app's secret values are masked even where a job's override
        // replaced the var: the app's value is secret whatever the job runs.
        let secret_values = secret_values(&row.app_env.0, &row.app_secret_env.0);
        let mut env = row.app_env.0;
        env.extend(job.env.clone());
        self.notify(JOB_EVENTS_CHANNEL, &job.id);
        ClaimedJob {
            fence: Fence {
                job_id: job.id.clone(),
                attempt: job.attempt,
                worker_id: worker_id.to_owned(),
            },
            image: row.image,
            env,
            size: job.size,
            timeout: Duration::from_secs(job.timeout_seconds.max(1) as u64),
            hardening: row.hardening.into(),
            max_output: max_output(row.max_output_bytes),
            secret_values,
            attach: row
                .attach_url
                .zip(row.attach_secret)
                .map(|(url, secret)| AttachEndpoint { url, secret }),
            queued_for: Duration::from_micros(row.queued_micros.max(0) as u64),
            last_log_seq: row.last_log_seq,
            job,
        }
    }

    /// `starting → running`, once the container has started. Returns whether
    /// the fence still held.
    pub async fn mark_running(&self, fence: &Fence) -> Result<bool, StoreError> {
        let updated = sqlx::query(concat!(
            "update jobs set state = 'running', started_at = ",
            now!(),
            ", updated_at = ",
            now!(),
            " where id = $1 and attempt = $2 and lease_owner = $3 and state = 'starting'"
        ))
        .bind(&fence.job_id)
        .bind(fence.attempt)
        .bind(&fence.worker_id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if updated == 1 {
            self.notify(JOB_EVENTS_CHANNEL, &fence.job_id);
        }
        Ok(updated == 1)
    }

    /// Renews the lease, and reports whether a cancel was asked meanwhile.
    pub async fn heartbeat(&self, fence: &Fence, lease: Duration) -> Result<Heartbeat, StoreError> {
        let row: Option<(bool,)> = sqlx::query_as(concat!(
            "update jobs set lease_expires_at = ",
            now!(),
            " + $4 \
             where id = $1 and attempt = $2 and lease_owner = $3 \
               and state in ('starting', 'running') \
             returning cancel_requested_at is not null"
        ))
        .bind(&fence.job_id)
        .bind(fence.attempt)
        .bind(&fence.worker_id)
        .bind(duration_micros(lease))
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some((cancel_requested,)) => Heartbeat::Renewed { cancel_requested },
            None => Heartbeat::Lost,
        })
    }

    /// Records that the worker is about to start the container, fenced:
    /// from then on the job is never queued again.
    pub async fn record_start(&self, fence: &Fence) -> Result<bool, StoreError> {
        let updated = sqlx::query(concat!(
            "update jobs set start_requested_at = ",
            now!(),
            " where id = $1 and attempt = $2 and lease_owner = $3 and state = 'starting'"
        ))
        .bind(&fence.job_id)
        .bind(fence.attempt)
        .bind(&fence.worker_id)
        .execute(&self.pool)
        .await?;
        Ok(updated.rows_affected() == 1)
    }

    /// Records why the worker is about to stop the container, fenced.
    pub async fn record_stop(&self, fence: &Fence, reason: &str) -> Result<bool, StoreError> {
        let updated = sqlx::query(
            "update jobs set stop_reason = $4 \
             where id = $1 and attempt = $2 and lease_owner = $3 \
               and state in ('starting', 'running')",
        )
        .bind(&fence.job_id)
        .bind(fence.attempt)
        .bind(&fence.worker_id)
        .bind(reason)
        .execute(&self.pool)
        .await?;
        Ok(updated.rows_affected() == 1)
    }

    /// Writes the terminal state. Returns whether the fence still held; when
    /// it did not, a newer attempt or the reaper owns the job and nothing
    /// is written.
    pub async fn finish(
        &self,
        fence: &Fence,
        state: JobState,
        exit_code: Option<i32>,
        reason: Option<&str>,
    ) -> Result<bool, StoreError> {
        debug_assert!(state.is_terminal(), "finish needs a terminal state");
        let updated = sqlx::query(concat!(
            "update jobs set state = $4, exit_code = $5, reason = $6, finished_at = ",
            now!(),
            ", updated_at = ",
            now!(),
            ", lease_expires_at = null \
             where id = $1 and attempt = $2 and lease_owner = $3 \
               and state in ('starting', 'running')"
        ))
        .bind(&fence.job_id)
        .bind(fence.attempt)
        .bind(&fence.worker_id)
        .bind(state.as_str())
        .bind(exit_code)
        .bind(reason)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if updated == 1 {
            self.notify(JOB_EVENTS_CHANNEL, &fence.job_id);
        }
        Ok(updated == 1)
    }

    /// Hands a job that never started back to the queue. The relay then
    /// publishes its wake-up again.
    pub async fn requeue_unstarted(&self, fence: &Fence) -> Result<bool, StoreError> {
        let updated = sqlx::query(concat!(
            "update jobs set state = 'queued', lease_owner = null, lease_expires_at = null, \
               published_at = case when interactive_tty is null then null else published_at end, \
               updated_at = ",
            now!(),
            " where id = $1 and attempt = $2 and lease_owner = $3 and state = 'starting' \
               and cancel_requested_at is null and start_requested_at is null"
        ))
        .bind(&fence.job_id)
        .bind(fence.attempt)
        .bind(&fence.worker_id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if updated == 1 {
            self.notify(JOB_EVENTS_CHANNEL, &fence.job_id);
        }
        Ok(updated == 1)
    }

    /// The jobs this worker holds, for reconciliation when it starts.
    pub async fn jobs_held_by(&self, worker_id: &str) -> Result<Vec<HeldJob>, StoreError> {
        type Row = (
            String,
            i32,
            String,
            i64,
            Option<i64>,
            Json<BTreeMap<String, String>>,
            Json<Vec<String>>,
            Option<String>,
            bool,
            Option<i64>,
        );
        let rows: Vec<Row> = sqlx::query_as(concat!(
            "select jobs.id, jobs.attempt, jobs.state, jobs.timeout_seconds, ",
            now!(),
            " - jobs.started_at, apps.env, apps.secret_env, \
               coalesce(jobs.stop_reason, \
                 case when jobs.cancel_requested_at is not null then 'canceled' end), \
               jobs.start_requested_at is not null, apps.max_output_bytes \
             from jobs join apps on apps.name = jobs.app \
             where jobs.lease_owner = $1 and jobs.state in ('starting', 'running')"
        ))
        .bind(worker_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(
                    job_id,
                    attempt,
                    state,
                    timeout_seconds,
                    running_micros,
                    env,
                    secret_env,
                    stop_reason,
                    start_requested,
                    max_output_bytes,
                )| {
                    HeldJob {
                        fence: Fence {
                            job_id,
                            attempt,
                            worker_id: worker_id.to_owned(),
                        },
                        running: state == "running",
                        start_requested,
                        max_output: max_output(max_output_bytes),
                        timeout_left: Duration::from_secs(timeout_seconds.max(0) as u64)
                            .saturating_sub(Duration::from_micros(
                                running_micros.unwrap_or(0).max(0) as u64,
                            )),
                        secret_values: secret_values(&env.0, &secret_env.0),
                        stop_reason,
                    }
                },
            )
            .collect())
    }
}
