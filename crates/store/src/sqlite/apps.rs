//! App rows.

use crate::{
    model::{DeletedApp, PurgedJob},
    shared_rows::{PurgedRow, bytes_column, cap_column, warm_column},
};
use std::collections::BTreeMap;

use jobs_core::{
    hardening::Hardening,
    wire::{App, AppCreate, AppUpdate},
};
use sqlx::types::Json;

use super::{
    BEGIN_IMMEDIATE, SqliteStore, is_unique_violation,
    rows::{AppRow, app_columns, now},
};
use crate::{
    StoreError,
    model::{DEFAULT_APP_TIMEOUT_SECONDS, secret_names, updated_secret_names},
};

impl SqliteStore {
    pub async fn create_app(&self, create: &AppCreate) -> Result<App, StoreError> {
        let row: Result<AppRow, sqlx::Error> = sqlx::query_as(concat!(
            "insert into apps (name, image, env, size, timeout_seconds, cap_add, run_as_user, \
             read_only_root, network_none, secret_env, warm, max_running, weight, \
             max_output_bytes, storage_quota_bytes, network_name, created_at, updated_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, ",
            now!(),
            ", ",
            now!(),
            ") returning ",
            app_columns!()
        ))
        .bind(&create.name)
        .bind(&create.image)
        .bind(Json(&create.env))
        .bind(create.size.unwrap_or_default().as_str())
        .bind(
            create
                .timeout_seconds
                .unwrap_or(DEFAULT_APP_TIMEOUT_SECONDS),
        )
        .bind(Json(&create.hardening.cap_add))
        .bind(create.hardening.user.as_deref())
        .bind(create.hardening.read_only_root)
        .bind(create.hardening.network_none)
        .bind(Json(secret_names(&create.env, &create.secret_env, &[])))
        .bind(warm_column(create.warm.unwrap_or(0)))
        .bind(create.max_running.map(cap_column))
        .bind(cap_column(create.weight.unwrap_or(1)))
        .bind(create.max_output_bytes.map(bytes_column))
        .bind(create.storage_quota_bytes.map(bytes_column))
        .bind(create.hardening.network.as_deref())
        .fetch_one(&self.pool)
        .await;
        match row {
            Ok(row) => Ok(row.into()),
            Err(e) if is_unique_violation(&e, "apps.name") => {
                Err(StoreError::AppExists(create.name.clone()))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn list_apps(&self) -> Result<Vec<App>, StoreError> {
        let rows: Vec<AppRow> = sqlx::query_as(concat!(
            "select ",
            app_columns!(),
            " from apps order by name"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(App::from).collect())
    }

    pub async fn get_app(&self, name: &str) -> Result<App, StoreError> {
        let row: Option<AppRow> = sqlx::query_as(concat!(
            "select ",
            app_columns!(),
            " from apps where name = $1"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(App::from)
            .ok_or_else(|| StoreError::AppNotFound(name.to_owned()))
    }

    /// The app's storage quota; `None`: no quota.
    pub async fn storage_quota(&self, app: &str) -> Result<Option<u64>, StoreError> {
        let quota: Option<(Option<i64>,)> =
            sqlx::query_as("select storage_quota_bytes from apps where name = $1")
                .bind(app)
                .fetch_optional(&self.pool)
                .await?;
        let (quota,) = quota.ok_or_else(|| StoreError::AppNotFound(app.to_owned()))?;
        Ok(quota.and_then(|bytes| u64::try_from(bytes).ok()))
    }

    /// What the app's logs, artifacts and uploads take, in bytes.
    pub async fn storage_used(&self, app: &str) -> Result<u64, StoreError> {
        let (used,): (i64,) = sqlx::query_as(
            "select coalesce((select sum(output_bytes) from jobs where app = $1), 0) \
               + coalesce((select sum(json_extract(artifact.value, '$.size')) \
                           from jobs, json_each(jobs.artifacts) artifact \
                           where jobs.app = $1), 0) \
               + coalesce((select sum(size) from uploads where app = $1), 0)",
        )
        .bind(app)
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(used).unwrap_or(0))
    }

    /// Applies a partial update under the write lock (`BEGIN IMMEDIATE`), so
    /// concurrent updates of different env vars do not overwrite each other.
    pub async fn update_app(&self, name: &str, update: &AppUpdate) -> Result<App, StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_IMMEDIATE).await?;
        let current: Option<AppRow> = sqlx::query_as(concat!(
            "select ",
            app_columns!(),
            " from apps where name = $1"
        ))
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        let current = current.ok_or_else(|| StoreError::AppNotFound(name.to_owned()))?;
        let mut env: BTreeMap<String, String> = current.env.0;
        env.extend(update.env.clone());
        for key in &update.unset {
            env.remove(key);
        }
        let secret_env = updated_secret_names(&env, current.secret_env.0, update);
        let image = update.image.as_deref().unwrap_or(&current.image);
        let size = update.size.map_or(current.size.clone(), |s| s.to_string());
        let timeout = update.timeout_seconds.unwrap_or(current.timeout_seconds);
        let warm = update.warm.map_or(current.warm, warm_column);
        let max_running = update
            .max_running
            .map_or(current.max_running, |cap| cap.map(cap_column));
        let weight = update.weight.map_or(current.weight, cap_column);
        let max_output = update
            .max_output_bytes
            .map_or(current.storage.max_output_bytes, |cap| {
                cap.map(bytes_column)
            });
        let storage_quota = update
            .storage_quota_bytes
            .map_or(current.storage.storage_quota_bytes, |quota| {
                quota.map(bytes_column)
            });
        let mut hardening = Hardening::from(current.hardening);
        hardening.apply(update);
        let row: AppRow = sqlx::query_as(concat!(
            "update apps set image = $2, env = $3, size = $4, timeout_seconds = $5, \
             cap_add = $6, run_as_user = $7, read_only_root = $8, network_none = $9, secret_env = $10, \
             warm = $11, max_running = $12, weight = $13, max_output_bytes = $14, \
             storage_quota_bytes = $15, network_name = $16, updated_at = ",
            now!(),
            " where name = $1 returning ",
            app_columns!()
        ))
        .bind(name)
        .bind(image)
        .bind(Json(&env))
        .bind(size)
        .bind(timeout)
        .bind(Json(&hardening.cap_add))
        .bind(hardening.user.as_deref())
        .bind(hardening.read_only_root)
        .bind(hardening.network_none)
        .bind(Json(&secret_env))
        .bind(warm)
        .bind(max_running)
        .bind(weight)
        .bind(max_output)
        .bind(storage_quota)
        .bind(hardening.network.as_deref())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(row.into())
    }

    /// Deletes an app and its ended jobs; refuses while jobs are active.
    pub async fn delete_app(&self, name: &str) -> Result<DeletedApp, StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_IMMEDIATE).await?;
        let exists: Option<(String,)> = sqlx::query_as("select name from apps where name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(StoreError::AppNotFound(name.to_owned()));
        }
        let (active,): (i64,) = sqlx::query_as(
            "select count(*) from jobs where app = $1 and state in ('queued', 'starting', 'running')",
        )
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
        if active > 0 {
            return Err(StoreError::AppBusy {
                app: name.to_owned(),
                active,
            });
        }
        // What the object store holds for the app goes with it: read here,
        // deleted by the caller once the rows are gone.
        let jobs: Vec<PurgedRow> =
            sqlx::query_as("select id, uploads, artifacts from jobs where app = $1")
                .bind(name)
                .fetch_all(&mut *tx)
                .await?;
        let free_uploads: Vec<(String,)> =
            sqlx::query_as("select id from uploads where app = $1 and job_id is null")
                .bind(name)
                .fetch_all(&mut *tx)
                .await?;
        sqlx::query("delete from apps where name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(DeletedApp {
            jobs: jobs.into_iter().map(PurgedJob::from).collect(),
            free_uploads: free_uploads.into_iter().map(|(id,)| id).collect(),
        })
    }
}
