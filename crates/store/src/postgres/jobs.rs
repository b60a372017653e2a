//! Job rows: creation (with the outbox column), reads, listing and cancel.

use super::PgStore;
use crate::model::{AttachEndpoint, CancelOutcome};
use jobs_core::{
    JobState, Size,
    wire::{Job, JobCreate, Upload},
};
use sqlx::types::Json;

use super::rows::{JobRow, job_columns};
use crate::shared_rows::{UploadRow, uploads_in_order};
use crate::{JOB_EVENTS_CHANNEL, StoreError, new_job_id};

impl PgStore {
    /// Inserts a queued job for `app`.
    ///
    /// Returns the job and whether it was created now (`false` when the
    /// idempotency key matched an earlier job, which is returned instead).
    pub async fn create_job(
        &self,
        app: &str,
        create: &JobCreate,
    ) -> Result<(Job, bool), StoreError> {
        self.create_job_within(app, create, None, None, None).await
    }

    /// [`Self::create_job`], refused with `TooManyJobs` when the app already
    /// has `max_active` jobs queued, starting or running. The count and the
    /// insert are in one transaction under a lock on the app's row (`for update`), so concurrent requests
    /// cannot both slip under the limit. A repeated idempotency key still
    /// returns its job.
    pub async fn create_job_within(
        &self,
        app: &str,
        create: &JobCreate,
        max_queued: Option<i64>,
        attach: Option<&AttachEndpoint>,
        created_by: Option<&str>,
    ) -> Result<(Job, bool), StoreError> {
        let mut tx = self.pool.begin().await?;
        let (app_size, app_timeout) = lock_app_defaults(&mut tx, app).await?;
        if let Some(key) = &create.idempotency_key {
            let existing: Option<JobRow> = sqlx::query_as(concat!(
                "select ",
                job_columns!(),
                " from jobs where app = $1 and idempotency_key = $2"
            ))
            .bind(app)
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(existing) = existing {
                return Ok((existing.into(), false));
            }
        }
        if let Some(limit) = max_queued.filter(|_| create.interactive.is_none()) {
            let queued = count_queued(&mut tx, app).await?;
            if queued >= limit {
                return Err(StoreError::TooManyJobs {
                    app: app.to_owned(),
                    queued,
                    limit,
                });
            }
        }
        let size = create
            .size
            .unwrap_or_else(|| app_size.parse::<Size>().unwrap_or_default());
        let upload_ids: Vec<String> = create.uploads.iter().map(|u| u.id.clone()).collect();
        let uploads = lock_free_uploads(&mut tx, app, create).await?;
        let priority = create.priority.unwrap_or_default();
        let job_id = new_job_id();
        let inserted: Result<JobRow, sqlx::Error> = sqlx::query_as(concat!(
            // An interactive run is never published: `published_at` is set
            // at once, so the relay leaves it alone.
            "insert into jobs (id, app, command, env, size, timeout_seconds, idempotency_key, \
               interactive_tty, attach_url, attach_secret, uploads, artifact_paths, published_at, \
               queue_timeout_seconds, created_by, priority, line_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
               case when $8::boolean is null then null else now() end, $13, $14, $15, \
               now() + make_interval(secs => $16)) returning ",
            job_columns!()
        ))
        .bind(&job_id)
        .bind(app)
        .bind(Json(&create.command))
        .bind(Json(&create.env))
        .bind(size.as_str())
        .bind(create.timeout_seconds.unwrap_or(app_timeout))
        .bind(&create.idempotency_key)
        .bind(create.interactive.map(|interactive| interactive.tty))
        .bind(attach.map(|attach| attach.url.as_str()))
        .bind(attach.map(|attach| attach.secret.as_str()))
        .bind(Json(&uploads))
        .bind(Json(&create.artifacts))
        .bind(create.queue_timeout_seconds)
        .bind(created_by)
        .bind(priority.as_i16())
        .bind(priority.line_offset_seconds() as f64)
        .fetch_one(&mut *tx)
        .await;
        let row = match inserted {
            Ok(row) => row,
            // A concurrent request with the same key won the race: return its job.
            Err(sqlx::Error::Database(e)) if e.constraint() == Some("jobs_app_idempotency_key") => {
                drop(tx);
                let key = create.idempotency_key.as_deref().unwrap_or_default();
                return Ok((self.job_by_idempotency_key(app, key).await?, false));
            }
            Err(e) => return Err(e.into()),
        };
        if !upload_ids.is_empty() {
            sqlx::query("update uploads set job_id = $1 where id = any($2)")
                .bind(&job_id)
                .bind(&upload_ids)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok((row.into(), true))
    }

    async fn job_by_idempotency_key(&self, app: &str, key: &str) -> Result<Job, StoreError> {
        let row: JobRow = sqlx::query_as(concat!(
            "select ",
            job_columns!(),
            " from jobs where app = $1 and idempotency_key = $2"
        ))
        .bind(app)
        .bind(key)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.into())
    }

    /// Frees an idempotency key whose job was created more than `ttl` ago,
    /// so that the next request with it creates a new job. Returns whether
    /// a key was freed. The job itself stays, without its key.
    pub async fn release_expired_idempotency_key(
        &self,
        app: &str,
        key: &str,
        ttl: std::time::Duration,
    ) -> Result<bool, StoreError> {
        let released = sqlx::query(
            "update jobs set idempotency_key = null, updated_at = now() \
             where app = $1 and idempotency_key = $2 \
             and created_at < now() - make_interval(secs => $3)",
        )
        .bind(app)
        .bind(key)
        .bind(ttl.as_secs_f64())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(released > 0)
    }

    /// Records that the broker confirmed the wake-up for a job.
    pub async fn mark_published(&self, job_ids: &[String]) -> Result<(), StoreError> {
        sqlx::query(
            "update jobs set published_at = now() where id = any($1) and published_at is null",
        )
        .bind(job_ids)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks every queued job unpublished, so that the relay publishes it.
    pub async fn forget_publications(&self) -> Result<u64, StoreError> {
        let updated = sqlx::query("update jobs set published_at = null where state = 'queued' and interactive_tty is null")
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(updated)
    }

    /// Queued jobs whose wake-up was never confirmed, oldest first.
    pub async fn unpublished_jobs(
        &self,
        older_than: std::time::Duration,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        let ids: Vec<(String,)> = sqlx::query_as(
            "select id from jobs where state = 'queued' and published_at is null \
             and created_at < now() - make_interval(secs => $1) order by created_at limit $2",
        )
        .bind(older_than.as_secs_f64())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(ids.into_iter().map(|(id,)| id).collect())
    }

    pub async fn get_job(&self, id: &str) -> Result<Job, StoreError> {
        let row: Option<JobRow> = sqlx::query_as(concat!(
            "select ",
            job_columns!(),
            " from jobs where id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(Job::from)
            .ok_or_else(|| StoreError::JobNotFound(id.to_owned()))
    }

    /// The app's jobs, newest first.
    pub async fn list_jobs(
        &self,
        app: &str,
        state: Option<JobState>,
        limit: i64,
    ) -> Result<Vec<Job>, StoreError> {
        let rows: Vec<JobRow> = sqlx::query_as(concat!(
            "select ",
            job_columns!(),
            " from jobs where app = $1 and ($2::text is null or state = $2) \
              order by created_at desc, id desc limit $3"
        ))
        .bind(app)
        .bind(state.map(JobState::as_str))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Job::from).collect())
    }

    /// How many jobs are in each state, for the metrics; states with none
    /// are left out.
    pub async fn jobs_by_state(&self) -> Result<Vec<(JobState, i64)>, StoreError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("select state, count(*) from jobs group by state")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(state, count)| Some((state.parse().ok()?, count)))
            .collect())
    }

    /// The queued jobs (interactive runs aside) of each app and priority,
    /// with how long the oldest has waited, in seconds.
    pub async fn queued_by_app(&self) -> Result<Vec<(String, i16, i64, f64)>, StoreError> {
        Ok(sqlx::query_as(
            "select app, priority, count(*), \
               extract(epoch from now() - min(created_at))::float8 \
             from jobs where state = 'queued' and interactive_tty is null \
             group by app, priority",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Cancels a queued job at once, or asks the worker of a running one to
    /// stop it. Both are compare-and-sets on the state.
    pub async fn cancel_job(&self, id: &str) -> Result<CancelOutcome, StoreError> {
        let canceled: Option<JobRow> = sqlx::query_as(concat!(
            "update jobs set state = 'canceled', reason = 'canceled while queued', \
             cancel_requested_at = now(), finished_at = now(), updated_at = now() \
             where id = $1 and state = 'queued' returning ",
            job_columns!()
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = canceled {
            self.notify(JOB_EVENTS_CHANNEL, id).await?;
            return Ok(CancelOutcome::CanceledWhileQueued(row.into()));
        }
        let requested: Option<JobRow> = sqlx::query_as(concat!(
            "update jobs set cancel_requested_at = coalesce(cancel_requested_at, now()), \
             updated_at = now() where id = $1 and state in ('starting', 'running') returning ",
            job_columns!()
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = requested {
            return Ok(CancelOutcome::StopRequested(row.into()));
        }
        Ok(CancelOutcome::AlreadyEnded(self.get_job(id).await?))
    }

    pub(crate) async fn notify(&self, channel: &str, payload: &str) -> Result<(), StoreError> {
        sqlx::query("select pg_notify($1, $2)")
            .bind(channel)
            .bind(payload)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// The app's default size and timeout, with its row locked until the
/// commit: the creations of one app take their turns, so that the flood
/// limit's count and the insert that follows cannot interleave.
pub(super) async fn lock_app_defaults(
    tx: &mut sqlx::PgConnection,
    app: &str,
) -> Result<(String, i64), StoreError> {
    let defaults: Option<(String, i64)> =
        sqlx::query_as("select size, timeout_seconds from apps where name = $1 for update")
            .bind(app)
            .fetch_optional(tx)
            .await?;
    defaults.ok_or_else(|| StoreError::AppNotFound(app.to_owned()))
}

/// The app's queued jobs, interactive runs aside: what the flood limit counts.
pub(super) async fn count_queued(
    tx: &mut sqlx::PgConnection,
    app: &str,
) -> Result<i64, StoreError> {
    let (queued,): (i64,) = sqlx::query_as(
        "select count(*) from jobs where app = $1 and state = 'queued' \
         and interactive_tty is null",
    )
    .bind(app)
    .fetch_one(tx)
    .await?;
    Ok(queued)
}

/// The uploads `create` names, in its order, each a free upload of the app,
/// locked until the commit so that two creations cannot take one. Without
/// uploads, no round trip.
pub(super) async fn lock_free_uploads(
    tx: &mut sqlx::PgConnection,
    app: &str,
    create: &JobCreate,
) -> Result<Vec<Upload>, StoreError> {
    if create.uploads.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = create.uploads.iter().map(|u| u.id.clone()).collect();
    let found: Vec<UploadRow> = sqlx::query_as(
        "select id, name, size, sha256 from uploads \
         where app = $1 and id = any($2) and job_id is null for update",
    )
    .bind(app)
    .bind(&ids)
    .fetch_all(tx)
    .await?;
    uploads_in_order(create, found.into_iter().map(Upload::from).collect())
}
