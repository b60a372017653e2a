//! What a worker does to a job it holds: the fenced claim, the move to
//! `running`, heartbeats and the terminal write.
//!
//! Every statement here is fenced on `(id, attempt, lease_owner)` and on the
//! states it may leave, so a stale worker can never overwrite a newer attempt.
//! Lease times come from the database clock (`now()`), never the worker's.

use super::PgStore;
use crate::model::{AttachEndpoint, ClaimedJob, Fence, Heartbeat, HeldJob, secret_values};
use std::{collections::BTreeMap, time::Duration};

use jobs_core::{JobState, wire::Job};
use sqlx::types::Json;

use super::rows::{HardeningRow, JobRow};
use crate::shared_rows::{group_has_room, max_output};
use crate::{JOB_EVENTS_CHANNEL, StoreError};

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
    queued_seconds: f64,
    last_log_seq: i64,
}

/// Wraps an `update jobs …` so that it also wakes the followers of each job
/// it changed, on the channel bound as parameter `$N`: one statement, so
/// one commit (a separate NOTIFY is a transaction of its own, with its own
/// WAL flush). The statement's count of rows stays the update's.
macro_rules! with_notify {
    ($update:literal, $channel_parameter:literal) => {
        concat!(
            "with changed as (",
            $update,
            " returning id) select pg_notify($",
            $channel_parameter,
            ", id) from changed"
        )
    };
}

/// `pg_advisory_xact_lock` on the claim lock of the app named by the SQL
/// expression `$app`: claims of one app wait for each other, until commit.
macro_rules! app_claim_lock {
    ($app:literal) => {
        concat!(
            "pg_advisory_xact_lock(hashtextextended('jobs.claim.' || ",
            $app,
            ", 0))"
        )
    };
}

/// The app a free slot should go to, in the order of
/// `jobs_core::scheduling` (fewest starting and running jobs per unit of
/// weight, then the oldest head of line), among the apps under their cap
/// with a job that may start; and whether its claims must take its claim
/// lock: those of an app with a cap, or with queued tasks of a group with
/// a parallelism, count what they may not pass.
const PICK_APP: &str = concat!(
    "select best.app, best.max_running is not null or exists (select 1 from jobs g \
       join job_groups p on p.id = g.group_id \
       where g.app = best.app and g.state = 'queued' and p.parallelism is not null) \
     from (select a.name as app, a.max_running from apps a \
       cross join lateral (select j.line_at from jobs j \
         where j.app = a.name and j.state = 'queued' and j.interactive_tty is null \
           and ",
    group_has_room!("j"),
    " order by j.line_at, j.id limit 1) head \
       cross join lateral (select count(*) as n from jobs r \
         where r.app = a.name and r.state in ('starting', 'running')) active \
       where a.max_running is null or active.n < a.max_running \
       order by active.n::float8 / a.weight, head.line_at limit 1) best"
);

/// The first `$limit` jobs of the line of the app `$1`, locked for the
/// claim (jobs another claim holds are passed over).
macro_rules! head_of_app {
    ($more:literal, $limit:literal) => {
        concat!(
            "select q.id from jobs q where q.app = $1 and q.state = 'queued' \
               and q.interactive_tty is null and ",
            group_has_room!("q"),
            $more,
            " order by q.line_at, q.id limit ",
            $limit,
            " for update skip locked"
        )
    };
}

/// The claim of the queued jobs whose ids the query `$target` selects, run
/// once (parameters: `$1` for the target, `$2` the worker, `$3` the lease
/// in seconds, `$4` the followers' channel): refused while the worker
/// drains or the app is at its `max_running` cap. Returns the claimed rows
/// with what the worker needs to run them. The cap is counted on the
/// statement's snapshot, so a target of several jobs is only for an app
/// without a cap; an app without one skips the count.
macro_rules! claim_statement {
    ($target:expr) => {
        concat!(
            // Materialized, so that its locking select runs once: inlined
            // as `id in (…)`, a rescan could lock and claim more rows than
            // its limit.
            "with picked as materialized (",
            $target,
            "), claimed as ( \
               update jobs set state = 'starting', attempt = attempt + 1, lease_owner = $2, \
                 start_requested_at = null, stop_reason = null, \
                 lease_expires_at = now() + make_interval(secs => $3), updated_at = now() \
               where id in (select id from picked) and state = 'queued' \
                 and not exists (select 1 from workers w \
                   where w.id = $2 and w.draining_since is not null) \
                 and ((select a.max_running from apps a where a.name = jobs.app) is null \
                   or (select count(*) from jobs r \
                     where r.app = jobs.app and r.state in ('starting', 'running')) \
                     < (select a.max_running from apps a where a.name = jobs.app)) \
                 and ",
            group_has_room!("jobs"),
            " returning * \
             ) select claimed.*, apps.image, apps.env as app_env, \
               apps.secret_env as app_secret_env, apps.cap_add, \
               apps.run_as_user, apps.read_only_root, apps.network_none, apps.network_name, \
               apps.max_output_bytes, \
               extract(epoch from claimed.updated_at - claimed.created_at)::float8 \
                 as queued_seconds, \
               coalesce((select max(seq) from job_logs where job_id = claimed.id), 0) \
                 as last_log_seq, \
               pg_notify($4, claimed.id) \
             from claimed join apps on apps.name = claimed.app"
        )
    };
}

impl PgStore {
    /// Claims a queued job: `queued → starting`, `attempt + 1`, and a lease.
    ///
    /// Returns `None` when the job is not queued (a duplicate or stale
    /// wake-up, or a canceled job), the worker is draining, or the job's app
    /// is at its `max_running` cap (an interactive run waits in its line).
    pub async fn claim(
        &self,
        job_id: &str,
        worker_id: &str,
        lease: Duration,
    ) -> Result<Option<ClaimedJob>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(concat!(
            "select ",
            app_claim_lock!("app"),
            " from jobs where id = $1"
        ))
        .bind(job_id)
        .execute(&mut *tx)
        .await?;
        let row = fetch_claim(
            &mut tx,
            claim_statement!("select $1::text as id"),
            job_id,
            worker_id,
            lease,
        )
        .await?;
        tx.commit().await?;
        Ok(row.map(|row| claimed_job(row, worker_id)))
    }

    /// Claims the job a free slot should take (see `jobs_core::scheduling`):
    /// the head of the line of the app with the fewest starting and running
    /// jobs per unit of weight, among the apps under their cap. `None` when
    /// no queued job may start now, or the worker is draining.
    pub async fn claim_next(
        &self,
        worker_id: &str,
        lease: Duration,
    ) -> Result<Option<ClaimedJob>, StoreError> {
        Ok(self.claim_batch(worker_id, lease, 1).await?.pop())
    }

    /// Claims up to `max` jobs for free slots at once: the first `max` of
    /// the line of the app [`Self::claim_next`] picks, in one statement,
    /// when the app counts nothing (no cap, no queued task of a bounded
    /// group); one job, under the app's claim lock, when it does. Empty
    /// when no queued job may start now, or the worker is draining.
    pub async fn claim_batch(
        &self,
        worker_id: &str,
        lease: Duration,
        max: u32,
    ) -> Result<Vec<ClaimedJob>, StoreError> {
        // Another worker may take the heads between the two statements; the
        // next app, or the next heads, are tried then.
        for _ in 0..3 {
            let picked: Option<(String, bool)> =
                sqlx::query_as(PICK_APP).fetch_optional(&self.pool).await?;
            let Some((app, needs_lock)) = picked else {
                return Ok(Vec::new());
            };
            let rows: Vec<ClaimRow> = if needs_lock {
                // Under the app's claim lock, with a snapshot taken once
                // any earlier claim of the app committed, so that two
                // claims never both slip under its cap or a parallelism.
                let mut tx = self.pool.begin().await?;
                sqlx::query(concat!("select ", app_claim_lock!("$1")))
                    .bind(&app)
                    .execute(&mut *tx)
                    .await?;
                let head = claim_statement!(head_of_app!("", "1"));
                let row = fetch_claim(&mut tx, head, &app, worker_id, lease).await?;
                tx.commit().await?;
                row.into_iter().collect()
            } else {
                // Nothing to count: concurrent claims of the app pass each
                // other's heads (skip locked), one statement each. Tasks of
                // a group with a parallelism, queued meanwhile, wait for a
                // claim under the lock.
                let heads = claim_statement!(head_of_app!(
                    " and not exists (select 1 from job_groups p \
                       where p.id = q.group_id and p.parallelism is not null)",
                    "$5"
                ));
                sqlx::query_as(heads)
                    .bind(&app)
                    .bind(worker_id)
                    .bind(lease.as_secs_f64())
                    .bind(JOB_EVENTS_CHANNEL)
                    .bind(i64::from(max.max(1)))
                    .fetch_all(&self.pool)
                    .await?
            };
            if !rows.is_empty() {
                return Ok(rows
                    .into_iter()
                    .map(|row| claimed_job(row, worker_id))
                    .collect());
            }
        }
        Ok(Vec::new())
    }

    /// `starting → running`, once the container has started. Returns whether
    /// the fence still held.
    pub async fn mark_running(&self, fence: &Fence) -> Result<bool, StoreError> {
        let updated = sqlx::query(with_notify!(
            "update jobs set state = 'running', started_at = now(), updated_at = now() \
             where id = $1 and attempt = $2 and lease_owner = $3 and state = 'starting'",
            "4"
        ))
        .bind(&fence.job_id)
        .bind(fence.attempt)
        .bind(&fence.worker_id)
        .bind(JOB_EVENTS_CHANNEL)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(updated == 1)
    }

    /// Renews the lease, and reports whether a cancel was asked meanwhile.
    pub async fn heartbeat(&self, fence: &Fence, lease: Duration) -> Result<Heartbeat, StoreError> {
        let row: Option<(bool,)> = sqlx::query_as(
            "update jobs set lease_expires_at = now() + make_interval(secs => $4) \
             where id = $1 and attempt = $2 and lease_owner = $3 \
               and state in ('starting', 'running') \
             returning cancel_requested_at is not null",
        )
        .bind(&fence.job_id)
        .bind(fence.attempt)
        .bind(&fence.worker_id)
        .bind(lease.as_secs_f64())
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
        let updated = sqlx::query(
            "update jobs set start_requested_at = now() \
             where id = $1 and attempt = $2 and lease_owner = $3 and state = 'starting'",
        )
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
        let updated = sqlx::query(with_notify!(
            "update jobs set state = $4, exit_code = $5, reason = $6, finished_at = now(), \
               updated_at = now(), lease_expires_at = null \
             where id = $1 and attempt = $2 and lease_owner = $3 \
               and state in ('starting', 'running')",
            "7"
        ))
        .bind(&fence.job_id)
        .bind(fence.attempt)
        .bind(&fence.worker_id)
        .bind(state.as_str())
        .bind(exit_code)
        .bind(reason)
        .bind(JOB_EVENTS_CHANNEL)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(updated == 1)
    }

    /// Hands a job that never started back to the queue. The relay then
    /// publishes its wake-up again.
    pub async fn requeue_unstarted(&self, fence: &Fence) -> Result<bool, StoreError> {
        let updated = sqlx::query(with_notify!(
            "update jobs set state = 'queued', lease_owner = null, lease_expires_at = null, \
               published_at = case when interactive_tty is null then null else published_at end, \
               updated_at = now() \
             where id = $1 and attempt = $2 and lease_owner = $3 and state = 'starting' \
               and cancel_requested_at is null and start_requested_at is null",
            "4"
        ))
        .bind(&fence.job_id)
        .bind(fence.attempt)
        .bind(&fence.worker_id)
        .bind(JOB_EVENTS_CHANNEL)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(updated == 1)
    }

    /// The jobs this worker holds, for reconciliation when it starts.
    pub async fn jobs_held_by(&self, worker_id: &str) -> Result<Vec<HeldJob>, StoreError> {
        type Row = (
            String,
            i32,
            String,
            i64,
            Option<f64>,
            Json<BTreeMap<String, String>>,
            Json<Vec<String>>,
            Option<String>,
            bool,
            Option<i64>,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "select jobs.id, jobs.attempt, jobs.state, jobs.timeout_seconds, \
               extract(epoch from now() - jobs.started_at)::float8, apps.env, apps.secret_env, \
               coalesce(jobs.stop_reason, \
                 case when jobs.cancel_requested_at is not null then 'canceled' end), \
               jobs.start_requested_at is not null, apps.max_output_bytes \
             from jobs join apps on apps.name = jobs.app \
             where jobs.lease_owner = $1 and jobs.state in ('starting', 'running')",
        )
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
                    running_seconds,
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
                            .saturating_sub(Duration::from_secs_f64(
                                running_seconds.unwrap_or(0.0).max(0.0),
                            )),
                        secret_values: secret_values(&env.0, &secret_env.0),
                        stop_reason,
                    }
                },
            )
            .collect())
    }
}

/// Runs a `claim_statement!` in `tx`, with `target` as its `$1`.
async fn fetch_claim(
    tx: &mut sqlx::PgConnection,
    statement: &'static str,
    target: &str,
    worker_id: &str,
    lease: Duration,
) -> Result<Option<ClaimRow>, sqlx::Error> {
    sqlx::query_as(statement)
        .bind(target)
        .bind(worker_id)
        .bind(lease.as_secs_f64())
        .bind(JOB_EVENTS_CHANNEL)
        .fetch_optional(tx)
        .await
}

/// What a worker needs of a job it claimed.
fn claimed_job(row: ClaimRow, worker_id: &str) -> ClaimedJob {
    let job: Job = row.job.into();
    // The app's secret values are masked even where a job's override
    // replaced the var: the app's value is secret whatever the job runs.
    let secret_values = secret_values(&row.app_env.0, &row.app_secret_env.0);
    let mut env = row.app_env.0;
    env.extend(job.env.clone());
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
        queued_for: Duration::from_secs_f64(row.queued_seconds.max(0.0)),
        last_log_seq: row.last_log_seq,
        job,
    }
}
