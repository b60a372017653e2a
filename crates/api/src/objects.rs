//! The object store as the API uses it: where uploads and artifacts live,
//! how large uploads may be, and how long objects are kept.
//!
//! `jobs-api` takes these as flags (`crate::config`); `jobs dev` reads the
//! same environment variables with [`ObjectSettings::from_env`]. The purge
//! ([`purge_pass`]) runs in the relay's loop.

use std::time::Duration;

use jobs_blobs::{Blobs, artifact_key, upload_key};
use jobs_core::spec::{DEFAULT_MAX_UPLOAD_BYTES, DEFAULT_MAX_UPLOAD_TOTAL_BYTES};
use jobs_store::{PurgedJob, Store};

/// How long an ended job, its logs and its objects are kept by default.
pub const DEFAULT_RETENTION_DAYS: f64 = 30.0;
/// How long an upload no job took is kept by default.
pub const DEFAULT_FREE_UPLOAD_TTL: Duration = Duration::from_secs(24 * 3600);
/// How many rows one purge pass deletes at most; the next pass goes on.
pub const PURGE_BATCH: i64 = 100;

pub const MAX_UPLOAD_BYTES_ENV: &str = "JOBS_MAX_UPLOAD_BYTES";
pub const MAX_UPLOAD_TOTAL_BYTES_ENV: &str = "JOBS_MAX_UPLOAD_TOTAL_BYTES";
pub const RETENTION_DAYS_ENV: &str = "JOBS_RETENTION_DAYS";
pub const FREE_UPLOAD_TTL_ENV: &str = "JOBS_FREE_UPLOAD_TTL";

/// The object store and its limits.
#[derive(Debug, Clone)]
pub struct ObjectSettings {
    pub blobs: Blobs,
    /// The largest one uploaded file may be.
    pub max_upload_bytes: u64,
    /// The most bytes of uploads one job may take.
    pub max_upload_total_bytes: u64,
    /// Ended jobs are deleted, objects and all, this long after their end.
    pub retention: Duration,
    /// Uploads no job took are deleted this long after they were stored.
    pub free_upload_ttl: Duration,
}

impl ObjectSettings {
    /// The default limits on `blobs`.
    pub fn new(blobs: Blobs) -> Self {
        Self {
            blobs,
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            max_upload_total_bytes: DEFAULT_MAX_UPLOAD_TOTAL_BYTES,
            retention: retention_from_days(DEFAULT_RETENTION_DAYS)
                .expect("the default retention is valid"),
            free_upload_ttl: DEFAULT_FREE_UPLOAD_TTL,
        }
    }

    /// The defaults on `blobs`, with what the environment sets; a malformed
    /// value stops the start, naming the variable.
    pub fn from_env(blobs: Blobs) -> anyhow::Result<Self> {
        let mut settings = Self::new(blobs);
        let read = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        let bytes = |name: &str, value: String| {
            value
                .parse::<u64>()
                .map_err(|_| anyhow::anyhow!("{name}={value:?} is not a number of bytes"))
        };
        if let Some(value) = read(MAX_UPLOAD_BYTES_ENV) {
            settings.max_upload_bytes = bytes(MAX_UPLOAD_BYTES_ENV, value)?;
        }
        if let Some(value) = read(MAX_UPLOAD_TOTAL_BYTES_ENV) {
            settings.max_upload_total_bytes = bytes(MAX_UPLOAD_TOTAL_BYTES_ENV, value)?;
        }
        if let Some(value) = read(RETENTION_DAYS_ENV) {
            settings.retention = parse_retention_days(&value)
                .map_err(|why| anyhow::anyhow!("{RETENTION_DAYS_ENV}={value:?}: {why}"))?;
        }
        if let Some(value) = read(FREE_UPLOAD_TTL_ENV) {
            settings.free_upload_ttl = jobs_core::duration::parse_duration("duration", &value)
                .map_err(|error| {
                    anyhow::anyhow!("{FREE_UPLOAD_TTL_ENV}={value:?}: {}", error.message)
                })?;
        }
        Ok(settings)
    }
}

/// Parses a number of days, fractions allowed (`0.5` is twelve hours).
pub fn parse_retention_days(text: &str) -> Result<Duration, String> {
    let days: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of days"))?;
    retention_from_days(days)
}

fn retention_from_days(days: f64) -> Result<Duration, String> {
    if !days.is_finite() || days <= 0.0 || days > 36_500.0 {
        return Err(format!(
            "{days} days: must be more than 0 and at most 36500"
        ));
    }
    Ok(Duration::from_secs_f64(days * 86_400.0))
}

/// What one purge pass deleted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PurgeReport {
    pub jobs: usize,
    pub objects: usize,
}

/// Deletes jobs ended longer ago than the retention, then the objects of
/// their uploads and artifacts; then the uploads no job took in time, and
/// their objects.
///
/// Rows go first: once a row is gone no one can read or take its object,
/// so deleting the object cannot race a reader. An object whose delete
/// fails is logged and left behind (it is no longer reachable).
pub async fn purge_pass(store: &Store, settings: &ObjectSettings) -> anyhow::Result<PurgeReport> {
    let jobs = store
        .purge_ended_jobs(settings.retention, PURGE_BATCH)
        .await?;
    let free_uploads = store
        .purge_free_uploads(settings.free_upload_ttl, PURGE_BATCH)
        .await?;
    Ok(PurgeReport {
        jobs: jobs.len(),
        objects: delete_objects(settings, &jobs, &free_uploads).await,
    })
}

/// Deletes the objects of `jobs` (uploads and collected artifacts) and of
/// `free_uploads`, whose rows are gone; returns how many went. One whose
/// delete fails is logged and left behind: it is no longer reachable.
pub async fn delete_objects(
    settings: &ObjectSettings,
    jobs: &[PurgedJob],
    free_uploads: &[String],
) -> usize {
    let mut keys = Vec::new();
    for job in jobs {
        keys.extend(job.uploads.iter().map(|upload| upload_key(&upload.id)));
        keys.extend(
            job.artifacts
                .iter()
                .enumerate()
                .filter(|(_, artifact)| artifact.collected())
                .map(|(index, _)| artifact_key(&job.id, index)),
        );
    }
    keys.extend(free_uploads.iter().map(|id| upload_key(id)));
    let mut deleted = 0;
    for key in keys {
        match settings.blobs.delete(&key).await {
            Ok(()) => deleted += 1,
            Err(error) => {
                tracing::warn!(key, %error, "deleting an object failed; it is left behind")
            }
        }
    }
    deleted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_is_a_positive_number_of_days() {
        assert_eq!(parse_retention_days("1"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_retention_days("0.5"), Ok(Duration::from_secs(43_200)));
        for bad in ["0", "-1", "soon", "NaN", "100000"] {
            assert!(parse_retention_days(bad).is_err(), "{bad}");
        }
    }
}
