//! Why a running attempt must stop, set once by whoever asks first.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// A user asked for a cancel.
    Canceled,
    /// The job ran past its timeout.
    TimedOut,
    /// Another attempt or the reaper owns the job now.
    LeaseLost,
    /// The worker is shutting down and its drain period ran out.
    WorkerShutdown,
    /// An interactive run's client did not come back within the grace period.
    Abandoned,
    /// An interactive run's API stayed unreachable for the grace period, or
    /// refused the worker's dial-back.
    ApiUnreachable,
    /// The shim's directories in the container (`/.jobs`) or its own
    /// writable layer hold more than their cap (`size`), or `/.jobs` could
    /// not be measured (no `size`); `job_size` names the job's size.
    DiskLimit {
        area: DiskArea,
        size: Option<u64>,
        cap: u64,
        job_size: Option<jobs_core::Size>,
    },
}

/// Which of a job's places on the host's disk went past its cap
/// ([`crate::disk_cap`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskArea {
    /// `/.jobs/log` and `/.jobs/art`.
    JobsDir,
    /// The container's own writable layer.
    Layer,
}

/// A one-shot stop request with its reason. Being the one object every
/// part of an attempt shares, it also notes when the attempt began and
/// when its container started, for the worker's latency metrics.
#[derive(Debug)]
pub struct StopSignal {
    token: CancellationToken,
    reason: OnceLock<StopReason>,
    began: Instant,
    started: OnceLock<Instant>,
}

impl Default for StopSignal {
    fn default() -> Self {
        Self {
            token: CancellationToken::new(),
            reason: OnceLock::new(),
            began: Instant::now(),
            started: OnceLock::new(),
        }
    }
}

impl StopSignal {
    /// Notes that the container started (or was found running); returns
    /// how long after the attempt began.
    pub fn mark_started(&self) -> Duration {
        let now = Instant::now();
        let _ = self.started.set(now);
        now - self.began
    }

    /// How long the container has run, if it started.
    pub fn ran_for(&self) -> Option<Duration> {
        self.started.get().map(Instant::elapsed)
    }

    /// Asks the attempt to stop. The first reason wins.
    pub fn request(&self, reason: StopReason) {
        let _ = self.reason.set(reason);
        self.token.cancel();
    }

    pub fn reason(&self) -> Option<StopReason> {
        self.reason.get().copied()
    }

    pub async fn requested(&self) {
        self.token.cancelled().await;
    }
}

/// The stop signals of the attempts this worker runs, by job id.
#[derive(Debug, Default, Clone)]
pub struct RunningAttempts {
    inner: Arc<Mutex<HashMap<String, Arc<StopSignal>>>>,
}

impl RunningAttempts {
    pub fn register(&self, job_id: &str) -> Arc<StopSignal> {
        let signal = Arc::new(StopSignal::default());
        self.lock().insert(job_id.to_owned(), signal.clone());
        signal
    }

    pub fn unregister(&self, job_id: &str) {
        self.lock().remove(job_id);
    }

    /// Stops one job, if this worker runs it.
    pub fn stop(&self, job_id: &str, reason: StopReason) {
        if let Some(signal) = self.lock().get(job_id) {
            signal.request(reason);
        }
    }

    pub fn stop_all(&self, reason: StopReason) {
        for signal in self.lock().values() {
            signal.request(reason);
        }
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<StopSignal>>> {
        // A poisoned map is still a valid map: no invariant spans a panic.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_reason_wins() {
        let attempts = RunningAttempts::default();
        let signal = attempts.register("a");
        attempts.stop("a", StopReason::Canceled);
        attempts.stop("a", StopReason::TimedOut);
        attempts.stop("unknown", StopReason::TimedOut);
        assert_eq!(signal.reason(), Some(StopReason::Canceled));
        attempts.unregister("a");
        assert!(attempts.is_empty());
    }
}
