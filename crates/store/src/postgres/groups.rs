//! Groups of tasks (`jobs run --tasks N`): their creation, in one
//! transaction with every task, their reads and their cancel.

use chrono::{DateTime, Utc};
use jobs_core::{
    Size,
    groups::task_env,
    wire::{Group, GroupCreate},
};
use sqlx::types::Json;

use super::PgStore;
use super::jobs::{count_queued, lock_app_defaults, lock_free_uploads};
use crate::shared_rows::{GroupFields, TaskFields, group_from_parts};
use crate::{JOB_EVENTS_CHANNEL, StoreError, new_group_id, new_job_id};

#[derive(sqlx::FromRow)]
struct GroupRow {
    id: String,
    app: String,
    parallelism: Option<i32>,
    created_by: Option<String>,
    created_at: DateTime<Utc>,
}

impl PgStore {
    /// Inserts a group and its `tasks` queued jobs, all or nothing. Refused
    /// with `TooManyTasks` when the tasks would take the app past
    /// `max_queued` queued jobs. A repeated idempotency key returns the
    /// earlier group, with `false`.
    pub async fn create_group(
        &self,
        app: &str,
        create: &GroupCreate,
        max_queued: Option<i64>,
        created_by: Option<&str>,
    ) -> Result<(Group, bool), StoreError> {
        let job = &create.job;
        let mut tx = self.pool.begin().await?;
        let (app_size, app_timeout) = lock_app_defaults(&mut tx, app).await?;
        if let Some(key) = &job.idempotency_key {
            let existing: Option<(String,)> =
                sqlx::query_as("select id from job_groups where app = $1 and idempotency_key = $2")
                    .bind(app)
                    .bind(key)
                    .fetch_optional(&mut *tx)
                    .await?;
            if let Some((id,)) = existing {
                drop(tx);
                return Ok((self.get_group(&id).await?, false));
            }
        }
        let tasks = i64::from(create.tasks);
        if let Some(limit) = max_queued {
            let queued = count_queued(&mut tx, app).await?;
            if queued + tasks > limit {
                return Err(StoreError::TooManyTasks {
                    app: app.to_owned(),
                    queued,
                    tasks,
                    limit,
                });
            }
        }
        let upload_ids: Vec<String> = job.uploads.iter().map(|u| u.id.clone()).collect();
        let uploads = lock_free_uploads(&mut tx, app, job).await?;
        let group_id = new_group_id();
        let inserted = sqlx::query(
            "insert into job_groups (id, app, tasks, parallelism, idempotency_key, created_by) \
             values ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&group_id)
        .bind(app)
        .bind(i32::try_from(create.tasks).unwrap_or(i32::MAX))
        .bind(
            create
                .parallelism
                .map(|p| i32::try_from(p).unwrap_or(i32::MAX)),
        )
        .bind(&job.idempotency_key)
        .bind(created_by)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            // A concurrent request with the same key won the race.
            Err(sqlx::Error::Database(e))
                if e.constraint() == Some("job_groups_app_idempotency_key") =>
            {
                drop(tx);
                let key = job.idempotency_key.as_deref().unwrap_or_default();
                let (id,): (String,) = sqlx::query_as(
                    "select id from job_groups where app = $1 and idempotency_key = $2",
                )
                .bind(app)
                .bind(key)
                .fetch_one(&self.pool)
                .await?;
                return Ok((self.get_group(&id).await?, false));
            }
            Err(e) => return Err(e.into()),
        }
        // Ids in index order: uuid v7 sorts by creation, so the tasks of
        // one place in line start by index.
        let job_ids: Vec<String> = (0..create.tasks).map(|_| new_job_id()).collect();
        let envs: Vec<Json<std::collections::BTreeMap<String, String>>> = (0..create.tasks)
            .map(|index| {
                let mut env = job.env.clone();
                env.extend(task_env(index, create.tasks));
                Json(env)
            })
            .collect();
        let size = job
            .size
            .unwrap_or_else(|| app_size.parse::<Size>().unwrap_or_default());
        let priority = job.priority.unwrap_or_default();
        sqlx::query(
            "insert into jobs (id, app, command, env, size, timeout_seconds, uploads, \
               artifact_paths, queue_timeout_seconds, created_by, priority, line_at, \
               group_id, task_index) \
             select task.id, $3, $4, task.env, $5, $6, $7, $8, $9, $10, $11, \
               now() + make_interval(secs => $12), $13, (task.n - 1)::integer \
             from unnest($1::text[], $2::jsonb[]) with ordinality as task (id, env, n)",
        )
        .bind(&job_ids)
        .bind(&envs)
        .bind(app)
        .bind(Json(&job.command))
        .bind(size.as_str())
        .bind(job.timeout_seconds.unwrap_or(app_timeout))
        .bind(Json(&uploads))
        .bind(Json(&job.artifacts))
        .bind(job.queue_timeout_seconds)
        .bind(created_by)
        .bind(priority.as_i16())
        .bind(priority.line_offset_seconds() as f64)
        .bind(&group_id)
        .execute(&mut *tx)
        .await?;
        // The uploads belong to the first task; every task copies them, and
        // the purge keeps a group's jobs until all of them are old enough.
        if !upload_ids.is_empty() {
            sqlx::query("update uploads set job_id = $1 where id = any($2)")
                .bind(&job_ids[0])
                .bind(&upload_ids)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok((self.get_group(&group_id).await?, true))
    }

    /// The group and every task, by index.
    pub async fn get_group(&self, id: &str) -> Result<Group, StoreError> {
        let group: Option<GroupRow> = sqlx::query_as(
            "select id, app, parallelism, created_by, created_at from job_groups where id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let group = group.ok_or_else(|| StoreError::GroupNotFound(id.to_owned()))?;
        let tasks: Vec<TaskFields> = sqlx::query_as(
            "select id, task_index, state, attempt, exit_code, reason, started_at, \
               finished_at, command, priority \
             from jobs where group_id = $1 order by task_index",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(group_from_parts(
            GroupFields {
                id: group.id,
                app: group.app,
                parallelism: group.parallelism,
                created_by: group.created_by,
                created_at: group.created_at,
            },
            tasks,
        ))
    }

    /// Cancels every queued task at once and asks the workers of the
    /// starting and running ones to stop them. Returns the group after the
    /// cancel and the ids of the tasks whose workers must be told.
    pub async fn cancel_group(&self, id: &str) -> Result<(Group, Vec<String>), StoreError> {
        sqlx::query(
            "with changed as ( \
               update jobs set state = 'canceled', reason = 'canceled while queued', \
                 cancel_requested_at = now(), finished_at = now(), updated_at = now() \
               where group_id = $1 and state = 'queued' returning id) \
             select pg_notify($2, id) from changed",
        )
        .bind(id)
        .bind(JOB_EVENTS_CHANNEL)
        .execute(&self.pool)
        .await?;
        // A task claimed meanwhile left `queued` before the update above
        // reached it: it is starting now, and stopped here.
        let stopping: Vec<(String,)> = sqlx::query_as(
            "update jobs set cancel_requested_at = coalesce(cancel_requested_at, now()), \
               updated_at = now() \
             where group_id = $1 and state in ('starting', 'running') returning id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let group = self.get_group(id).await?;
        Ok((group, stopping.into_iter().map(|(id,)| id).collect()))
    }
}
