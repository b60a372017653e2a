//! The types every store implementation speaks in.

use std::{collections::BTreeMap, time::Duration};

use chrono::{DateTime, Utc};
use jobs_core::{
    Role, Size,
    wire::{Job, LogStream},
};

/// The timeout an app gets when none is given: one hour.
pub const DEFAULT_APP_TIMEOUT_SECONDS: i64 = 3600;

/// What a cancel request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The job was queued and is now `canceled`; it never starts.
    CanceledWhileQueued(Job),
    /// The job is starting or running; its worker was asked to stop it.
    StopRequested(Job),
    /// The job had already ended; nothing changed.
    AlreadyEnded(Job),
}

/// The identity of one attempt of one job by one worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub job_id: String,
    pub attempt: i32,
    pub worker_id: String,
}

/// A job a worker has just claimed, with what it needs to start it.
///
/// Its `Debug` names env vars without their values, and counts secrets:
/// a claim in a log line must not leak a secret.
#[derive(Clone)]
pub struct ClaimedJob {
    pub fence: Fence,
    pub job: Job,
    pub image: String,
    /// The app's config vars merged with the job's overrides; overrides win.
    /// Real values, secret ones included: the container needs them.
    pub env: BTreeMap<String, String>,
    pub size: Size,
    pub timeout: Duration,
    /// The app's container hardening options.
    pub hardening: jobs_core::hardening::Hardening,
    /// The most output the job keeps (its app's `max_output_bytes`).
    pub max_output: u64,
    /// The values of the app's secret config vars, to mask in the output.
    pub secret_values: Vec<String>,
    /// For an interactive run: where to dial back, and with what secret.
    pub attach: Option<AttachEndpoint>,
    /// From the job's creation to this claim, by the database clock.
    pub queued_for: Duration,
    /// The job's last stored log chunk (0 for none), read by the claim
    /// itself: this attempt's output is numbered on from it.
    pub last_log_seq: i64,
}

/// Where the worker of an interactive run dials back (the API that created
/// it), and the secret it shows there. Its `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct AttachEndpoint {
    /// The API's base URL, e.g. `http://127.0.0.1:8420`.
    pub url: String,
    pub secret: String,
}

impl std::fmt::Debug for AttachEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttachEndpoint")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ClaimedJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimedJob")
            .field("fence", &self.fence)
            .field("job", &self.job)
            .field("image", &self.image)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("size", &self.size)
            .field("timeout", &self.timeout)
            .field("hardening", &self.hardening)
            .field("secret_values", &self.secret_values.len())
            .field("attach", &self.attach)
            .field("queued_for", &self.queued_for)
            .field("last_log_seq", &self.last_log_seq)
            .finish()
    }
}

/// The secret names to store: `names` and `kept`, limited to keys of `env`
/// (a mark without a var means nothing), sorted and without repeats.
pub(crate) fn secret_names(
    env: &BTreeMap<String, String>,
    names: &[String],
    kept: &[String],
) -> Vec<String> {
    let set: std::collections::BTreeSet<&String> = names
        .iter()
        .chain(kept)
        .filter(|name| env.contains_key(*name))
        .collect();
    set.into_iter().cloned().collect()
}

/// The secret names after `update`, given the env after it: the current
/// marks minus `unsecret`, plus `secret_env`; an unset var loses its mark
/// with it.
pub(crate) fn updated_secret_names(
    env: &BTreeMap<String, String>,
    current: Vec<String>,
    update: &jobs_core::wire::AppUpdate,
) -> Vec<String> {
    let kept: Vec<String> = current
        .into_iter()
        .filter(|name| !update.unsecret.contains(name))
        .collect();
    secret_names(env, &update.secret_env, &kept)
}

/// The values of `env` named in `secret_names`: what a worker masks.
pub fn secret_values(env: &BTreeMap<String, String>, secret_names: &[String]) -> Vec<String> {
    secret_names
        .iter()
        .filter_map(|name| env.get(name).cloned())
        .collect()
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heartbeat {
    Renewed {
        cancel_requested: bool,
    },
    /// The fence no longer matches: another attempt owns the job, or it ended.
    Lost,
}

/// A job a worker holds, as its restarted process finds it.
#[derive(Clone, PartialEq, Eq)]
pub struct HeldJob {
    pub fence: Fence,
    /// Whether the job had reached `running`.
    pub running: bool,
    /// Whether its worker had recorded that it was about to start the
    /// container ([`crate::Store::record_start`]).
    pub start_requested: bool,
    /// What is left of its timeout, by the database clock.
    pub timeout_left: Duration,
    /// Why the worker was stopping its container, if it was: `timed_out`
    /// (recorded with [`crate::Store::record_stop`]) or `canceled` (a cancel
    /// was asked).
    pub stop_reason: Option<String>,
    /// The values of the app's secret config vars, to mask in the output
    /// of the container taken over.
    pub secret_values: Vec<String>,
    /// The most output the job keeps (its app's `max_output_bytes`).
    pub max_output: u64,
}

impl std::fmt::Debug for HeldJob {
    // Counts the secret values, never prints them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeldJob")
            .field("fence", &self.fence)
            .field("running", &self.running)
            .field("start_requested", &self.start_requested)
            .field("timeout_left", &self.timeout_left)
            .field("stop_reason", &self.stop_reason)
            .field("secret_values", &self.secret_values.len())
            .finish()
    }
}

/// A chunk the log pump wants stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewChunk {
    pub seq: i64,
    pub stream: LogStream,
    pub time: DateTime<Utc>,
    pub data: Vec<u8>,
    /// The raw byte offset in its stream (what the container wrote, before
    /// masking) just past this chunk's bytes, when the chunk ends exactly
    /// there: where a restarted worker resumes reading the output log.
    pub raw_end: Option<i64>,
}

/// Where a job's stored output ends in each stream, in raw bytes as the
/// container wrote them (see [`NewChunk::raw_end`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RawOffsets {
    pub stdout: i64,
    pub stderr: i64,
}

/// A job the purge deleted, with what its objects were.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgedJob {
    pub id: String,
    pub uploads: Vec<jobs_core::wire::Upload>,
    pub artifacts: Vec<jobs_core::wire::Artifact>,
}

/// What deleting an app left in the object store: its jobs' uploads and
/// artifacts, and its uploads no job took.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DeletedApp {
    pub jobs: Vec<PurgedJob>,
    pub free_uploads: Vec<String>,
}

/// What one reaper pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReapReport {
    /// Jobs whose worker died before the container started, queued again.
    /// Their wake-up must be published again.
    pub requeued: Vec<String>,
    /// Jobs whose worker vanished and that cannot be retried, now `lost`.
    pub lost: Vec<String>,
    /// Jobs no worker started within their queue timeout, now `canceled`.
    pub expired: Vec<String>,
}

/// An API token to store. The API made the secret and hashed it: the store
/// never sees a secret, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    /// The app the token is bound to; `None` for every app.
    pub app: Option<String>,
    pub role: Role,
    pub secret_hash: Vec<u8>,
    pub description: Option<String>,
    /// Counted from the database clock at insertion; `None` never expires.
    pub expires_in: Option<Duration>,
}

/// A new opaque, URL-safe token id. It is public and unrelated to the
/// secret, so that listing and revoking tokens never handles secrets.
pub fn new_token_id() -> String {
    format!("tok_{}", uuid::Uuid::now_v7().simple())
}

/// A stored role. The table's check allows only known roles, so a failure
/// here means the schema and this code disagree.
pub(crate) fn role_from_column(text: &str) -> Result<Role, sqlx::Error> {
    text.parse().map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// How a log stream is stored: 1 is stdout, 2 is stderr.
pub(crate) fn stream_code(stream: LogStream) -> i64 {
    match stream {
        LogStream::Stdout => 1,
        LogStream::Stderr => 2,
    }
}

pub(crate) fn stream_from_code(code: i64) -> LogStream {
    if code == 2 {
        LogStream::Stderr
    } else {
        LogStream::Stdout
    }
}
