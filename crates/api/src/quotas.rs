//! Quotas: how many jobs an app may have queued at once (a flood limit far
//! above any real batch; caps on running jobs are the app's own
//! `max_running`), how many tasks one group may have, how many requests a
//! token may make ([`crate::rate_limit`]), and an app's own storage quota
//! ([`check_storage_quota`]).
//!
//! `jobs-api` takes them as flags (with the same environment variables,
//! see `crate::config`); `jobs dev` reads the variables with
//! [`Quotas::from_env`]. A malformed value stops the start with an error
//! that names it.

use std::num::NonZeroU32;

use jobs_core::spec::describe_bytes;
use jobs_store::Store;

use crate::{
    auth_failures::DEFAULT_AUTH_FAILURES_PER_MINUTE,
    body_rate::BodyRate,
    error::ApiError,
    rate_limit::RateLimit,
    token_slots::{DEFAULT_ATTACH_SOCKETS_PER_TOKEN, DEFAULT_LOG_STREAMS_PER_TOKEN},
};

/// The queued-job limit per app when none is configured.
pub const DEFAULT_MAX_QUEUED_JOBS_PER_APP: i64 = 10_000;
/// The environment variables that set the quotas.
pub const MAX_QUEUED_JOBS_PER_APP_ENV: &str = "JOBS_MAX_QUEUED_JOBS_PER_APP";
pub const MAX_TASKS_PER_GROUP_ENV: &str = "JOBS_MAX_TASKS_PER_GROUP";
pub const RATE_LIMIT_PER_SECOND_ENV: &str = "JOBS_RATE_LIMIT_PER_SECOND";
pub const RATE_LIMIT_BURST_ENV: &str = "JOBS_RATE_LIMIT_BURST";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    /// Queued jobs per app (interactive runs aside); one more is a 429.
    pub max_queued_jobs_per_app: i64,
    /// Tasks of one group (`jobs run --tasks N`); more is a 422 naming it.
    pub max_tasks_per_group: u32,
    /// Requests per token under `/v1`; more is a 429 with `Retry-After`.
    pub rate: RateLimit,
    /// Log streams one token may hold open; one more is a 429.
    pub log_streams_per_token: usize,
    /// Attach sockets one token may hold open; one more is a 429.
    pub attach_sockets_per_token: usize,
    /// Failed authentications per minute from one address; past them, 429.
    pub auth_failures_per_minute: NonZeroU32,
    /// The minimum rate of request bodies.
    pub body_rate: BodyRate,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            max_queued_jobs_per_app: DEFAULT_MAX_QUEUED_JOBS_PER_APP,
            max_tasks_per_group: jobs_core::groups::DEFAULT_MAX_TASKS,
            rate: RateLimit::default(),
            log_streams_per_token: DEFAULT_LOG_STREAMS_PER_TOKEN,
            attach_sockets_per_token: DEFAULT_ATTACH_SOCKETS_PER_TOKEN,
            auth_failures_per_minute: NonZeroU32::new(DEFAULT_AUTH_FAILURES_PER_MINUTE)
                .expect("not zero"),
            body_rate: BodyRate::default(),
        }
    }
}

impl Quotas {
    /// The quotas from the environment, defaults for what is unset. A value
    /// that is not a positive integer is refused, naming the variable: a
    /// typo must not silently lift or tighten a limit.
    pub fn from_env() -> anyhow::Result<Self> {
        let mut quotas = Self::default();
        if let Some(limit) = positive_from_env(MAX_QUEUED_JOBS_PER_APP_ENV)? {
            quotas.max_queued_jobs_per_app = limit;
        }
        if let Some(tasks) = positive_from_env(MAX_TASKS_PER_GROUP_ENV)? {
            quotas.max_tasks_per_group = u32::try_from(tasks).map_err(|_| {
                anyhow::anyhow!(
                    "{MAX_TASKS_PER_GROUP_ENV}={tasks} is too large: the limit is {}",
                    u32::MAX
                )
            })?;
        }
        if let Some(rate) = positive_from_env(RATE_LIMIT_PER_SECOND_ENV)? {
            quotas.rate.per_second = non_zero(RATE_LIMIT_PER_SECOND_ENV, rate)?;
        }
        if let Some(burst) = positive_from_env(RATE_LIMIT_BURST_ENV)? {
            quotas.rate.burst = non_zero(RATE_LIMIT_BURST_ENV, burst)?;
        }
        Ok(quotas)
    }
}

fn non_zero(name: &str, value: i64) -> anyhow::Result<NonZeroU32> {
    u32::try_from(value)
        .ok()
        .and_then(NonZeroU32::new)
        .ok_or_else(|| anyhow::anyhow!("{name}={value} is too large: the limit is {}", u32::MAX))
}

fn positive_from_env(name: &str) -> anyhow::Result<Option<i64>> {
    let Ok(text) = std::env::var(name) else {
        return Ok(None);
    };
    match text.trim().parse::<i64>() {
        Ok(value) if value >= 1 => Ok(Some(value)),
        _ => anyhow::bail!("{name}={text:?} is not a positive integer"),
    }
}

/// 429 `storage_quota_exceeded`, before anything is stored, when the app's
/// logs, uploads and artifacts already take its storage quota, or would
/// with `adding` more bytes (an upload's declared size). Measured only for
/// an app that has one. What runs goes on: each job's output is capped on
/// its own (`max_output_bytes`).
pub async fn check_storage_quota(store: &Store, app: &str, adding: u64) -> Result<(), ApiError> {
    let Some(quota) = store.storage_quota(app).await? else {
        return Ok(());
    };
    let used = store.storage_used(app).await?;
    if used < quota && used.saturating_add(adding) <= quota {
        return Ok(());
    }
    Err(ApiError::TooManyRequests {
        code: "storage_quota_exceeded",
        message: format!(
            "app {app:?} stores {} of logs, uploads and artifacts{}: its storage quota is {} \
             (storage_quota_bytes); raise it with `jobs apps set {app} --storage-quota SIZE` \
             or wait for old jobs to be purged",
            describe_bytes(used),
            if adding > 0 {
                format!(", and this upload would add {}", describe_bytes(adding))
            } else {
                String::new()
            },
            describe_bytes(quota)
        ),
        retry_after: None,
    })
}
