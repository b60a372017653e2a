//! Counting how many times a job's command ran.
//!
//! Job containers have no bind mount, so a command cannot leave a mark on
//! the host. Every execution is a container start, though, and each job
//! container carries the label `jobs.job_id`: Docker's event log is an
//! independent witness of how often a job ran, whatever the store says.

use std::collections::HashMap;
use std::time::Duration;

use crate::docker::{EventWatcher, containers_with_label, docker};
use crate::env::TestEnv;
use crate::poll::wait_until;

/// Container starts per job id seen by `watcher` (which must watch `start`
/// events, as [`TestEnv::watch_container_starts_and_dies`] does).
pub fn starts_per_job(watcher: &EventWatcher) -> HashMap<String, usize> {
    let mut starts = HashMap::new();
    for event in watcher.events() {
        if event.action == "start"
            && let Some(job_id) = event.job_id
        {
            *starts.entry(job_id).or_default() += 1;
        }
    }
    starts
}

/// How many times `job_id`'s container was started.
pub fn starts_of(watcher: &EventWatcher, job_id: &str) -> usize {
    starts_per_job(watcher).get(job_id).copied().unwrap_or(0)
}

/// The one container of `job_id`, once it exists.
pub fn container_of(job_id: &str, timeout: Duration) -> String {
    wait_until("the job's container", timeout, || {
        containers_with_label(&format!("jobs.job_id={job_id}"))
            .into_iter()
            .next()
    })
}

/// `running`, `exited`… or an empty string once the container is gone.
pub fn container_status(container: &str) -> String {
    let output = std::process::Command::new("docker")
        .args(["inspect", "-f", "{{.State.Status}}", container])
        .output()
        .expect("docker inspect runs");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Waits until `jobs logs` of the job prints exactly `expected` so far.
pub fn wait_for_logs(env: &TestEnv, job_id: &str, expected: &[u8], timeout: Duration) {
    wait_until("the job's output so far", timeout, || {
        (env.jobs(&["logs", job_id]).stdout == expected).then_some(())
    });
}

/// Waits until `jobs logs` of the job starts with `prefix`.
pub fn wait_for_log_prefix(env: &TestEnv, job_id: &str, prefix: &[u8], timeout: Duration) {
    wait_until("the job's first output", timeout, || {
        env.jobs(&["logs", job_id])
            .stdout
            .starts_with(prefix)
            .then_some(())
    });
}

/// The lines a job wrote into a file of its own container (`/tmp/...`),
/// read with `docker exec`: how a test sees a job progress while the
/// system cannot store its output.
pub fn lines_in_container(container: &str, path: &str) -> usize {
    let text = docker(&["exec", container, "cat", path]);
    text.lines().count()
}
