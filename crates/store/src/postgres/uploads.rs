//! Uploads and artifacts: the rows that say which objects exist, the
//! fenced record of collected artifacts, and the purges.

use std::time::Duration;

use jobs_core::wire::{Artifact, Upload};
use sqlx::types::Json;

use super::PgStore;
use crate::model::{Fence, PurgedJob};
use crate::shared_rows::{PurgedRow, UploadRow};
use crate::{JOB_EVENTS_CHANNEL, StoreError};

impl PgStore {
    pub async fn create_upload(&self, app: &str, upload: &Upload) -> Result<(), StoreError> {
        let inserted = sqlx::query(
            "insert into uploads (id, app, name, size, sha256) values ($1, $2, $3, $4, $5)",
        )
        .bind(&upload.id)
        .bind(app)
        .bind(&upload.name)
        .bind(upload.size)
        .bind(&upload.sha256)
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => Ok(()),
            // The app was deleted while the bytes streamed in.
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                Err(StoreError::AppNotFound(app.to_owned()))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn free_uploads(&self, app: &str, ids: &[String]) -> Result<Vec<Upload>, StoreError> {
        let rows: Vec<UploadRow> = sqlx::query_as(
            "select id, name, size, sha256 from uploads \
             where app = $1 and id = any($2) and job_id is null",
        )
        .bind(app)
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Upload::from).collect())
    }

    pub async fn record_artifacts(
        &self,
        fence: &Fence,
        artifacts: &[Artifact],
    ) -> Result<bool, StoreError> {
        let updated = sqlx::query(
            "update jobs set artifacts = $4, updated_at = now() \
             where id = $1 and attempt = $2 and lease_owner = $3 \
               and state in ('starting', 'running')",
        )
        .bind(&fence.job_id)
        .bind(fence.attempt)
        .bind(&fence.worker_id)
        .bind(Json(artifacts))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(updated == 1)
    }

    pub async fn purge_ended_jobs(
        &self,
        older_than: Duration,
        limit: i64,
    ) -> Result<Vec<PurgedJob>, StoreError> {
        let rows: Vec<PurgedRow> = sqlx::query_as(
            // A group's tasks share its uploads: none goes before all ended
            // long enough ago.
            "delete from jobs where id in ( \
               select id from jobs j where finished_at < now() - make_interval(secs => $1) \
                 and state not in ('queued', 'starting', 'running') \
                 and (group_id is null or not exists (select 1 from jobs s \
                   where s.group_id = j.group_id and (s.finished_at is null \
                     or s.finished_at >= now() - make_interval(secs => $1)))) \
               order by finished_at limit $2 for update skip locked) \
             returning id, uploads, artifacts",
        )
        .bind(older_than.as_secs_f64())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        for row in &rows {
            self.notify(JOB_EVENTS_CHANNEL, &row.id).await?;
        }
        sqlx::query(
            "delete from job_groups g where created_at < now() - make_interval(secs => $1) \
             and not exists (select 1 from jobs where group_id = g.id)",
        )
        .bind(older_than.as_secs_f64())
        .execute(&self.pool)
        .await?;
        Ok(rows.into_iter().map(PurgedJob::from).collect())
    }

    pub async fn purge_free_uploads(
        &self,
        older_than: Duration,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        let ids: Vec<(String,)> = sqlx::query_as(
            "delete from uploads where id in ( \
               select id from uploads where job_id is null \
                 and created_at < now() - make_interval(secs => $1) \
               order by created_at limit $2 for update skip locked) \
             returning id",
        )
        .bind(older_than.as_secs_f64())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(ids.into_iter().map(|(id,)| id).collect())
    }
}
