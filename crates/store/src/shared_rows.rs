//! Row pieces both stores read the same way: the hardening and warm
//! columns of an app and the column list of a job. Their types decode alike in
//! PostgreSQL and SQLite; timestamps, which do not, stay in each backend's
//! `rows.rs`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use jobs_core::{
    JobState,
    hardening::Hardening,
    scheduling::Priority,
    wire::{Artifact, Group, GroupTask, JobCreate, Upload, WorkerInfo},
};
use sqlx::types::Json;

/// The hardening columns of an app, in an app row and in a claim.
#[derive(sqlx::FromRow)]
pub(crate) struct HardeningRow {
    pub cap_add: Json<Vec<String>>,
    pub run_as_user: Option<String>,
    pub read_only_root: bool,
    pub network_none: bool,
    pub network_name: Option<String>,
}

impl From<HardeningRow> for Hardening {
    fn from(row: HardeningRow) -> Self {
        Hardening {
            cap_add: row.cap_add.0,
            user: row.run_as_user,
            read_only_root: row.read_only_root,
            network_none: row.network_none,
            network: row.network_name,
        }
    }
}

/// An app's storage columns, in an app row and in a claim.
#[derive(sqlx::FromRow)]
pub(crate) struct StorageRow {
    pub max_output_bytes: Option<i64>,
    pub storage_quota_bytes: Option<i64>,
}

impl StorageRow {
    /// The most output one job of the app keeps.
    pub fn max_output(&self) -> u64 {
        self.max_output_bytes
            .and_then(|bytes| u64::try_from(bytes).ok())
            .unwrap_or(jobs_core::storage::DEFAULT_MAX_OUTPUT_BYTES)
    }

    pub fn storage_quota(&self) -> Option<u64> {
        self.storage_quota_bytes
            .and_then(|bytes| u64::try_from(bytes).ok())
    }
}

/// The most output one job keeps, from its app's column (null: the
/// default).
pub(crate) fn max_output(column: Option<i64>) -> u64 {
    StorageRow {
        max_output_bytes: column,
        storage_quota_bytes: None,
    }
    .max_output()
}

/// A byte cap or quota as its column: the API bounds it at
/// [`jobs_core::storage::MAX_BYTES_SETTING`], far below `i64::MAX`.
pub(crate) fn bytes_column(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

/// An app's `warm` as its `integer` column holds it. The API caps it at
/// [`jobs_core::size::MAX_WARM`], far below `i32::MAX`.
pub(crate) fn warm_column(warm: u32) -> i32 {
    i32::try_from(warm).unwrap_or(i32::MAX)
}

/// An app's `warm` from its column, which refuses a negative count.
/// A queued job's place in its line, its app's load and the workers'
/// capacity, as both stores' `queue_places` read them.
#[derive(sqlx::FromRow)]
pub(crate) struct QueuePlaceRow {
    id: String,
    position: i64,
    app_running: i64,
    app_max_running: Option<i64>,
    group_running: i64,
    group_parallelism: Option<i64>,
    workers: i64,
    draining: i64,
    slots: i64,
    free_slots: i64,
}

impl QueuePlaceRow {
    pub(crate) fn into_place(self) -> (String, (i64, jobs_core::wire::Capacity)) {
        let capacity = jobs_core::wire::Capacity {
            workers: self.workers,
            draining: self.draining,
            slots: self.slots,
            free_slots: self.free_slots,
            app_running: self.app_running,
            app_max_running: self.app_max_running,
            group_running: self.group_running,
            group_parallelism: self.group_parallelism,
        };
        (self.id, (self.position, capacity))
    }
}

/// A cap or weight as its column: both are bounded far below `i32::MAX` by
/// the API's validation.
pub(crate) fn cap_column(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

pub(crate) fn warm_from_column(warm: i32) -> u32 {
    u32::try_from(warm).unwrap_or(0)
}

/// The columns of a job row, as a literal so that queries stay `&'static str`.
macro_rules! job_columns {
    () => {
        "id, app, command, env, size, timeout_seconds, state, attempt, exit_code, reason, \
         cancel_requested_at, lease_owner, created_at, started_at, finished_at, interactive_tty, \
         uploads, artifact_paths, artifacts, created_by, priority, group_id, task_index"
    };
}
pub(crate) use job_columns;

/// The upload, artifact-path and artifact columns of a job row.
#[derive(sqlx::FromRow)]
pub(crate) struct JobFilesRow {
    pub uploads: Json<Vec<Upload>>,
    pub artifact_paths: Json<Vec<String>>,
    pub artifacts: Json<Vec<Artifact>>,
}

/// The uploads a job create names, in its order, from the rows found; an
/// id with no free upload of the app is `UploadNotFound`.
pub(crate) fn uploads_in_order(
    create: &JobCreate,
    found: Vec<Upload>,
) -> Result<Vec<Upload>, crate::StoreError> {
    create
        .uploads
        .iter()
        .map(|wanted| {
            found
                .iter()
                .find(|upload| upload.id == wanted.id)
                .cloned()
                .ok_or_else(|| crate::StoreError::UploadNotFound(wanted.id.clone()))
        })
        .collect()
}

#[derive(sqlx::FromRow)]
pub(crate) struct UploadRow {
    pub id: String,
    pub name: String,
    pub size: i64,
    pub sha256: String,
}

impl From<UploadRow> for Upload {
    fn from(row: UploadRow) -> Self {
        Upload {
            id: row.id,
            name: row.name,
            size: row.size,
            sha256: row.sha256,
        }
    }
}

/// A purged job's id and what its objects were.
#[derive(sqlx::FromRow)]
pub(crate) struct PurgedRow {
    pub id: String,
    pub uploads: Json<Vec<Upload>>,
    pub artifacts: Json<Vec<Artifact>>,
}

impl From<PurgedRow> for crate::model::PurgedJob {
    fn from(row: PurgedRow) -> Self {
        crate::model::PurgedJob {
            id: row.id,
            uploads: row.uploads.0,
            artifacts: row.artifacts.0,
        }
    }
}

/// Hands each worker the ids of the jobs it holds, from `(lease_owner, id)`
/// pairs in the order they should be listed.
pub(crate) fn with_running_jobs(
    mut workers: Vec<WorkerInfo>,
    held: Vec<(String, String)>,
) -> Vec<WorkerInfo> {
    let mut by_owner: HashMap<String, Vec<String>> = HashMap::new();
    for (owner, job_id) in held {
        by_owner.entry(owner).or_default().push(job_id);
    }
    for worker in &mut workers {
        worker.running_jobs = by_owner.remove(&worker.id).unwrap_or_default();
    }
    workers
}

/// A SQL condition on the job row aliased `$job`: true unless the job is a
/// task of a group that has `parallelism` tasks starting or running
/// already. Written once for both stores, whose SQL agrees here.
macro_rules! group_has_room {
    ($job:literal) => {
        concat!(
            "(",
            $job,
            ".group_id is null or not exists (select 1 from job_groups g \
               where g.id = ",
            $job,
            ".group_id and g.parallelism <= (select count(*) from jobs t \
                 where t.group_id = g.id and t.state in ('starting', 'running'))))"
        )
    };
}
pub(crate) use group_has_room;

/// A group's own row, with times as [`DateTime`]s whatever the backend.
pub(crate) struct GroupFields {
    pub id: String,
    pub app: String,
    pub parallelism: Option<i32>,
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// What a group lists of each task, with times as [`DateTime`]s.
#[derive(sqlx::FromRow)]
pub(crate) struct TaskFields {
    pub id: String,
    pub task_index: i32,
    pub state: String,
    pub attempt: i32,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub command: Json<Vec<String>>,
    pub priority: i16,
}

/// The group, its command and priority read off its first task.
pub(crate) fn group_from_parts(group: GroupFields, tasks: Vec<TaskFields>) -> Group {
    let (command, priority) = tasks
        .first()
        .map(|task| (task.command.0.clone(), Priority::from_i16(task.priority)))
        .unwrap_or_default();
    Group {
        id: group.id,
        app: group.app,
        parallelism: group.parallelism.and_then(|p| u32::try_from(p).ok()),
        command,
        priority,
        created_at: group.created_at,
        created_by: group.created_by,
        tasks: tasks
            .into_iter()
            .map(|task| GroupTask {
                index: u32::try_from(task.task_index).unwrap_or_default(),
                job_id: task.id,
                // The table's check constraint admits only known states.
                state: task.state.parse().unwrap_or(JobState::Lost),
                attempt: task.attempt,
                exit_code: task.exit_code,
                reason: task.reason,
                started_at: task.started_at,
                finished_at: task.finished_at,
            })
            .collect(),
    }
}
