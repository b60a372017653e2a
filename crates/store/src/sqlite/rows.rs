//! Row types, the SQL spelling of the database clock, and the conversion of
//! rows to wire types.
//!
//! Timestamps are INTEGER microseconds since the Unix epoch (UTC).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use jobs_core::{
    JobState, Size,
    scheduling::Priority,
    wire::{App, Job},
};
use sqlx::types::Json;

use crate::shared_rows::warm_from_column;
pub(crate) use crate::shared_rows::{HardeningRow, JobFilesRow, StorageRow, job_columns};

/// The database clock, as microseconds since the Unix epoch, as a literal so
/// that queries stay `&'static str`. SQLite's `now` has millisecond
/// resolution and is the same for every use within one statement.
macro_rules! now {
    () => {
        "(cast(round(unixepoch('subsec') * 1000) as integer) * 1000)"
    };
}
pub(crate) use now;

/// Microseconds since the Unix epoch as a UTC time.
pub(crate) fn time(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

/// A UTC time as microseconds since the Unix epoch (truncated, like
/// PostgreSQL's `timestamptz`).
pub(crate) fn timestamp(time: DateTime<Utc>) -> i64 {
    time.timestamp_micros()
}

/// The columns of an [`AppRow`].
macro_rules! app_columns {
    () => {
        "name, image, env, secret_env, size, timeout_seconds, warm, max_running, weight, \
         cap_add, run_as_user, read_only_root, network_none, network_name, max_output_bytes, \
         storage_quota_bytes, created_at, updated_at"
    };
}
pub(crate) use app_columns;

#[derive(sqlx::FromRow)]
pub(crate) struct AppRow {
    pub name: String,
    pub image: String,
    pub env: Json<BTreeMap<String, String>>,
    pub secret_env: Json<Vec<String>>,
    pub size: String,
    pub timeout_seconds: i64,
    pub warm: i32,
    pub max_running: Option<i32>,
    pub weight: i32,
    #[sqlx(flatten)]
    pub hardening: HardeningRow,
    #[sqlx(flatten)]
    pub storage: StorageRow,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<AppRow> for App {
    fn from(row: AppRow) -> Self {
        App {
            name: row.name,
            image: row.image,
            env: row.env.0,
            secret_env: row.secret_env.0,
            size: row.size.parse().unwrap_or_default(),
            timeout_seconds: row.timeout_seconds,
            warm: warm_from_column(row.warm),
            max_running: row.max_running.and_then(|cap| u32::try_from(cap).ok()),
            weight: u32::try_from(row.weight).unwrap_or(1),
            hardening: row.hardening.into(),
            max_output_bytes: row.storage.max_output(),
            storage_quota_bytes: row.storage.storage_quota(),
            storage_used_bytes: None,
            created_at: time(row.created_at),
            updated_at: time(row.updated_at),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct JobRow {
    pub id: String,
    pub app: String,
    pub command: Json<Vec<String>>,
    pub env: Json<BTreeMap<String, String>>,
    pub size: String,
    pub timeout_seconds: i64,
    pub state: String,
    pub attempt: i32,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
    pub cancel_requested_at: Option<i64>,
    pub lease_owner: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub interactive_tty: Option<bool>,
    #[sqlx(flatten)]
    pub files: JobFilesRow,
    pub created_by: Option<String>,
    pub priority: i16,
    pub group_id: Option<String>,
    pub task_index: Option<i32>,
}

impl From<JobRow> for Job {
    fn from(row: JobRow) -> Self {
        Job {
            id: row.id,
            app: row.app,
            command: row.command.0,
            env: row.env.0,
            size: row.size.parse::<Size>().unwrap_or_default(),
            timeout_seconds: row.timeout_seconds,
            // The table's check constraint admits only known states.
            state: row.state.parse().unwrap_or(JobState::Lost),
            attempt: row.attempt,
            exit_code: row.exit_code,
            reason: row.reason,
            cancel_requested: row.cancel_requested_at.is_some(),
            worker_id: row.lease_owner,
            created_at: time(row.created_at),
            started_at: row.started_at.map(time),
            finished_at: row.finished_at.map(time),
            interactive: row
                .interactive_tty
                .map(|tty| jobs_core::wire::Interactive { tty }),
            uploads: row.files.uploads.0,
            artifact_paths: row.files.artifact_paths.0,
            artifacts: row.files.artifacts.0,
            created_by: row.created_by,
            priority: Priority::from_i16(row.priority),
            group_id: row.group_id,
            task_index: row.task_index.and_then(|index| u32::try_from(index).ok()),
            queue: None,
        }
    }
}
