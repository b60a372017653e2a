//! Fault: the worker is paused (SIGSTOP) past its lease in the middle of a
//! job, then resumed (SIGCONT), as after a VM pause or a long stall.
//!
//! Meanwhile the reaper ended the job `lost`. The resumed worker's writes
//! are refused by the fence (`id, attempt, lease_owner`): it kills its
//! container, removes it, and the stored state stays the reaper's. This is
//! underway's `fenced_attempts_ignore_stale_workers`, against real
//! processes.

use std::time::Duration;

use jobs_e2e::executions::{container_of, container_status, starts_of, wait_for_logs};
use jobs_e2e::poll::wait_until;
use jobs_e2e::{TestEnv, TestEnvOptions};

const DEADLINE: Duration = Duration::from_secs(60);

#[test]
fn a_worker_paused_past_its_lease_is_fenced_off_kills_its_container_and_keeps_the_newer_state() {
    let mut env = TestEnv::start_with(
        TestEnvOptions::new(1)
            .worker_env("JOBS_LEASE", "3s")
            .api_env("JOBS_REAPER_INTERVAL", "1s"),
    );
    let starts = env.watch_container_starts_and_dies();
    // It would exit 7 if it were left to finish.
    let job = env.run_detached(&["--", "sh", "-c", "echo started; sleep 20; exit 7"]);
    env.wait_for_state(&job, "running", DEADLINE);
    wait_for_logs(&env, &job, b"started\n", DEADLINE);
    let container = container_of(&job, DEADLINE);

    env.pause_worker();
    let lost = env.wait_for_state(&job, "lost", DEADLINE);
    assert_eq!(lost.reason.as_deref(), Some("worker lost"), "{lost:?}");
    assert_eq!(
        container_status(&container),
        "running",
        "the paused worker's container still runs"
    );

    env.resume_worker();
    // Its next heartbeat is refused: it stops and removes the container
    // well before the command would have ended on its own.
    wait_until(
        "the stale worker to remove its container",
        Duration::from_secs(15),
        || container_status(&container).is_empty().then_some(()),
    );
    let after = env.db_job(&job).expect("stored");
    assert_eq!(after, lost, "the stale worker overwrote the newer state");
    assert_eq!(after.exit_code, None, "no exit code is invented: {after:?}");
    env.jobs(&["wait", &job])
        .assert_code(125)
        .assert_stderr_contains("worker lost");
    assert_eq!(starts_of(&starts, &job), 1, "never run twice");

    // The worker itself is healthy again and takes new work.
    let next = env.run_detached(&["--", "sh", "-c", "echo next; exit 2"]);
    env.jobs_with_timeout(&["wait", &next], DEADLINE)
        .assert_code(2);
    env.finish();
}
