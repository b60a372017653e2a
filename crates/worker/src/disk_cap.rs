//! The caps on what a job can write on the host's disk, measured while it
//! runs because the engine has no quota for them:
//! - its `/.jobs/log` and `/.jobs/art`: volumes of the container's own,
//!   writable by the command as by the shim (the same user, with the same
//!   capabilities), measured with the shim's `du`
//!   ([`Runtime::measure_jobs_dir`]) against their cap
//!   ([`crate::runtime::shim_volume::jobs_dir_cap`]: the ring, its `/tmp`'s
//!   size for the artifacts' copy, and slack);
//! - its own writable layer (everything outside `/tmp` and its volumes),
//!   measured as Docker's `SizeRw` against its size's `disk_bytes` (1 GiB
//!   for S up to 8 GiB for XL). overlay2 has a quota only on XFS with
//!   `pquota`, which Debian's plain engine does not have.
//!
//! A job past either is stopped at once, without grace: it would go on
//! writing. The measure of `/.jobs` runs as the job's user in its
//! container, so the job can get in its way (kill or stop it, make an entry
//! it cannot read, fill its pids limit): a measure that gives no size
//! counts against the job, and [`REFUSALS`] in a row stop it too. An engine
//! that does not answer counts for nothing.

use std::time::Duration;

use jobs_core::{Size, spec::describe_bytes};

use crate::{
    runtime::{Runtime, disk::DiskCaps, shim_volume::Measure},
    stop_signal::{DiskArea, StopReason},
};

/// How often each is measured.
const INTERVAL: Duration = Duration::from_secs(2);
/// How often once one holds half its cap: a job on its way there is caught
/// closer to it.
const CLOSE_INTERVAL: Duration = Duration::from_millis(250);
/// How many measures of `/.jobs` in a row that give no size stop the job.
pub const REFUSALS: u32 = 3;

/// Resolves to the stop's reason once `container_id` holds more than a cap,
/// or its `/.jobs` could not be measured [`REFUSALS`] times in a row;
/// pends for ever for a container without caps (an older worker's).
pub async fn over_cap(runtime: &Runtime, container_id: &str) -> StopReason {
    let caps = match runtime.disk_caps_of(container_id).await {
        Ok(caps) if caps.jobs_dir.is_some() || caps.layer.is_some() => caps,
        Ok(_) => return std::future::pending().await,
        Err(error) => {
            tracing::warn!(container_id, %error, "cannot read the disk caps; not measuring");
            return std::future::pending().await;
        }
    };
    let mut refused = 0;
    let mut interval = INTERVAL;
    loop {
        tokio::time::sleep(interval).await;
        interval = INTERVAL;
        if let Some(cap) = caps.jobs_dir {
            match runtime.measure_jobs_dir(container_id).await {
                Ok(Measure::Size(size)) => {
                    refused = 0;
                    if size > cap {
                        tracing::warn!(container_id, size, cap, "/.jobs is over its cap");
                        return stop(DiskArea::JobsDir, Some(size), cap, &caps);
                    }
                    interval = interval.min(next_interval(size, cap));
                }
                Ok(Measure::Refused(why)) => {
                    refused += 1;
                    tracing::warn!(container_id, why, refused, "/.jobs could not be measured");
                    if refused >= REFUSALS {
                        return stop(DiskArea::JobsDir, None, cap, &caps);
                    }
                }
                Err(error) => {
                    tracing::debug!(container_id, %error, "measuring /.jobs failed in the engine");
                }
            }
        }
        if let Some(cap) = caps.layer {
            match runtime.writable_layer_size(container_id).await {
                Ok(Some(size)) if size > cap => {
                    tracing::warn!(
                        container_id,
                        size,
                        cap,
                        "the writable layer is over its cap"
                    );
                    return stop(DiskArea::Layer, Some(size), cap, &caps);
                }
                Ok(Some(size)) => interval = interval.min(next_interval(size, cap)),
                Ok(None) => {}
                Err(error) => {
                    tracing::debug!(container_id, %error, "measuring the writable layer failed");
                }
            }
        }
    }
}

fn stop(area: DiskArea, size: Option<u64>, cap: u64, caps: &DiskCaps) -> StopReason {
    StopReason::DiskLimit {
        area,
        size,
        cap,
        job_size: caps.size,
    }
}

/// The job's reason: `disk limit exceeded (its own files hold 1288490188
/// bytes, over the limit of 1073741824 bytes (1 GiB) at size S)`.
pub fn disk_limit_reason(
    area: DiskArea,
    size: Option<u64>,
    cap: u64,
    job_size: Option<Size>,
) -> String {
    let at = job_size
        .map(|size| format!(" at size {size}"))
        .unwrap_or_default();
    let (what, holds) = match area {
        DiskArea::JobsDir => ("/.jobs", "holds"),
        DiskArea::Layer => ("its own files", "hold"),
    };
    let limit = describe_bytes(cap);
    match size {
        Some(size) => {
            format!(
                "disk limit exceeded ({what} {holds} {size} bytes, over the limit of {limit}{at})"
            )
        }
        None => format!(
            "disk limit exceeded ({what} could not be measured {REFUSALS} times in a row; \
             the limit is {limit}{at})"
        ),
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
    fn the_reason_names_the_place_the_limit_and_the_size() {
        assert_eq!(
            disk_limit_reason(DiskArea::Layer, Some(1_288_490_188), 1 << 30, Some(Size::S)),
            "disk limit exceeded (its own files hold 1288490188 bytes, over the limit of \
             1073741824 bytes (1 GiB) at size S)"
        );
        assert_eq!(
            disk_limit_reason(DiskArea::JobsDir, None, 1 << 20, None),
            "disk limit exceeded (/.jobs could not be measured 3 times in a row; the limit \
             is 1048576 bytes (1 MiB))"
        );
    }

    #[test]
    fn a_job_near_its_cap_is_measured_more_often() {
        assert_eq!(next_interval(10, 100), INTERVAL);
        assert_eq!(next_interval(51, 100), CLOSE_INTERVAL);
    }
}
