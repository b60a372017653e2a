//! Request bodies and query strings as clients send them, and their
//! validation into the wire types the store takes.
//!
//! Every check runs here, before any handler touches the store, so that bad
//! input never creates a row. Sizes arrive as plain strings so that an unknown
//! one gets the core's message (`size "XXL" is unknown: must be one of S, M,
//! L, XL`) rather than serde's. Unknown body fields are refused: a client that
//! misspells `timeout_seconds` should hear about it, not get the default.

use std::collections::BTreeMap;

use jobs_core::{
    InvalidInput, JobState, Size, groups,
    hardening::{self, Hardening},
    names,
    scheduling::{self, Priority},
    size,
    spec::{self, validate_command, validate_env, validate_idempotency_key},
    storage,
    wire::{AppCreate, AppUpdate, GroupCreate, JobCreate, UploadRef},
};
use serde::Deserialize;

/// The longest image reference an app may have.
pub const MAX_IMAGE_LEN: usize = 512;
/// How many jobs a list returns when no `limit` is given, and at most.
pub const JOB_LIST_DEFAULT_LIMIT: i64 = 50;
pub const JOB_LIST_MAX_LIMIT: i64 = 1000;
/// How many log chunks a page holds when no `limit` is given, and at most.
pub const LOG_PAGE_DEFAULT_LIMIT: i64 = 256;
pub const LOG_PAGE_MAX_LIMIT: i64 = 1000;

/// The body of `POST /v1/apps`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppCreateRequest {
    name: String,
    image: String,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    size: Option<String>,
    #[serde(default)]
    timeout_seconds: Option<i64>,
    /// Warm containers per worker, at most `MAX_WARM`.
    #[serde(default)]
    warm: Option<u32>,
    /// The cap on the app's starting and running jobs; absent: none.
    #[serde(default)]
    max_running: Option<u32>,
    /// The app's weight in the share of free slots, default 1.
    #[serde(default)]
    weight: Option<u32>,
    /// The most output one job keeps, default 1 GiB.
    #[serde(default)]
    max_output_bytes: Option<u64>,
    /// The app's quota over logs, uploads and artifacts; absent: none.
    #[serde(default)]
    storage_quota_bytes: Option<u64>,
    /// Names of `env` vars to mark secret.
    #[serde(default)]
    secret_env: Vec<String>,
    #[serde(default)]
    cap_add: Vec<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    read_only_root: bool,
    #[serde(default)]
    network_none: bool,
    /// An operator's Docker network instead of the app's own.
    #[serde(default)]
    network: Option<String>,
}

impl AppCreateRequest {
    pub fn validate(self) -> Result<AppCreate, InvalidInput> {
        // The core names this field `app`, as the CLI's `--app`; in this
        // body it is `name`.
        names::validate_app_name(&self.name)
            .map_err(|error| InvalidInput::new("name", error.message))?;
        validate_image(&self.image)?;
        validate_env(&self.env)?;
        check_env_names("secret_env", &self.secret_env)?;
        if let Some(name) = self.secret_env.iter().find(|n| !self.env.contains_key(*n)) {
            return Err(InvalidInput::new(
                "secret_env",
                format!("secret env var {name:?} is not set in env: give its value there"),
            ));
        }
        let size = parse_size(self.size.as_deref())?;
        check_timeout(self.timeout_seconds)?;
        check_warm(self.warm)?;
        self.max_running
            .map(scheduling::validate_max_running)
            .transpose()?;
        self.weight.map(scheduling::validate_weight).transpose()?;
        check_bytes_settings(self.max_output_bytes, self.storage_quota_bytes)?;
        let hardening = Hardening {
            cap_add: hardening::canonical_capabilities(&self.cap_add)?,
            user: check_user(self.user)?,
            read_only_root: self.read_only_root,
            network_none: self.network_none,
            network: check_network(self.network_none, self.network)?,
        };
        Ok(AppCreate {
            name: self.name,
            image: self.image,
            env: self.env,
            size,
            timeout_seconds: self.timeout_seconds,
            warm: self.warm,
            max_running: self.max_running,
            weight: self.weight,
            max_output_bytes: self.max_output_bytes,
            storage_quota_bytes: self.storage_quota_bytes,
            secret_env: self.secret_env,
            hardening,
        })
    }
}

/// The body of `PATCH /v1/apps/{app}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppUpdateRequest {
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    unset: Vec<String>,
    /// Names to mark secret: set in `env` or already set on the app.
    #[serde(default)]
    secret_env: Vec<String>,
    /// Names to mark not secret again.
    #[serde(default)]
    unsecret: Vec<String>,
    #[serde(default)]
    size: Option<String>,
    #[serde(default)]
    timeout_seconds: Option<i64>,
    /// Warm containers per worker, at most `MAX_WARM`; 0 turns the pool off.
    #[serde(default)]
    warm: Option<u32>,
    /// `null` lifts the cap.
    #[serde(default, deserialize_with = "present")]
    max_running: Option<Option<u32>>,
    #[serde(default)]
    weight: Option<u32>,
    /// `null` goes back to the default, 1 GiB.
    #[serde(default, deserialize_with = "present")]
    max_output_bytes: Option<Option<u64>>,
    /// `null` lifts the quota.
    #[serde(default, deserialize_with = "present")]
    storage_quota_bytes: Option<Option<u64>>,
    /// Replaces the whole allow-list.
    #[serde(default)]
    cap_add: Option<Vec<String>>,
    /// `null` goes back to the image's user.
    #[serde(default, deserialize_with = "present")]
    user: Option<Option<String>>,
    #[serde(default)]
    read_only_root: Option<bool>,
    #[serde(default)]
    network_none: Option<bool>,
    /// `null` goes back to the app's own network.
    #[serde(default, deserialize_with = "present")]
    network: Option<Option<String>>,
}

impl AppUpdateRequest {
    pub fn validate(self) -> Result<AppUpdate, InvalidInput> {
        if let Some(image) = &self.image {
            validate_image(image)?;
        }
        validate_env(&self.env)?;
        check_env_names("unset", &self.unset)?;
        check_env_names("secret_env", &self.secret_env)?;
        check_env_names("unsecret", &self.unsecret)?;
        let size = parse_size(self.size.as_deref())?;
        check_timeout(self.timeout_seconds)?;
        check_warm(self.warm)?;
        self.max_running
            .flatten()
            .map(scheduling::validate_max_running)
            .transpose()?;
        self.weight.map(scheduling::validate_weight).transpose()?;
        check_bytes_settings(
            self.max_output_bytes.flatten(),
            self.storage_quota_bytes.flatten(),
        )?;
        let cap_add = self
            .cap_add
            .as_deref()
            .map(hardening::canonical_capabilities)
            .transpose()?;
        let user = self.user.map(check_user).transpose()?;
        Ok(AppUpdate {
            image: self.image,
            env: self.env,
            unset: self.unset,
            secret_env: self.secret_env,
            unsecret: self.unsecret,
            size,
            timeout_seconds: self.timeout_seconds,
            warm: self.warm,
            max_running: self.max_running,
            weight: self.weight,
            max_output_bytes: self.max_output_bytes,
            storage_quota_bytes: self.storage_quota_bytes,
            cap_add,
            user,
            read_only_root: self.read_only_root,
            network_none: self.network_none,
            network: match self.network {
                Some(named) => Some(check_network(self.network_none.unwrap_or(false), named)?),
                None => None,
            },
        })
    }
}

/// Checks an app's operator network: a valid name, and not beside
/// `network_none`, which would leave it unused.
fn check_network(
    network_none: bool,
    network: Option<String>,
) -> Result<Option<String>, InvalidInput> {
    let Some(name) = network else {
        return Ok(None);
    };
    hardening::validate_network_name(&name)?;
    if network_none {
        return Err(InvalidInput::new(
            "network",
            format!("network {name:?} and network_none cannot both be set: choose one"),
        ));
    }
    Ok(Some(name))
}

/// Checks an app's output cap and storage quota, when given.
fn check_bytes_settings(
    max_output: Option<u64>,
    storage_quota: Option<u64>,
) -> Result<(), InvalidInput> {
    for (field, bytes) in [
        ("max_output_bytes", max_output),
        ("storage_quota_bytes", storage_quota),
    ] {
        if let Some(bytes) = bytes {
            storage::validate_bytes_setting(field, bytes)?;
        }
    }
    Ok(())
}

/// Checks a list of env var names (`unset`, `secret_env`, `unsecret`):
/// each a valid name, and no more than an app may have.
fn check_env_names(field: &str, list: &[String]) -> Result<(), InvalidInput> {
    if list.len() > spec::MAX_ENV_VARS {
        return Err(InvalidInput::new(
            field,
            format!(
                "{} env names in {field}: the limit is {}",
                list.len(),
                spec::MAX_ENV_VARS
            ),
        ));
    }
    for name in list {
        names::validate_env_name(name).map_err(|error| InvalidInput::new(field, error.message))?;
    }
    Ok(())
}

/// The body of `POST /v1/apps/{app}/jobs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobCreateRequest {
    command: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    size: Option<String>,
    #[serde(default)]
    timeout_seconds: Option<i64>,
    #[serde(default)]
    idempotency_key: Option<String>,
    #[serde(default)]
    interactive: Option<jobs_core::wire::Interactive>,
    #[serde(default)]
    uploads: Vec<UploadRef>,
    #[serde(default)]
    artifacts: Vec<String>,
    #[serde(default)]
    queue_timeout_seconds: Option<i64>,
    /// `low`, `normal` (the default) or `high`.
    #[serde(default)]
    priority: Option<String>,
    /// Only in `POST /v1/apps/{app}/groups`: how many tasks.
    #[serde(default)]
    tasks: Option<u32>,
    /// Only in `POST /v1/apps/{app}/groups`: how many tasks at once.
    #[serde(default)]
    parallelism: Option<u32>,
}

impl JobCreateRequest {
    /// The body of `POST /v1/apps/{app}/jobs`: one job.
    pub fn validate(self) -> Result<JobCreate, InvalidInput> {
        for (field, given) in [("tasks", self.tasks), ("parallelism", self.parallelism)] {
            if given.is_some() {
                return Err(InvalidInput::new(
                    field,
                    "a job has no tasks: send a group to POST /v1/apps/{app}/groups",
                ));
            }
        }
        self.validate_job()
    }

    /// The body of `POST /v1/apps/{app}/groups`: `tasks` copies of a job,
    /// at most `max_tasks` of them.
    pub fn validate_group(self, max_tasks: u32) -> Result<GroupCreate, InvalidInput> {
        let tasks = self.tasks.ok_or_else(|| {
            InvalidInput::new("tasks", format!("missing: give 1 to {max_tasks} tasks"))
        })?;
        groups::validate_tasks(tasks, max_tasks)?;
        if let Some(parallelism) = self.parallelism {
            groups::validate_parallelism(parallelism)?;
        }
        groups::validate_task_env(self.env.keys())?;
        let spec_bytes: usize = self.command.iter().map(|arg| arg.len() + 1).sum::<usize>()
            + self
                .env
                .iter()
                .map(|(name, value)| name.len() + value.len())
                .sum::<usize>();
        groups::validate_group_size(tasks, spec_bytes)?;
        if self.interactive.is_some() {
            return Err(InvalidInput::new(
                "interactive",
                "a group's tasks are queued jobs: run them without a terminal",
            ));
        }
        let parallelism = self.parallelism;
        Ok(GroupCreate {
            job: self.validate_job()?,
            tasks,
            parallelism,
        })
    }

    fn validate_job(self) -> Result<JobCreate, InvalidInput> {
        validate_command(&self.command)?;
        validate_env(&self.env)?;
        let size = parse_size(self.size.as_deref())?;
        check_timeout(self.timeout_seconds)?;
        check_queue_timeout(self.queue_timeout_seconds)?;
        validate_idempotency_key(self.idempotency_key.as_deref())?;
        check_upload_refs(&self.uploads)?;
        spec::validate_artifact_paths(&self.artifacts)?;
        let priority = self
            .priority
            .as_deref()
            .map(str::parse::<Priority>)
            .transpose()?;
        Ok(JobCreate {
            command: self.command,
            env: self.env,
            size,
            timeout_seconds: self.timeout_seconds,
            idempotency_key: self.idempotency_key,
            interactive: self.interactive,
            uploads: self.uploads,
            artifacts: self.artifacts,
            queue_timeout_seconds: self.queue_timeout_seconds,
            priority,
        })
    }
}

fn check_upload_refs(uploads: &[UploadRef]) -> Result<(), InvalidInput> {
    if uploads.len() > spec::MAX_UPLOADS_PER_JOB {
        return Err(InvalidInput::new(
            "uploads",
            format!(
                "{} uploads given: the limit is {} per job",
                uploads.len(),
                spec::MAX_UPLOADS_PER_JOB
            ),
        ));
    }
    for (index, upload) in uploads.iter().enumerate() {
        if uploads[..index]
            .iter()
            .any(|earlier| earlier.id == upload.id)
        {
            return Err(InvalidInput::new(
                "uploads",
                format!("upload {:?} is given twice", upload.id),
            ));
        }
        check_sha256("uploads", &upload.sha256)?;
    }
    Ok(())
}

fn check_sha256(field: &str, hex: &str) -> Result<(), InvalidInput> {
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(InvalidInput::new(
            field,
            format!("sha256 {hex:?} is not 64 hexadecimal digits"),
        ));
    }
    Ok(())
}

/// The query of `POST /v1/apps/{app}/uploads`.
#[derive(Debug, Default, Deserialize)]
pub struct UploadQuery {
    name: Option<String>,
    size: Option<String>,
    total: Option<String>,
    sha256: Option<String>,
    dry_run: Option<String>,
}

/// A checked upload query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRequest {
    pub name: String,
    /// The declared length of this file, if the client knows it.
    pub size: Option<u64>,
    /// The declared length of all the files of the job about to be created.
    pub total: Option<u64>,
    pub sha256: Option<String>,
    /// Check the declared sizes, the app and the token, and store nothing.
    pub dry_run: bool,
}

impl UploadQuery {
    pub fn validate(self) -> Result<UploadRequest, InvalidInput> {
        let name = self
            .name
            .ok_or_else(|| InvalidInput::new("name", "name is missing: give the file's name"))?;
        spec::validate_upload_name(&name)?;
        let bytes = |field: &str, text: Option<String>| {
            text.map(|text| {
                text.parse::<u64>().map_err(|_| {
                    InvalidInput::new(field, format!("{field} {text:?} is not a number of bytes"))
                })
            })
            .transpose()
        };
        let size = bytes("size", self.size)?;
        let total = bytes("total", self.total)?;
        if let Some(sha256) = &self.sha256 {
            check_sha256("sha256", sha256)?;
        }
        let dry_run = match self.dry_run.as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(InvalidInput::new(
                    "dry_run",
                    format!("dry_run {other:?} is not true or false"),
                ));
            }
        };
        Ok(UploadRequest {
            name,
            size,
            total,
            sha256: self.sha256.map(|hex| hex.to_ascii_lowercase()),
            dry_run,
        })
    }
}

/// The query of `GET /v1/apps/{app}/jobs`.
#[derive(Debug, Default, Deserialize)]
pub struct JobListQuery {
    state: Option<String>,
    limit: Option<String>,
}

/// A checked job-list query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobFilter {
    pub state: Option<JobState>,
    pub limit: i64,
}

impl JobListQuery {
    pub fn validate(&self) -> Result<JobFilter, InvalidInput> {
        let state = match self.state.as_deref() {
            None | Some("") => None,
            Some(state) => Some(state.parse::<JobState>()?),
        };
        let limit = parse_limit(
            self.limit.as_deref(),
            JOB_LIST_DEFAULT_LIMIT,
            JOB_LIST_MAX_LIMIT,
        )?;
        Ok(JobFilter { state, limit })
    }
}

/// The query of `GET /v1/jobs/{id}/logs`.
#[derive(Debug, Default, Deserialize)]
pub struct LogPageQuery {
    after: Option<String>,
    limit: Option<String>,
}

/// A checked log-page query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogWindow {
    pub after: i64,
    pub limit: i64,
}

impl LogPageQuery {
    pub fn validate(&self) -> Result<LogWindow, InvalidInput> {
        Ok(LogWindow {
            after: parse_after("after", self.after.as_deref())?.unwrap_or(0),
            limit: parse_limit(
                self.limit.as_deref(),
                LOG_PAGE_DEFAULT_LIMIT,
                LOG_PAGE_MAX_LIMIT,
            )?,
        })
    }
}

/// The query of `GET /v1/jobs/{id}/logs/stream`.
#[derive(Debug, Default, Deserialize)]
pub struct FollowQuery {
    after: Option<String>,
}

impl FollowQuery {
    /// The sequence number to resume after. `Last-Event-ID`, which browsers
    /// and SSE clients send on reconnect, wins over `after`.
    pub fn resume_after(&self, last_event_id: Option<&str>) -> Result<i64, InvalidInput> {
        if let Some(seq) = parse_after("Last-Event-ID", last_event_id)? {
            return Ok(seq);
        }
        Ok(parse_after("after", self.after.as_deref())?.unwrap_or(0))
    }
}

/// Checks an image reference: 1 to 512 characters, no whitespace or control
/// characters (which no registry accepts and which would garble logs).
pub fn validate_image(image: &str) -> Result<(), InvalidInput> {
    let invalid = |why: String| Err(InvalidInput::new("image", why));
    if image.is_empty() {
        return invalid("image is empty: give an image reference such as alpine:3".to_owned());
    }
    let length = image.chars().count();
    if length > MAX_IMAGE_LEN {
        return invalid(format!(
            "image is {length} characters long: the limit is {MAX_IMAGE_LEN}"
        ));
    }
    jobs_core::text::validate_line("image", &format!("image {image:?}"), image)?;
    if image.chars().any(char::is_whitespace) {
        return invalid(format!(
            "image {image:?} is invalid: must not contain whitespace"
        ));
    }
    Ok(())
}

/// Checks an app's `user`. An empty string counts as none, the image's user.
fn check_user(user: Option<String>) -> Result<Option<String>, InvalidInput> {
    let Some(user) = user.filter(|user| !user.is_empty()) else {
        return Ok(None);
    };
    hardening::validate_user(&user)?;
    Ok(Some(user))
}

/// Deserializes a field that is present, even as `null`, into `Some`, so
/// that an update can tell "absent" from "set to null".
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// Checks a timeout under the body's own field name, `timeout_seconds`.
fn check_timeout(timeout_seconds: Option<i64>) -> Result<(), InvalidInput> {
    spec::validate_timeout(timeout_seconds)
        .map_err(|error| InvalidInput::new("timeout_seconds", error.message))
}

/// Checks an app's `warm`, when given, against `MAX_WARM`.
fn check_warm(warm: Option<u32>) -> Result<(), InvalidInput> {
    warm.map_or(Ok(()), size::validate_warm)
}

fn check_queue_timeout(seconds: Option<i64>) -> Result<(), InvalidInput> {
    let Some(seconds) = seconds else {
        return Ok(());
    };
    jobs_core::duration::validate_timeout_seconds(seconds).map_err(|_| {
        let max = jobs_core::duration::MAX_TIMEOUT.as_secs();
        InvalidInput::new(
            "queue_timeout_seconds",
            format!(
                "queue timeout of {seconds}s is out of range: must be between 1s and {max}s (7 days)"
            ),
        )
    })
}

fn parse_size(size: Option<&str>) -> Result<Option<Size>, InvalidInput> {
    size.map(str::parse::<Size>).transpose()
}

/// Parses a page size, `default` when absent, and refuses anything outside
/// `1..=max`.
pub fn parse_limit(raw: Option<&str>, default: i64, max: i64) -> Result<i64, InvalidInput> {
    let Some(raw) = raw.filter(|raw| !raw.is_empty()) else {
        return Ok(default);
    };
    match raw.parse::<i64>() {
        Ok(limit) if (1..=max).contains(&limit) => Ok(limit),
        _ => Err(InvalidInput::new(
            "limit",
            format!("limit {raw:?} is invalid: must be a whole number between 1 and {max}"),
        )),
    }
}

/// Parses a log sequence number to resume after; `None` when absent or
/// blank, as an empty `Last-Event-ID` means "no id" in the SSE spec.
pub fn parse_after(field: &str, raw: Option<&str>) -> Result<Option<i64>, InvalidInput> {
    let Some(raw) = raw.map(str::trim).filter(|raw| !raw.is_empty()) else {
        return Ok(None);
    };
    match raw.parse::<i64>() {
        Ok(seq) if seq >= 0 => Ok(Some(seq)),
        _ => Err(InvalidInput::new(
            field,
            format!("{field} {raw:?} is invalid: must be a log sequence number of 0 or more"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(json: &str) -> Result<JobCreate, InvalidInput> {
        serde_json::from_str::<JobCreateRequest>(json)
            .expect("the body parses")
            .validate()
    }

    fn group(json: &str) -> Result<GroupCreate, InvalidInput> {
        serde_json::from_str::<JobCreateRequest>(json)
            .expect("the body parses")
            .validate_group(1000)
    }

    #[test]
    fn a_group_is_bounded_by_its_tasks_and_their_bytes() {
        let ok = group(r#"{"command":["true"],"tasks":1000,"parallelism":8}"#).expect("valid");
        assert_eq!((ok.tasks, ok.parallelism), (1000, Some(8)));
        assert_eq!(
            group(r#"{"command":["true"],"tasks":1001}"#)
                .unwrap_err()
                .field,
            "tasks"
        );
        assert_eq!(group(r#"{"command":["true"]}"#).unwrap_err().field, "tasks");
        // 1,000 copies of a 100 KB env would be 100 MB of rows from one request.
        let big = "v".repeat(100 * 1024);
        let body = format!(r#"{{"command":["true"],"tasks":1000,"env":{{"BIG":"{big}"}}}}"#);
        let err = group(&body).unwrap_err();
        assert_eq!(err.field, "tasks");
        assert!(
            err.message
                .contains("the limit is 16777216 bytes for a group"),
            "{err}"
        );
        // A job takes no tasks.
        assert_eq!(
            job(r#"{"command":["true"],"tasks":2}"#).unwrap_err().field,
            "tasks"
        );
    }

    #[test]
    fn a_queue_timeout_is_checked() {
        let ok = job(r#"{"command":["true"],"queue_timeout_seconds":300}"#).expect("valid");
        assert_eq!(ok.queue_timeout_seconds, Some(300));
        for bad in ["0", "-5", "604801"] {
            let error = job(&format!(
                r#"{{"command":["true"],"queue_timeout_seconds":{bad}}}"#
            ))
            .unwrap_err();
            assert_eq!(error.field, "queue_timeout_seconds");
            assert_eq!(
                error.message,
                format!(
                    "queue timeout of {bad}s is out of range: must be between 1s and 604800s (7 days)"
                )
            );
        }
    }

    #[test]
    fn an_unknown_size_names_the_choices() {
        let error = job(r#"{"command":["true"],"size":"XXL"}"#).unwrap_err();
        assert_eq!(error.field, "size");
        assert_eq!(
            error.message,
            "size \"XXL\" is unknown: must be one of S, M, L, XL"
        );
        let ok = job(r#"{"command":["true"],"size":"xl"}"#).expect("valid");
        assert_eq!(ok.size, Some(Size::XL));
    }

    #[test]
    fn job_fields_are_checked() {
        assert_eq!(job(r#"{"command":[]}"#).unwrap_err().field, "command");
        let bad_env = job(r#"{"command":["x"],"env":{"1FOO":"v"}}"#).unwrap_err();
        assert_eq!(bad_env.field, "env");
        assert!(bad_env.message.contains("[A-Za-z_][A-Za-z0-9_]*"));
        let bad_timeout = job(r#"{"command":["x"],"timeout_seconds":0}"#).unwrap_err();
        assert_eq!(bad_timeout.field, "timeout_seconds");
        assert!(bad_timeout.message.contains("between 1s and 604800s"));
        let bad_key = job(r#"{"command":["x"],"idempotency_key":""}"#).unwrap_err();
        assert_eq!(bad_key.field, "idempotency_key");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let parsed = serde_json::from_str::<JobCreateRequest>(r#"{"command":["x"],"timeout":5}"#);
        assert!(
            parsed
                .unwrap_err()
                .to_string()
                .contains("unknown field `timeout`")
        );
    }

    #[test]
    fn images() {
        assert!(validate_image("registry.example.com/team/app:1.2@sha256:abc").is_ok());
        assert!(validate_image("").unwrap_err().message.contains("empty"));
        assert!(
            validate_image("a b")
                .unwrap_err()
                .message
                .contains("whitespace")
        );
        let long = "a".repeat(MAX_IMAGE_LEN + 1);
        assert!(
            validate_image(&long)
                .unwrap_err()
                .message
                .contains("limit is 512")
        );
    }

    #[test]
    fn app_updates_check_unset_names() {
        let update: AppUpdateRequest =
            serde_json::from_str(r#"{"unset":["1BAD"]}"#).expect("the body parses");
        assert_eq!(update.validate().unwrap_err().field, "unset");
    }

    #[test]
    fn app_hardening_is_checked_and_canonical() {
        let create: AppCreateRequest = serde_json::from_str(
            r#"{"name":"web","image":"a","cap_add":["net_bind_service","CAP_CHOWN"],
                "user":"65534:65534","read_only_root":true,"network_none":true}"#,
        )
        .expect("the body parses");
        let create = create.validate().expect("valid");
        assert_eq!(create.hardening.cap_add, ["CHOWN", "NET_BIND_SERVICE"]);
        assert_eq!(create.hardening.user.as_deref(), Some("65534:65534"));
        assert!(create.hardening.read_only_root && create.hardening.network_none);

        let bad: AppCreateRequest =
            serde_json::from_str(r#"{"name":"web","image":"a","cap_add":["SYS_ADMIN"]}"#).unwrap();
        let error = bad.validate().unwrap_err();
        assert_eq!(error.field, "cap_add");
        assert!(
            error.message.contains("must be one of"),
            "{}",
            error.message
        );
        let bad: AppUpdateRequest = serde_json::from_str(r#"{"user":"root;rm"}"#).unwrap();
        assert_eq!(bad.validate().unwrap_err().field, "user");
    }

    #[test]
    fn app_warm_is_capped() {
        let create = |json: &str| {
            serde_json::from_str::<AppCreateRequest>(json)
                .expect("the body parses")
                .validate()
        };
        let update = |json: &str| {
            serde_json::from_str::<AppUpdateRequest>(json)
                .expect("the body parses")
                .validate()
        };
        assert_eq!(create(r#"{"name":"web","image":"a"}"#).unwrap().warm, None);
        assert_eq!(
            create(r#"{"name":"web","image":"a","warm":16}"#)
                .unwrap()
                .warm,
            Some(size::MAX_WARM)
        );
        assert_eq!(update(r#"{}"#).unwrap().warm, None);
        assert_eq!(update(r#"{"warm":0}"#).unwrap().warm, Some(0));
        for error in [
            create(r#"{"name":"web","image":"a","warm":17}"#).unwrap_err(),
            update(r#"{"warm":17}"#).unwrap_err(),
        ] {
            assert_eq!(error.field, "warm");
            assert_eq!(error.message, "at most 16 warm containers per app (got 17)");
            assert_eq!(
                error.to_string(),
                "warm: at most 16 warm containers per app (got 17)"
            );
        }
        // A negative count is not a u32: refused while parsing.
        assert!(serde_json::from_str::<AppUpdateRequest>(r#"{"warm":-1}"#).is_err());
    }

    #[test]
    fn app_updates_tell_absent_from_null() {
        let absent: AppUpdateRequest = serde_json::from_str(r#"{}"#).unwrap();
        assert_eq!(absent.validate().unwrap().user, None);
        let null: AppUpdateRequest = serde_json::from_str(r#"{"user":null}"#).unwrap();
        assert_eq!(null.validate().unwrap().user, Some(None));
        let empty: AppUpdateRequest = serde_json::from_str(r#"{"user":""}"#).unwrap();
        assert_eq!(empty.validate().unwrap().user, Some(None));
    }

    #[test]
    fn limits() {
        assert_eq!(parse_limit(None, 50, 1000), Ok(50));
        assert_eq!(parse_limit(Some(""), 50, 1000), Ok(50));
        assert_eq!(parse_limit(Some("1000"), 50, 1000), Ok(1000));
        for bad in ["0", "1001", "-1", "ten", "1.5"] {
            let error = parse_limit(Some(bad), 50, 1000).unwrap_err();
            assert_eq!(error.field, "limit");
            assert!(
                error.message.contains("between 1 and 1000"),
                "{}",
                error.message
            );
        }
    }

    #[test]
    fn job_list_filters() {
        let query = JobListQuery {
            state: Some("running".into()),
            limit: None,
        };
        assert_eq!(
            query.validate(),
            Ok(JobFilter {
                state: Some(JobState::Running),
                limit: 50
            })
        );
        let query = JobListQuery {
            state: Some("sleeping".into()),
            limit: None,
        };
        assert_eq!(query.validate().unwrap_err().field, "state");
    }

    #[test]
    fn last_event_id_wins_over_after() {
        let query = FollowQuery {
            after: Some("5".into()),
        };
        assert_eq!(query.resume_after(None), Ok(5));
        assert_eq!(query.resume_after(Some("42")), Ok(42));
        assert_eq!(query.resume_after(Some(" 7 ")), Ok(7));
        // An empty id means "no id", so `after` applies.
        assert_eq!(query.resume_after(Some("")), Ok(5));
        assert_eq!(FollowQuery::default().resume_after(None), Ok(0));
        let error = query.resume_after(Some("abc")).unwrap_err();
        assert_eq!(error.field, "Last-Event-ID");
        assert!(error.message.contains("0 or more"));
        assert_eq!(
            FollowQuery {
                after: Some("-3".into())
            }
            .resume_after(None)
            .unwrap_err()
            .field,
            "after"
        );
    }
}
