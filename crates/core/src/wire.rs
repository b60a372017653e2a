//! The JSON bodies of the HTTP API under `/v1`.
//!
//! Routes (all but health, metrics and the OpenAPI document need
//! `Authorization: Bearer TOKEN`):
//!
//! | method and path | body | answer |
//! |---|---|---|
//! | `GET /healthz`, `GET /readyz` | | `200 ok` |
//! | `GET /metrics` | | Prometheus text |
//! | `POST /v1/apps` | [`AppCreate`] | `201` [`App`] |
//! | `GET /v1/apps` | | [`AppList`] |
//! | `GET /v1/apps/{app}` | | [`App`] |
//! | `PATCH /v1/apps/{app}` | [`AppUpdate`] | [`App`] |
//! | `DELETE /v1/apps/{app}` | | `204` |
//! | `POST /v1/apps/{app}/uploads?name=N&size=BYTES&total=BYTES&sha256=HEX` | the file's bytes | `201` [`Upload`] |
//! | `POST /v1/apps/{app}/jobs` | [`JobCreate`] | `201` [`Job`] (`200` for a repeated idempotency key) |
//! | `GET /v1/apps/{app}/jobs?state=S&limit=N` | | [`JobList`], newest first |
//! | `GET /v1/jobs/{id}` | | [`Job`] |
//! | `POST /v1/jobs/{id}/cancel` | | [`Job`] |
//! | `POST /v1/apps/{app}/groups` | [`GroupCreate`] | `201` [`Group`], every task queued (`200` for a repeated idempotency key) |
//! | `GET /v1/groups/{id}` | | [`Group`], with every task by index |
//! | `POST /v1/groups/{id}/cancel` | | [`Group`]: queued tasks canceled, running ones stopping |
//! | `GET /v1/jobs/{id}/logs?after=SEQ&limit=N` | | [`LogPage`] |
//! | `GET /v1/jobs/{id}/artifacts/{index}` | | the artifact as a tar archive |
//! | `GET /v1/jobs/{id}/logs/stream?after=SEQ` | | Server-Sent Events, see below |
//! | `GET /v1/jobs/{id}/attach?after=SEQ` | | WebSocket of an interactive run, see [`crate::attach`] |
//! | `GET /v1/jobs/{id}/attach/worker?attempt=N` | | the worker's WebSocket of that run, with the job's attach secret |
//! | `POST /v1/tokens` | [`TokenCreate`] | `201` [`TokenCreated`], the only answer that holds the secret |
//! | `GET /v1/tokens` | | [`TokenList`], oldest first, without secrets |
//! | `DELETE /v1/tokens/{id}` | | `204` |
//! | `GET /v1/workers` | | [`WorkerList`]: the workers heard from, for admins of every app |
//! | `POST /v1/workers/{id}/drain`, `DELETE /v1/workers/{id}/drain` | | [`WorkerInfo`]: the worker draining (it takes no new job) or taking jobs again, for admins of every app |
//! | `GET /v1/whoami` | | [`Caller`]: the role and app of the token itself |
//! | `GET /v1/openapi.json` | | the OpenAPI 3.1 document of these routes, without a token |
//!
//! An upload streams its body into the object store; `size` (the declared
//! length) and `total` (all uploads of the job about to be created) are
//! checked against the limits before anything is stored, and the bytes are
//! counted as they come whatever was declared. A job then names its
//! uploads in [`JobCreate::uploads`] with the SHA-256 the client computed.
//!
//! The stream sends `event: log` with `id: SEQ` and a [`LogChunk`] as data,
//! then one `event: end` with the final [`Job`] as data once the job has
//! ended and every chunk was sent. `Last-Event-ID` (or `after`) resumes
//! after that sequence number. Errors are an [`ApiError`] body.
//!
//! A token has a role (`read` < `run` < `admin`) and may be bound to one app.
//! A role too low for a route is a `403`; an app or job outside a bound
//! token's app is a `404`, worded as if it did not exist. See
//! docs/security.md.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::hardening::Hardening;
use crate::scheduling::Priority;
use crate::{JobState, Role, Size};

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppCreate {
    pub name: String,
    pub image: String,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub size: Option<Size>,
    #[serde(default)]
    pub timeout_seconds: Option<i64>,
    /// How many warm containers each worker keeps ready for this app's runs
    /// at its default size; 0 (the default) turns the pool off. At most 16
    /// (`MAX_WARM`).
    // Left out of the body when absent, so that a client can still create
    // apps on a server older than the field (its bodies refuse unknown ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm: Option<u32>,
    /// The most jobs of the app starting or running at once; the rest wait
    /// in line. None: no cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_running: Option<u32>,
    /// The app's weight in the share of free slots between apps with
    /// queued work (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// The most output one job keeps; absent: 1 GiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_bytes: Option<u64>,
    /// The app's quota over logs, uploads and artifacts; absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_quota_bytes: Option<u64>,
    /// Names of `env` vars to mark secret: masked in every answer and in
    /// job output. Each must be a key of `env`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_env: Vec<String>,
    /// Container hardening: `cap_add`, `user`, `read_only_root`,
    /// `network_none`, flat in the JSON body.
    #[serde(flatten)]
    pub hardening: Hardening,
}

/// A partial update: absent fields stay as they are.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppUpdate {
    #[serde(default)]
    pub image: Option<String>,
    /// Env vars to set or replace.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Env var names to remove (their secret mark goes with them).
    #[serde(default)]
    pub unset: Vec<String>,
    /// Env var names to mark secret, set in `env` or already set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_env: Vec<String>,
    /// Env var names to mark not secret again; their values stay.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unsecret: Vec<String>,
    #[serde(default)]
    pub size: Option<Size>,
    #[serde(default)]
    pub timeout_seconds: Option<i64>,
    /// How many warm containers each worker keeps ready for this app's runs
    /// at its default size; 0 turns the pool off. At most 16 (`MAX_WARM`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm: Option<u32>,
    /// Absent: unchanged; `null`: no cap; a number: the cap on the app's
    /// starting and running jobs.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_running: Option<Option<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// Absent: unchanged; `null`: back to the default (1 GiB); a number:
    /// the most output one job keeps.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_output_bytes: Option<Option<u64>>,
    /// Absent: unchanged; `null`: no quota; a number: the app's quota over
    /// logs, uploads and artifacts.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub storage_quota_bytes: Option<Option<u64>>,
    /// Replaces the whole capability allow-list; `[]` empties it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap_add: Option<Vec<String>>,
    /// Absent: unchanged; `null`: back to the image's user; a string: that user.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub user: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_root: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_none: Option<bool>,
    /// Absent: unchanged; `null`: back to the app's own network; a string:
    /// an operator's Docker network.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub network: Option<Option<String>>,
}

/// Deserializes a field that is present, even as `null`, into `Some`, so
/// that a partial update can tell "absent" from "set to null".
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// An app. Its `Debug` names env vars without their values, so that no
/// log line can print a secret.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct App {
    pub name: String,
    pub image: String,
    /// In API answers, the value of each var named in `secret_env` is
    /// [`SECRET_MASK`]; the store holds the real one.
    pub env: BTreeMap<String, String>,
    /// The names of the secret vars of `env`, sorted.
    #[serde(default)]
    pub secret_env: Vec<String>,
    pub size: Size,
    pub timeout_seconds: i64,
    /// How many warm containers each worker keeps ready for this app's runs
    /// at its default size; 0 turns the pool off.
    #[serde(default)]
    pub warm: u32,
    /// The most jobs of the app starting or running at once; none: no cap.
    #[serde(default)]
    pub max_running: Option<u32>,
    /// The app's weight in the share of free slots.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// The most output one job keeps; past it, one marked line says how
    /// many bytes were not kept.
    #[serde(default = "default_max_output_bytes")]
    pub max_output_bytes: u64,
    /// The app's quota over logs, uploads and artifacts; none: no quota.
    #[serde(default)]
    pub storage_quota_bytes: Option<u64>,
    /// What the app's logs, uploads and artifacts take, measured when the
    /// app alone is asked for (`GET /v1/apps/{app}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_used_bytes: Option<u64>,
    /// Container hardening, flat in the JSON body.
    #[serde(flatten)]
    pub hardening: Hardening,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn default_weight() -> u32 {
    1
}

fn default_max_output_bytes() -> u64 {
    crate::storage::DEFAULT_MAX_OUTPUT_BYTES
}

/// What the API shows instead of a secret config var's value.
pub const SECRET_MASK: &str = "********";

impl App {
    /// The app as the API shows it: secret values replaced by [`SECRET_MASK`].
    pub fn masked(mut self) -> Self {
        for name in &self.secret_env {
            if let Some(value) = self.env.get_mut(name) {
                *value = SECRET_MASK.to_owned();
            }
        }
        self
    }
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("name", &self.name)
            .field("image", &self.image)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("secret_env", &self.secret_env)
            .field("size", &self.size)
            .field("timeout_seconds", &self.timeout_seconds)
            .field("warm", &self.warm)
            .field("max_running", &self.max_running)
            .field("weight", &self.weight)
            .field("max_output_bytes", &self.max_output_bytes)
            .field("storage_quota_bytes", &self.storage_quota_bytes)
            .field("storage_used_bytes", &self.storage_used_bytes)
            .field("hardening", &self.hardening)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppList {
    pub apps: Vec<App>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobCreate {
    /// The argv to run. The CLI turns a single argument into `/bin/sh -c ARG`.
    pub command: Vec<String>,
    /// Env overrides, merged over the app's config vars.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub size: Option<Size>,
    #[serde(default)]
    pub timeout_seconds: Option<i64>,
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// Present for an interactive run: it never enters the queue; a worker
    /// starts it directly and the client attaches over a WebSocket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interactive: Option<Interactive>,
    /// Files uploaded first (`POST /v1/apps/{app}/uploads`), each landing
    /// in `/tmp/uploads/<name>` before the command starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uploads: Vec<UploadRef>,
    /// Absolute paths to collect from the container when the command ends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<String>,
    /// Give up on the job if no worker has started it this many seconds
    /// after its creation: it ends `canceled`, reason `not started within
    /// its queue timeout of Ns`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_timeout_seconds: Option<i64>,
    /// Its place in the app's own line (default normal); see
    /// [`crate::scheduling`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
}

/// The body of `POST /v1/apps/{app}/groups`: a job request, made `tasks`
/// times (see [`crate::groups`]).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupCreate {
    #[serde(flatten)]
    pub job: JobCreate,
    /// How many tasks: 1 to the API's limit (1,000 unless configured).
    pub tasks: u32,
    /// How many of its tasks may be starting or running at once; none for
    /// as many as the app's share and cap allow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u32>,
}

/// A group of tasks, with where each stands.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// `grp_…`; `status`, `wait`, `follow`, `logs` and `cancel` take it.
    pub id: String,
    pub app: String,
    pub parallelism: Option<u32>,
    pub command: Vec<String>,
    pub priority: Priority,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub created_by: Option<String>,
    /// Every task, by index.
    pub tasks: Vec<GroupTask>,
}

/// One task of a group, as the group lists it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupTask {
    pub index: u32,
    /// The task's job: `GET /v1/jobs/{id}` has the rest.
    pub job_id: String,
    pub state: JobState,
    pub attempt: i32,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl Group {
    /// Whether every task has ended.
    pub fn ended(&self) -> bool {
        self.tasks.iter().all(|task| task.state.is_terminal())
    }

    /// The CLI's exit code once every task ended; see [`crate::groups`].
    pub fn cli_exit_code(&self) -> Option<u8> {
        crate::groups::group_exit_code(self.tasks.iter().map(|task| crate::groups::TaskEnd {
            index: task.index,
            state: task.state,
            exit_code: task.exit_code,
            ran: task.started_at.is_some(),
        }))
    }

    /// How many tasks are in each state, in the order of [`JobState::ALL`],
    /// states with none left out.
    pub fn counts(&self) -> Vec<(JobState, usize)> {
        JobState::ALL
            .into_iter()
            .map(|state| {
                let count = self.tasks.iter().filter(|task| task.state == state).count();
                (state, count)
            })
            .filter(|(_, count)| *count > 0)
            .collect()
    }
}

/// How an interactive run's container is attached.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interactive {
    /// A pseudo-terminal (stdout and stderr merged), as for a shell at a
    /// terminal; otherwise plain stdin and separate output streams.
    #[serde(default)]
    pub tty: bool,
}

/// An upload a job takes: the id its upload returned, and the SHA-256 the
/// client computed while sending it, which the API compares.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadRef {
    pub id: String,
    /// Lowercase hex.
    pub sha256: String,
}

/// A stored upload.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upload {
    pub id: String,
    /// The file name in `/tmp/uploads`.
    pub name: String,
    /// Bytes, as counted while they streamed in.
    pub size: i64,
    /// Lowercase hex SHA-256, computed while the bytes streamed in.
    pub sha256: String,
}

/// An artifact path after the job ended.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// The path in the container, as asked.
    pub path: String,
    /// Bytes of the stored tar archive; none when nothing was collected.
    #[serde(default)]
    pub size: Option<i64>,
    /// Why nothing was collected, such as `no such file or directory`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Artifact {
    pub fn collected(&self) -> bool {
        self.error.is_none() && self.size.is_some()
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub app: String,
    pub command: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub size: Size,
    pub timeout_seconds: i64,
    pub state: JobState,
    pub attempt: i32,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
    pub cancel_requested: bool,
    pub worker_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Present for an interactive run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interactive: Option<Interactive>,
    /// The files uploaded for this job.
    #[serde(default)]
    pub uploads: Vec<Upload>,
    /// The paths to collect when the command ends.
    #[serde(default)]
    pub artifact_paths: Vec<String>,
    /// What was collected, in the order of `artifact_paths`; empty until
    /// the job ended. `GET /v1/jobs/{id}/artifacts/{index}` serves each.
    #[serde(default)]
    pub artifacts: Vec<Artifact>,
    /// Who or what created it: `token ID (DESCRIPTION)`, or `the admin
    /// token` of the API's configuration. None for jobs made before this
    /// was recorded.
    #[serde(default)]
    pub created_by: Option<String>,
    #[serde(default)]
    pub priority: Priority,
    /// The group this job is a task of (`jobs run --tasks N`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// Its index in the group, 0 to N−1 (also `JOBS_TASK_INDEX`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_index: Option<u32>,
    /// Where a queued job stands and why it waits; in the answers of
    /// `GET /v1/jobs/{id}` and of the job list, only while it is queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueuePlace>,
}

/// Where a queued job stands in its line, and why it has not started.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuePlace {
    /// 1 for the next job of its app to start: an app's queued jobs go in
    /// order of priority, then age (`jobs_core::scheduling`); interactive
    /// runs have one line of their own, in creation order.
    pub position: i64,
    /// Why it waits, for people: `no worker is alive`, `every worker is
    /// draining (2 workers)`, `the app's cap: 2 of its jobs run, its
    /// max-running is 2`, `the group's parallelism: 2 of its tasks run, its
    /// parallelism is 2`, `every worker slot is busy (8 slots on 2
    /// workers)`, or `waiting for a worker to claim it`; then, when jobs of
    /// its app go first, how many.
    pub waiting_for: String,
}

/// The workers heard from lately, as the store counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capacity {
    /// Live workers, draining ones included.
    pub workers: i64,
    /// Live workers that are draining: they take no new job.
    pub draining: i64,
    /// The slots of the live workers that take jobs.
    pub slots: i64,
    pub free_slots: i64,
    /// The job's app: its starting and running jobs, and its cap.
    pub app_running: i64,
    pub app_max_running: Option<i64>,
    /// The job's group, for a task: its starting and running tasks, and
    /// its parallelism.
    pub group_running: i64,
    pub group_parallelism: Option<i64>,
}

impl QueuePlace {
    pub fn new(position: i64, capacity: Capacity) -> Self {
        let plural =
            |count: i64, word: &str| format!("{count} {word}{}", if count == 1 { "" } else { "s" });
        let taking = capacity.workers - capacity.draining;
        let waiting_for = if capacity.workers == 0 {
            "no worker is alive".to_owned()
        } else if taking <= 0 {
            format!(
                "every worker is draining ({})",
                plural(capacity.workers, "worker")
            )
        } else if let Some(cap) = capacity
            .app_max_running
            .filter(|cap| capacity.app_running >= *cap)
        {
            format!(
                "the app's cap: {} of its jobs run, its max-running is {cap}",
                capacity.app_running
            )
        } else if let Some(parallelism) = capacity
            .group_parallelism
            .filter(|parallelism| capacity.group_running >= *parallelism)
        {
            format!(
                "the group's parallelism: {} of its tasks run, its parallelism is {parallelism}",
                capacity.group_running
            )
        } else if capacity.free_slots <= 0 {
            let draining = match capacity.draining {
                0 => String::new(),
                count => format!(", and {count} draining"),
            };
            format!(
                "every worker slot is busy ({} on {}{draining})",
                plural(capacity.slots, "slot"),
                plural(taking, "worker")
            )
        } else {
            "waiting for a worker to claim it".to_owned()
        };
        // Its own app's jobs ahead of it: earlier, or of a higher priority.
        let waiting_for = match position {
            ..=1 => waiting_for,
            2 => format!("{waiting_for}; 1 job of the app goes first"),
            _ => format!("{waiting_for}; {} jobs of the app go first", position - 1),
        };
        Self {
            position,
            waiting_for,
        }
    }
}

impl Job {
    /// The CLI's exit code for this job, once it has ended.
    pub fn cli_exit_code(&self) -> Option<u8> {
        crate::exit_code_for(self.state, self.exit_code)
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobList {
    pub jobs: Vec<Job>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    Stdout,
    Stderr,
}

impl LogStream {
    pub fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }
}

/// One chunk of a job's output. `data` is standard base64, so that output
/// that is not UTF-8 survives JSON byte for byte.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogChunk {
    pub seq: i64,
    pub stream: LogStream,
    pub time: DateTime<Utc>,
    pub data: String,
}

impl LogChunk {
    pub fn new(seq: i64, stream: LogStream, time: DateTime<Utc>, bytes: &[u8]) -> Self {
        use base64::Engine;
        Self {
            seq,
            stream,
            time,
            data: base64::engine::general_purpose::STANDARD.encode(bytes),
        }
    }

    pub fn bytes(&self) -> Result<Vec<u8>, base64::DecodeError> {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.decode(&self.data)
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogPage {
    pub chunks: Vec<LogChunk>,
    /// Pass as `after` to get the next page.
    pub next_after: i64,
    /// Whether more chunks are stored after this page.
    pub more: bool,
}

/// The body of `POST /v1/tokens`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenCreate {
    /// The app the token is bound to; none for a token of every app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    pub role: Role,
    /// How long the token lives; none for a token that never expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A token as listed: never its secret, which is not stored.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// Public and opaque; used to revoke the token. Not the secret.
    pub id: String,
    pub app: Option<String>,
    pub role: Role,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The answer to `POST /v1/tokens`: the only time the secret is shown.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenCreated {
    pub token: TokenInfo,
    pub secret: String,
}

/// A worker as the registry knows it: its slots, when it last wrote, its
/// version, whether it is draining and the jobs it runs.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerInfo {
    pub id: String,
    /// How many jobs it runs at once.
    pub slots: i32,
    pub free_slots: i32,
    /// Its last heartbeat or slot change, by the database clock; a worker
    /// writes one at least every 5 seconds while it runs.
    pub heartbeat_at: DateTime<Utc>,
    /// Not heard from within the window that decides which workers are
    /// alive (15 s), by the database clock: stopped, dead or cut off.
    #[serde(default)]
    pub stale: bool,
    /// The `jobs-worker` version it runs; none for a worker older than
    /// this field.
    #[serde(default)]
    pub version: Option<String>,
    /// Since when it is draining: it claims no new job, queued or
    /// interactive, until an admin undoes the drain. None when it takes jobs.
    #[serde(default)]
    pub draining_since: Option<DateTime<Utc>>,
    /// The ids of the jobs it holds (starting or running), oldest first.
    #[serde(default)]
    pub running_jobs: Vec<String>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerList {
    /// Most recently heard from first.
    pub workers: Vec<WorkerInfo>,
}

/// The answer to `GET /v1/whoami`: what the calling token may do, so that
/// a client (the web console) shows only what the API would allow.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    pub role: Role,
    /// The one app the token is bound to; none for a token of every app.
    pub app: Option<String>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenList {
    pub tokens: Vec<TokenInfo>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: ApiErrorBody,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    /// A stable machine code: `invalid_input` (400, 413, 422),
    /// `unauthorized` (401), `forbidden` (403), `not_found` (404),
    /// `method_not_allowed` (405), `request_timeout` (408), `conflict`
    /// (409), `too_many_jobs`, `storage_quota_exceeded` and `rate_limited`
    /// (429), `internal` (500),
    /// `unavailable` (503).
    pub code: String,
    /// A human sentence naming the thing and the limit.
    pub message: String,
    /// The request field at fault, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_chunks_are_binary_safe() {
        let bytes = [0u8, 0xff, 0xfe, b'\n', 0x80];
        let chunk = LogChunk::new(1, LogStream::Stderr, Utc::now(), &bytes);
        let json = serde_json::to_string(&chunk).unwrap();
        let back: LogChunk = serde_json::from_str(&json).unwrap();
        assert_eq!(back.bytes().unwrap(), bytes);
        assert!(json.contains("\"stream\":\"stderr\""));
    }

    #[test]
    fn masked_apps_hide_secret_values_and_debug_hides_every_value() {
        let app = App {
            name: "demo".into(),
            image: "alpine".into(),
            env: [("A", "plain-value"), ("PW", "hunter2-secret")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            secret_env: vec!["PW".into()],
            size: Size::default(),
            timeout_seconds: 60,
            warm: 0,
            max_running: None,
            weight: 1,
            max_output_bytes: crate::storage::DEFAULT_MAX_OUTPUT_BYTES,
            storage_quota_bytes: None,
            storage_used_bytes: None,
            hardening: Hardening::default(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        };
        let debug = format!("{app:?}");
        assert!(!debug.contains("hunter2") && !debug.contains("plain-value"));
        let masked = app.masked();
        assert_eq!(masked.env["PW"], SECRET_MASK);
        assert_eq!(masked.env["A"], "plain-value");
    }

    #[test]
    fn job_create_defaults() {
        let create: JobCreate = serde_json::from_str(r#"{"command":["true"]}"#).unwrap();
        assert_eq!(create.command, vec!["true"]);
        assert!(create.env.is_empty());
        assert_eq!(create.size, None);
    }

    #[test]
    fn warm_is_off_unless_given() {
        // An app from a server that predates the field.
        let app: App = serde_json::from_str(
            r#"{"name":"web","image":"alpine","env":{},"size":"M","timeout_seconds":60,
                "created_at":"2024-01-01T00:00:00Z","updated_at":"2024-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(app.warm, 0);
        assert!(format!("{app:?}").contains("warm: 0"));
        let create: AppCreate = serde_json::from_str(r#"{"name":"web","image":"a"}"#).unwrap();
        assert_eq!(create.warm, None);
        let json = serde_json::to_value(&create).unwrap();
        assert!(json.get("warm").is_none(), "{json}");
        // An update leaves it out unless it changes it.
        let json = serde_json::to_value(AppUpdate::default()).unwrap();
        assert!(json.get("warm").is_none(), "{json}");
        let json = serde_json::to_value(AppUpdate {
            warm: Some(2),
            ..AppUpdate::default()
        })
        .unwrap();
        assert_eq!(json["warm"], 2);
    }

    #[test]
    fn a_queued_job_says_why_it_waits() {
        let place = |workers, slots, free_slots| {
            QueuePlace::new(
                1,
                Capacity {
                    workers,
                    draining: 0,
                    slots,
                    free_slots,
                    ..Capacity::default()
                },
            )
            .waiting_for
        };
        assert_eq!(place(0, 0, 0), "no worker is alive");
        assert_eq!(
            place(1, 1, 0),
            "every worker slot is busy (1 slot on 1 worker)"
        );
        assert_eq!(
            place(2, 8, 0),
            "every worker slot is busy (8 slots on 2 workers)"
        );
        assert_eq!(place(2, 8, 3), "waiting for a worker to claim it");

        let capped = Capacity {
            workers: 1,
            slots: 4,
            free_slots: 3,
            app_running: 1,
            app_max_running: Some(1),
            ..Capacity::default()
        };
        assert_eq!(
            QueuePlace::new(1, capped).waiting_for,
            "the app's cap: 1 of its jobs run, its max-running is 1"
        );
        assert_eq!(
            QueuePlace::new(3, capped).waiting_for,
            "the app's cap: 1 of its jobs run, its max-running is 1; 2 jobs of the app go first"
        );
        let under_cap = Capacity {
            app_running: 0,
            ..capped
        };
        assert_eq!(
            QueuePlace::new(2, under_cap).waiting_for,
            "waiting for a worker to claim it; 1 job of the app goes first"
        );
        let group_full = Capacity {
            group_running: 2,
            group_parallelism: Some(2),
            ..under_cap
        };
        assert_eq!(
            QueuePlace::new(1, group_full).waiting_for,
            "the group's parallelism: 2 of its tasks run, its parallelism is 2"
        );
    }

    #[test]
    fn a_queued_job_says_when_workers_drain() {
        let place = |workers, draining, slots, free_slots| {
            QueuePlace::new(
                1,
                Capacity {
                    workers,
                    draining,
                    slots,
                    free_slots,
                    ..Capacity::default()
                },
            )
            .waiting_for
        };
        assert_eq!(place(1, 1, 0, 0), "every worker is draining (1 worker)");
        assert_eq!(place(3, 3, 0, 0), "every worker is draining (3 workers)");
        assert_eq!(
            place(3, 1, 8, 0),
            "every worker slot is busy (8 slots on 2 workers, and 1 draining)"
        );
        assert_eq!(place(3, 1, 8, 2), "waiting for a worker to claim it");
    }
}
