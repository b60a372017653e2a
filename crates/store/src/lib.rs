//! The store: the single source of truth, and the only home of SQL.
//!
//! [`Store`] is the one type callers use. It dispatches to an
//! implementation:
//! - [`postgres`]: PostgreSQL, for production (any number of API and worker
//!   processes share it; LISTEN/NOTIFY carries wake-ups).
//! - [`sqlite`]: an embedded SQLite file, for `jobs dev` (one process; an
//!   in-process broadcast carries wake-ups). [`Store::connect`] picks it for
//!   a URL that starts with `sqlite:`.
//!
//! Every implementation keeps the same contract:
//! - every state change is a compare-and-set fenced on `(state, attempt,
//!   lease_owner)`;
//! - lease times come from the database clock, never a worker's;
//! - log chunks are idempotent on `(job_id, seq)`;
//! - a repeated idempotency key returns the first job.
//!
//! `tests/contract.rs` runs one set of tests against both implementations.
//!
//! [`model`] holds the types the contract speaks in.

pub mod model;
pub mod postgres;
mod shared_rows;
pub mod sqlite;

use std::time::Duration;

use jobs_core::{
    JobState,
    wire::{
        App, AppCreate, AppUpdate, Artifact, Group, GroupCreate, Job, JobCreate, LogChunk,
        TokenInfo, Upload,
    },
};
use tokio::sync::broadcast;

pub use model::*;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// The channel that carries a job id whenever its logs or state change.
pub const JOB_EVENTS_CHANNEL: &str = "jobs_job_events";
// The workers' own wake-ups (cancels, drains, interactive offers) go
// through the broker, not NOTIFY: see `jobs_dispatch::Signal`.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("app {0:?} not found")]
    AppNotFound(String),
    #[error("app {0:?} already exists")]
    AppExists(String),
    #[error("job {0:?} not found")]
    JobNotFound(String),
    #[error("group {0:?} not found")]
    GroupNotFound(String),
    #[error("app {app:?} still has {active} active jobs: cancel them or wait")]
    AppBusy { app: String, active: i64 },
    #[error(
        "app {app:?} already has {queued} queued jobs: the limit is {limit} \
         (JOBS_MAX_QUEUED_JOBS_PER_APP); wait for some to start or cancel some"
    )]
    TooManyJobs {
        app: String,
        queued: i64,
        limit: i64,
    },
    #[error(
        "app {app:?} has {queued} queued jobs and the group's {tasks} tasks would pass \
         the limit of {limit} (JOBS_MAX_QUEUED_JOBS_PER_APP); wait for some to start, \
         cancel some, or split the group"
    )]
    TooManyTasks {
        app: String,
        queued: i64,
        tasks: i64,
        limit: i64,
    },
    /// No upload of this app with this id is free to take: it never
    /// existed, belongs to another app, another job took it, or it was
    /// garbage-collected.
    #[error("upload {0:?} not found: upload the file again")]
    UploadNotFound(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl StoreError {
    /// Whether the database refused a write for lack of disk space:
    /// PostgreSQL's `disk_full` (SQLSTATE 53100) or SQLite's `SQLITE_FULL`.
    pub fn is_disk_full(&self) -> bool {
        let StoreError::Database(sqlx::Error::Database(database)) = self else {
            return false;
        };
        matches!(database.code().as_deref(), Some("53100" | "13"))
    }
}

/// A handle on the store; cheap to clone.
#[derive(Clone, Debug)]
pub enum Store {
    Postgres(PgStore),
    Sqlite(SqliteStore),
}

impl Store {
    /// Connects to `database_url` and runs the migrations: an embedded
    /// SQLite file for a `sqlite:` URL (e.g. `sqlite:///var/lib/jobs/jobs.db`,
    /// created if missing), PostgreSQL otherwise.
    pub async fn connect(database_url: &str) -> anyhow::Result<Self> {
        if database_url.starts_with("sqlite:") {
            Ok(Store::Sqlite(SqliteStore::connect(database_url).await?))
        } else {
            Ok(Store::Postgres(PgStore::connect(database_url).await?))
        }
    }

    /// Wake-ups carrying a job id: on [`JOB_EVENTS_CHANNEL`] whenever a
    /// job's logs or state change.
    pub async fn notifications(
        &self,
        channel: &'static str,
    ) -> Result<JobNotifications, StoreError> {
        let mut each = self.notifications_on(&[channel]).await?;
        Ok(each.remove(0))
    }

    /// Wake-ups on each of `channels`, in their order, through one
    /// connection (PostgreSQL wakes every listening connection for every
    /// NOTIFY: a process listens on one).
    pub async fn notifications_on(
        &self,
        channels: &[&'static str],
    ) -> Result<Vec<JobNotifications>, StoreError> {
        let senders = match self {
            Store::Postgres(store) => store.notifications(channels).await?,
            Store::Sqlite(store) => {
                let mut senders = Vec::new();
                for channel in channels {
                    senders.push(store.notifications(channel).await?);
                }
                senders
            }
        };
        Ok(senders
            .into_iter()
            .map(|sender| JobNotifications { sender })
            .collect())
    }
}

/// Wake-ups for one channel, fanned out in memory to any number of
/// subscribers.
pub struct JobNotifications {
    sender: broadcast::Sender<String>,
}

impl JobNotifications {
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.sender.subscribe()
    }
}

/// Defines each method of [`Store`] as a call of the same method on the
/// implementation at hand, so that the contract is written once.
macro_rules! delegate {
    ($( $(#[$doc:meta])* fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty; )*) => {
        impl Store {
            $(
                $(#[$doc])*
                pub async fn $name(&self $(, $arg: $ty)*) -> $ret {
                    match self {
                        Store::Postgres(store) => store.$name($($arg),*).await,
                        Store::Sqlite(store) => store.$name($($arg),*).await,
                    }
                }
            )*
        }
    };
}

delegate! {
    /// Whether the database answers.
    fn ping(&self) -> Result<(), StoreError>;
    /// The name of this deployment (its database), the same for every
    /// process that uses it and never another's: what names the broker's
    /// exchange of the workers' signals.
    fn deployment_id(&self) -> Result<String, StoreError>;

    fn create_app(&self, create: &AppCreate) -> Result<App, StoreError>;
    fn list_apps(&self) -> Result<Vec<App>, StoreError>;
    fn get_app(&self, name: &str) -> Result<App, StoreError>;
    /// Applies a partial update; concurrent updates of different env vars
    /// do not overwrite each other.
    fn update_app(&self, name: &str, update: &AppUpdate) -> Result<App, StoreError>;
    /// The app's storage quota over logs, uploads and artifacts; `None`:
    /// no quota.
    fn storage_quota(&self, app: &str) -> Result<Option<u64>, StoreError>;
    /// What the app's logs, artifacts and uploads take now, in bytes.
    fn storage_used(&self, app: &str) -> Result<u64, StoreError>;
    /// Deletes an app and its ended jobs; refuses while jobs are active.
    /// Returns what the app's jobs and uploads had in the object store.
    fn delete_app(&self, name: &str) -> Result<DeletedApp, StoreError>;

    /// Inserts a queued job. Returns it and whether it was created now
    /// (`false` when the idempotency key matched an earlier job).
    fn create_job(&self, app: &str, create: &JobCreate) -> Result<(Job, bool), StoreError>;
    /// `create_job`, refused with `TooManyJobs` (creating nothing) when the
    /// app already has `max_queued` queued jobs (the flood limit; interactive
    /// runs are not counted); the count and the insert are atomic per app.
    /// An interactive `create` (with its `attach` endpoint) is never
    /// published: the relay leaves it alone and the reaper never re-queues it.
    fn create_job_within(&self, app: &str, create: &JobCreate, max_queued: Option<i64>, attach: Option<&AttachEndpoint>, created_by: Option<&str>) -> Result<(Job, bool), StoreError>;
    /// Frees an idempotency key of `app` whose job was created more than
    /// `ttl` ago, so that the next request with it makes a new job; returns
    /// whether one was freed. The job keeps everything but its key.
    fn release_expired_idempotency_key(&self, app: &str, key: &str, ttl: Duration) -> Result<bool, StoreError>;
    /// Records that the dispatcher confirmed the wake-ups of these jobs
    /// (one statement for a batch).
    fn mark_published(&self, job_ids: &[String]) -> Result<(), StoreError>;
    /// Queued jobs whose wake-up was never confirmed, oldest first.
    fn unpublished_jobs(&self, older_than: Duration, limit: i64) -> Result<Vec<String>, StoreError>;
    /// Marks every queued job unpublished, for a dispatcher that lost its
    /// messages (the in-process one, across a restart).
    fn forget_publications(&self) -> Result<u64, StoreError>;
    fn get_job(&self, id: &str) -> Result<Job, StoreError>;
    /// The app's jobs, newest first.
    fn list_jobs(&self, app: &str, state: Option<JobState>, limit: i64) -> Result<Vec<Job>, StoreError>;
    /// How many jobs are in each state (states with none left out).
    fn jobs_by_state(&self) -> Result<Vec<(JobState, i64)>, StoreError>;
    /// `(app, priority, queued jobs, seconds the oldest has waited)` for
    /// every app and priority with queued jobs, interactive runs aside.
    fn queued_by_app(&self) -> Result<Vec<(String, i16, i64, f64)>, StoreError>;
    /// A queued job's position in its line and the live workers' capacity;
    /// `None` when the job is not queued.
    fn queue_place(&self, job_id: &str, fresh: Duration) -> Result<Option<(i64, jobs_core::wire::Capacity)>, StoreError>;
    /// [`Self::queue_place`] of several jobs in one query (a list's queued
    /// jobs), by job id; jobs not queued are left out.
    fn queue_places(&self, job_ids: &[String], fresh: Duration) -> Result<std::collections::HashMap<String, (i64, jobs_core::wire::Capacity)>, StoreError>;
    /// Cancels a queued job at once, or asks the worker of a running one to
    /// stop it.
    fn cancel_job(&self, id: &str) -> Result<CancelOutcome, StoreError>;

    /// Inserts a group and its queued tasks, all or nothing; refused with
    /// `TooManyTasks` (creating nothing) when they would take the app past
    /// `max_queued` queued jobs. A repeated idempotency key returns the
    /// earlier group and `false`.
    fn create_group(&self, app: &str, create: &GroupCreate, max_queued: Option<i64>, created_by: Option<&str>) -> Result<(Group, bool), StoreError>;
    /// The group with every task, by index.
    fn get_group(&self, id: &str) -> Result<Group, StoreError>;
    /// Cancels the group's queued tasks at once and asks the workers of its
    /// starting and running ones to stop them; returns the group and the
    /// ids of the latter, whose workers must be told.
    fn cancel_group(&self, id: &str) -> Result<(Group, Vec<String>), StoreError>;

    /// Claims a queued job: `queued → starting`, `attempt + 1`, and a lease.
    /// `None` when the job is not queued, the worker is draining, or its
    /// app is at its `max_running` cap.
    fn claim(&self, job_id: &str, worker_id: &str, lease: Duration) -> Result<Option<ClaimedJob>, StoreError>;
    /// Claims the queued job a free slot should take, by the apps' shares
    /// and caps and the jobs' places in line (`jobs_core::scheduling`).
    /// `None` when no queued job may start now, or the worker is draining.
    fn claim_next(&self, worker_id: &str, lease: Duration) -> Result<Option<ClaimedJob>, StoreError>;
    /// Claims up to `max` jobs for free slots at once, as `claim_next`
    /// picks them: several heads of one app's line in one statement when
    /// the app counts nothing (no cap, no bounded group), else one. Empty
    /// when no queued job may start now, or the worker is draining.
    fn claim_batch(&self, worker_id: &str, lease: Duration, max: u32) -> Result<Vec<ClaimedJob>, StoreError>;
    /// `starting → running`. Returns whether the fence still held.
    fn mark_running(&self, fence: &Fence) -> Result<bool, StoreError>;
    /// Records that the worker is about to start the container, fenced:
    /// from then on the job is never queued again, since its command may
    /// have run. Returns whether the fence still held.
    fn record_start(&self, fence: &Fence) -> Result<bool, StoreError>;
    /// Records why the worker is about to stop the container (`timed_out`),
    /// fenced, so that a worker that takes the container over records the
    /// same end. Returns whether the fence still held.
    fn record_stop(&self, fence: &Fence, reason: &str) -> Result<bool, StoreError>;
    /// Renews the lease and reports whether a cancel was asked meanwhile.
    fn heartbeat(&self, fence: &Fence, lease: Duration) -> Result<Heartbeat, StoreError>;
    /// Writes the terminal state. Returns whether the fence still held.
    fn finish(&self, fence: &Fence, state: JobState, exit_code: Option<i32>, reason: Option<&str>) -> Result<bool, StoreError>;
    /// Hands a job that never started back to the queue.
    fn requeue_unstarted(&self, fence: &Fence) -> Result<bool, StoreError>;
    /// The jobs a worker holds, for its reconciliation at start.
    fn jobs_held_by(&self, worker_id: &str) -> Result<Vec<HeldJob>, StoreError>;

    /// Inserts a batch of chunks; a replayed chunk is ignored.
    fn append_logs(&self, job_id: &str, chunks: &[NewChunk]) -> Result<(), StoreError>;
    /// Chunks with `seq > after`, in order, up to `max_chunks` chunks or
    /// about `max_bytes` bytes (at least one chunk when there is one).
    fn logs_after(&self, job_id: &str, after: i64, max_chunks: i64, max_bytes: i64) -> Result<Vec<LogChunk>, StoreError>;
    /// The highest stored seq of a job, or 0.
    fn last_log_seq(&self, job_id: &str) -> Result<i64, StoreError>;
    /// Where the stored output of each stream ends, in raw bytes.
    fn log_raw_offsets(&self, job_id: &str) -> Result<RawOffsets, StoreError>;

    /// Stores a new API token; `AppNotFound` when its app does not exist.
    fn create_token(&self, token: &NewToken) -> Result<TokenInfo, StoreError>;
    /// The token with this secret hash, if it is neither revoked nor
    /// expired by the database clock; the one lookup of authentication.
    fn find_token_by_hash(&self, secret_hash: &[u8]) -> Result<Option<TokenInfo>, StoreError>;
    /// A token by id, revoked and expired ones included.
    fn get_token(&self, id: &str) -> Result<Option<TokenInfo>, StoreError>;
    /// Every token (only those bound to `app` when given), oldest first.
    fn list_tokens(&self, app: Option<&str>) -> Result<Vec<TokenInfo>, StoreError>;
    /// Revokes a token from now on. Returns whether it exists; revoking a
    /// revoked token keeps its first revocation time.
    fn revoke_token(&self, id: &str) -> Result<bool, StoreError>;

    /// Records a worker's slot count, free slots and version, and that it
    /// is alive; returns whether an admin drained it.
    fn upsert_worker(&self, worker_id: &str, slots: i32, free_slots: i32, version: &str) -> Result<bool, StoreError>;
    /// Forgets a worker that shut down, unless it is draining (a drain
    /// outlives a restart).
    fn remove_worker(&self, worker_id: &str) -> Result<(), StoreError>;
    /// Forgets the workers not heard from within `older_than` that hold no
    /// starting or running job and are not draining (a drain is an admin's
    /// word, kept until undone); returns their ids.
    fn forget_stale_workers(&self, older_than: Duration) -> Result<Vec<String>, StoreError>;
    /// Whether the worker is draining.
    fn worker_draining(&self, worker_id: &str) -> Result<bool, StoreError>;
    /// Drains a worker (it claims no new job) or undoes its drain; `None`
    /// for an unknown worker. Repeating either changes nothing.
    fn set_worker_draining(&self, worker_id: &str, draining: bool, fresh: Duration) -> Result<Option<jobs_core::wire::WorkerInfo>, StoreError>;
    /// Workers heard from within `fresh` with a free slot and not
    /// draining, most free first.
    fn free_workers(&self, fresh: Duration) -> Result<Vec<String>, StoreError>;
    /// Every worker in the registry, most recently heard from first, with
    /// the jobs each holds; those not heard from within `fresh` are stale.
    fn list_workers(&self, fresh: Duration) -> Result<Vec<jobs_core::wire::WorkerInfo>, StoreError>;
    /// Interactive jobs still queued, oldest first.
    fn queued_interactive_jobs(&self) -> Result<Vec<String>, StoreError>;
    /// Where an interactive job's worker dials back (the API that created
    /// it) and the secret it shows there; `None` for other jobs.
    fn attach_endpoint(&self, job_id: &str) -> Result<Option<AttachEndpoint>, StoreError>;

    /// Resolves every expired lease: re-queues jobs that never started (with
    /// attempts left), and marks the rest `lost`.
    fn reap_expired_leases(&self) -> Result<ReapReport, StoreError>;

    /// Records an upload whose bytes are in the object store, free for a
    /// job of its app to take.
    fn create_upload(&self, app: &str, upload: &Upload) -> Result<(), StoreError>;
    /// The uploads of `app` with these ids that no job took yet (those
    /// found; the caller compares).
    fn free_uploads(&self, app: &str, ids: &[String]) -> Result<Vec<Upload>, StoreError>;
    /// Writes what the artifact collection found, fenced like `finish` and
    /// before it. Returns whether the fence still held.
    fn record_artifacts(&self, fence: &Fence, artifacts: &[Artifact]) -> Result<bool, StoreError>;
    /// Deletes up to `limit` jobs that ended more than `older_than` ago
    /// (their logs and upload rows go with them) and returns what their
    /// objects were, for the caller to delete.
    fn purge_ended_jobs(&self, older_than: Duration, limit: i64) -> Result<Vec<PurgedJob>, StoreError>;
    /// Deletes up to `limit` uploads no job took within `older_than` and
    /// returns their ids, for the caller to delete their objects. Once
    /// deleted here, no job can take them.
    fn purge_free_uploads(&self, older_than: Duration, limit: i64) -> Result<Vec<String>, StoreError>;
}

/// A new opaque, URL-safe upload id.
pub fn new_upload_id() -> String {
    format!("upl_{}", uuid::Uuid::now_v7().simple())
}

/// A new opaque, URL-safe, time-ordered group id (`grp_…`).
pub fn new_group_id() -> String {
    format!(
        "{}{}",
        jobs_core::groups::GROUP_ID_PREFIX,
        uuid::Uuid::now_v7().simple()
    )
}

/// A new opaque, URL-safe, time-ordered job id.
pub fn new_job_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}
