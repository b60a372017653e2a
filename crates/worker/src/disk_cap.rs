//! The cap on what a job can write into the shim's directories,
//! `/.jobs/log` and `/.jobs/art`: volumes of the container's own on the
//! host's disk, writable by the command as by the shim (the same user, with
//! the same capabilities), which the engine's `local` volumes cannot cap.
//! So the worker measures them while the job runs, with the shim's `du`
//! ([`Runtime::measure_jobs_dir`]), and stops a job past its cap
//! ([`crate::runtime::shim_volume::jobs_dir_cap`]: the ring, its `/tmp`'s
//! size for the artifacts' copy, and slack) at once.
//!
//! The measure runs as the job's user in its container, so the job can
//! get in its way (kill or stop it, make an entry it cannot read, fill its
//! pids limit): a measure that gives no size counts against the job, and
//! [`REFUSALS`] in a row stop it too. An engine that does not answer counts
//! for nothing.

use std::time::Duration;

use crate::{
    runtime::{Runtime, shim_volume::Measure},
    stop_signal::StopReason,
};

/// How often `/.jobs` is measured.
const INTERVAL: Duration = Duration::from_secs(2);
/// How often once it holds half its cap: a job on its way there is caught
/// closer to it.
const CLOSE_INTERVAL: Duration = Duration::from_millis(250);
/// How many measures in a row that give no size stop the job.
pub const REFUSALS: u32 = 3;

/// Resolves to the stop's reason once `container_id`'s `/.jobs` holds more
/// than its cap, or could not be measured [`REFUSALS`] times in a row;
/// pends for ever for a container without the cap (an older worker's).
pub async fn over_cap(runtime: &Runtime, container_id: &str) -> StopReason {
    let cap = match runtime.jobs_dir_cap_of(container_id).await {
        Ok(Some(cap)) => cap,
        Ok(None) => return std::future::pending().await,
        Err(error) => {
            tracing::warn!(container_id, %error, "cannot read the cap of /.jobs; not measuring it");
            return std::future::pending().await;
        }
    };
    let mut refused = 0;
    let mut interval = INTERVAL;
    loop {
        tokio::time::sleep(interval).await;
        match runtime.measure_jobs_dir(container_id).await {
            Ok(Measure::Size(size)) => {
                refused = 0;
                if size > cap {
                    tracing::warn!(container_id, size, cap, "/.jobs is over its cap");
                    return StopReason::DiskLimit {
                        size: Some(size),
                        cap,
                    };
                }
                interval = next_interval(size, cap);
            }
            Ok(Measure::Refused(why)) => {
                refused += 1;
                tracing::warn!(container_id, why, refused, "/.jobs could not be measured");
                if refused >= REFUSALS {
                    return StopReason::DiskLimit { size: None, cap };
                }
            }
            Err(error) => {
                tracing::debug!(container_id, %error, "measuring /.jobs failed in the engine");
            }
        }
    }
}

fn next_interval(size: u64, cap: u64) -> Duration {
    if size > cap / 2 {
        CLOSE_INTERVAL
    } else {
        INTERVAL
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_near_its_cap_is_measured_more_often() {
        assert_eq!(next_interval(10, 100), INTERVAL);
        assert_eq!(next_interval(51, 100), CLOSE_INTERVAL);
    }
}
