//! Groups of tasks, as in the PostgreSQL store: creation in one
//! transaction with every task, reads and the cancel.

use jobs_core::{
    Size,
    groups::task_env,
    wire::{Group, GroupCreate},
};
use sqlx::types::Json;

use super::jobs::{app_defaults, count_queued, free_uploads_in};
use super::{
    BEGIN_IMMEDIATE, SqliteStore,
    rows::{now, time},
};
use crate::shared_rows::{GroupFields, TaskFields, group_from_parts};
use crate::{JOB_EVENTS_CHANNEL, StoreError, new_group_id, new_job_id};

#[derive(sqlx::FromRow)]
struct GroupRow {
    id: String,
    app: String,
    parallelism: Option<i32>,
    created_by: Option<String>,
    created_at: i64,
}

#[derive(sqlx::FromRow)]
struct TaskRow {
    id: String,
    task_index: i32,
    state: String,
    attempt: i32,
    exit_code: Option<i32>,
    reason: Option<String>,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    command: Json<Vec<String>>,
    priority: i16,
}

impl SqliteStore {
    /// Inserts a group and its tasks, all or nothing (see the PostgreSQL
    /// store). The transaction holds the write lock from its start.
    pub async fn create_group(
        &self,
        app: &str,
        create: &GroupCreate,
        max_queued: Option<i64>,
        created_by: Option<&str>,
    ) -> Result<(Group, bool), StoreError> {
        let job = &create.job;
        let mut tx = self.pool.begin_with(BEGIN_IMMEDIATE).await?;
        let (app_size, app_timeout) = app_defaults(&mut tx, app).await?;
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
        let uploads = free_uploads_in(&mut tx, app, job).await?;
        let group_id = new_group_id();
        sqlx::query(concat!(
            "insert into job_groups (id, app, tasks, parallelism, idempotency_key, created_by, \
               created_at) values ($1, $2, $3, $4, $5, $6, ",
            now!(),
            ")"
        ))
        .bind(&group_id)
        .bind(app)
        .bind(i64::from(create.tasks))
        .bind(create.parallelism.map(i64::from))
        .bind(&job.idempotency_key)
        .bind(created_by)
        .execute(&mut *tx)
        .await?;
        let size = job
            .size
            .unwrap_or_else(|| app_size.parse::<Size>().unwrap_or_default());
        let priority = job.priority.unwrap_or_default();
        let mut first_job_id = None;
        for index in 0..create.tasks {
            let job_id = new_job_id();
            let mut env = job.env.clone();
            env.extend(task_env(index, create.tasks));
            sqlx::query(concat!(
                "insert into jobs (id, app, command, env, size, timeout_seconds, uploads, \
                   artifact_paths, queue_timeout_seconds, created_by, priority, created_at, \
                   updated_at, line_at, group_id, task_index) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, ",
                now!(),
                ", ",
                now!(),
                ", ",
                now!(),
                " + $12, $13, $14)"
            ))
            .bind(&job_id)
            .bind(app)
            .bind(Json(&job.command))
            .bind(Json(&env))
            .bind(size.as_str())
            .bind(job.timeout_seconds.unwrap_or(app_timeout))
            .bind(Json(&uploads))
            .bind(Json(&job.artifacts))
            .bind(job.queue_timeout_seconds)
            .bind(created_by)
            .bind(priority.as_i16())
            .bind(priority.line_offset_seconds() * 1_000_000)
            .bind(&group_id)
            .bind(i64::from(index))
            .execute(&mut *tx)
            .await?;
            first_job_id.get_or_insert(job_id);
        }
        sqlx::query("update uploads set job_id = $1 where id in (select value from json_each($2))")
            .bind(&first_job_id)
            .bind(Json(&upload_ids))
            .execute(&mut *tx)
            .await?;
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
        let tasks: Vec<TaskRow> = sqlx::query_as(
            "select id, task_index, state, attempt, exit_code, reason, started_at, \
               finished_at, command, priority \
             from jobs where group_id = $1 order by task_index",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let group = GroupFields {
            id: group.id,
            app: group.app,
            parallelism: group.parallelism,
            created_by: group.created_by,
            created_at: time(group.created_at),
        };
        let tasks = tasks
            .into_iter()
            .map(|task| TaskFields {
                id: task.id,
                task_index: task.task_index,
                state: task.state,
                attempt: task.attempt,
                exit_code: task.exit_code,
                reason: task.reason,
                started_at: task.started_at.map(time),
                finished_at: task.finished_at.map(time),
                command: task.command,
                priority: task.priority,
            })
            .collect();
        Ok(group_from_parts(group, tasks))
    }

    /// Cancels every queued task at once and asks the workers of the
    /// others to stop them (see the PostgreSQL store).
    pub async fn cancel_group(&self, id: &str) -> Result<(Group, Vec<String>), StoreError> {
        let canceled: Vec<(String,)> = sqlx::query_as(concat!(
            "update jobs set state = 'canceled', reason = 'canceled while queued', \
               cancel_requested_at = ",
            now!(),
            ", finished_at = ",
            now!(),
            ", updated_at = ",
            now!(),
            " where group_id = $1 and state = 'queued' returning id"
        ))
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        for (job_id,) in &canceled {
            self.notify(JOB_EVENTS_CHANNEL, job_id);
        }
        let stopping: Vec<(String,)> = sqlx::query_as(concat!(
            "update jobs set cancel_requested_at = coalesce(cancel_requested_at, ",
            now!(),
            "), updated_at = ",
            now!(),
            " where group_id = $1 and state in ('starting', 'running') returning id"
        ))
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let group = self.get_group(id).await?;
        Ok((group, stopping.into_iter().map(|(id,)| id).collect()))
    }
}
