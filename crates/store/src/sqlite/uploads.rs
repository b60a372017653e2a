//! Uploads and artifacts, as in `postgres/uploads.rs`.

use std::time::Duration;

use jobs_core::wire::{Artifact, Upload};
use sqlx::types::Json;

use super::{SqliteStore, duration_micros, rows::now};
use crate::model::{Fence, PurgedJob};
use crate::shared_rows::{PurgedRow, UploadRow};
use crate::{JOB_EVENTS_CHANNEL, StoreError};

impl SqliteStore {
    pub async fn create_upload(&self, app: &str, upload: &Upload) -> Result<(), StoreError> {
        let inserted = sqlx::query(concat!(
            "insert into uploads (id, app, name, size, sha256, created_at) \
             values ($1, $2, $3, $4, $5, ",
            now!(),
            ")"
        ))
        .bind(&upload.id)
        .bind(app)
        .bind(&upload.name)
        .bind(upload.size)
        .bind(&upload.sha256)
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                Err(StoreError::AppNotFound(app.to_owned()))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn free_uploads(&self, app: &str, ids: &[String]) -> Result<Vec<Upload>, StoreError> {
        let rows: Vec<UploadRow> = sqlx::query_as(
            "select id, name, size, sha256 from uploads \
             where app = $1 and id in (select value from json_each($2)) and job_id is null",
        )
        .bind(app)
        .bind(Json(ids))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Upload::from).collect())
    }

    pub async fn record_artifacts(
        &self,
        fence: &Fence,
        artifacts: &[Artifact],
    ) -> Result<bool, StoreError> {
        let updated = sqlx::query(concat!(
            "update jobs set artifacts = $4, updated_at = ",
            now!(),
            " where id = $1 and attempt = $2 and lease_owner = $3 \
               and state in ('starting', 'running')"
        ))
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
        let rows: Vec<PurgedRow> = sqlx::query_as(concat!(
            "delete from jobs where id in ( \
               select id from jobs j where finished_at < ",
            now!(),
            " - $1 and state not in ('queued', 'starting', 'running') \
                 and (group_id is null or not exists (select 1 from jobs s \
                   where s.group_id = j.group_id and (s.finished_at is null \
                     or s.finished_at >= ",
            now!(),
            " - $1))) \
               order by finished_at limit $2) \
             returning id, uploads, artifacts"
        ))
        .bind(duration_micros(older_than))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        for row in &rows {
            self.notify(JOB_EVENTS_CHANNEL, &row.id);
        }
        sqlx::query(concat!(
            "delete from job_groups where created_at < ",
            now!(),
            " - $1 and not exists (select 1 from jobs where group_id = job_groups.id)"
        ))
        .bind(duration_micros(older_than))
        .execute(&self.pool)
        .await?;
        Ok(rows.into_iter().map(PurgedJob::from).collect())
    }

    pub async fn purge_free_uploads(
        &self,
        older_than: Duration,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        let ids: Vec<(String,)> = sqlx::query_as(concat!(
            "delete from uploads where id in ( \
               select id from uploads where job_id is null and created_at < ",
            now!(),
            " - $1 order by created_at limit $2) \
             returning id"
        ))
        .bind(duration_micros(older_than))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(ids.into_iter().map(|(id,)| id).collect())
    }
}
