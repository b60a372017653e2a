//! Fault: the worker is killed with SIGKILL in the middle of a job.
//!
//! - back within its lease: it takes the job over, and the job ends with
//!   the exit code its command exited with, having run once;
//! - never back: the reaper ends the job `lost`, reason `worker lost`,
//!   within one lease plus one reaper interval, with no exit code;
//! - a job claimed but never started is queued again and runs.
//!
//! Executions are counted by Docker's container `start` events.

use std::time::{Duration, Instant};

use jobs_e2e::executions::{container_of, container_status, starts_of, wait_for_logs};
use jobs_e2e::{TestEnv, TestEnvOptions};

const DEADLINE: Duration = Duration::from_secs(60);
/// Short, so that the reaper acts within seconds.
const LEASE_SECONDS: u64 = 4;
const REAPER_SECONDS: u64 = 1;

fn short_lease_env() -> TestEnv {
    TestEnv::start_with(
        TestEnvOptions::new(1)
            .worker_env("JOBS_LEASE", &format!("{LEASE_SECONDS}s"))
            .api_env("JOBS_REAPER_INTERVAL", &format!("{REAPER_SECONDS}s")),
    )
}

#[test]
fn a_worker_killed_and_back_within_its_lease_takes_over_and_keeps_the_exit_code() {
    let mut env = short_lease_env();
    let starts = env.watch_container_starts_and_dies();
    let job = env.run_detached(&["--", "sh", "-c", "echo before; sleep 5; echo after; exit 3"]);
    env.wait_for_state(&job, "running", DEADLINE);
    wait_for_logs(&env, &job, b"before\n", DEADLINE);

    env.kill_worker();
    env.restart_worker();
    let container = container_of(&job, DEADLINE);
    assert_eq!(
        container_status(&container),
        "running",
        "the job must outlive the restart for this test to mean anything"
    );

    env.jobs_with_timeout(&["wait", &job], DEADLINE)
        .assert_code(3);
    let stored = env.db_job(&job).expect("stored");
    assert_eq!(
        (stored.state.as_str(), stored.exit_code, stored.attempt),
        ("failed", Some(3), 1),
        "{stored:?}"
    );
    env.jobs(&["logs", &job])
        .assert_success()
        .assert_stdout(b"before\nafter\n");
    assert_eq!(starts_of(&starts, &job), 1, "the command ran once");
    env.finish();
}

#[test]
fn a_worker_killed_for_good_has_its_running_job_lost_within_a_lease_and_a_reaper_interval() {
    let mut env = short_lease_env();
    let starts = env.watch_container_starts_and_dies();
    let job = env.run_detached(&["--", "sh", "-c", "echo started; sleep 300"]);
    env.wait_for_state(&job, "running", DEADLINE);
    wait_for_logs(&env, &job, b"started\n", DEADLINE);

    env.kill_worker();
    let killed = Instant::now();
    let lost = env.wait_for_state(&job, "lost", DEADLINE);
    let took = killed.elapsed();
    // The lease was renewed at most a third of a lease before the kill, so
    // it runs out within one lease; the reaper sees it within one interval.
    // Two more seconds cover the polls of this test and a loaded machine.
    let bound = Duration::from_secs(LEASE_SECONDS + REAPER_SECONDS + 2);
    assert!(
        took <= bound,
        "lost after {took:?}, more than the lease plus a reaper interval ({bound:?})"
    );
    assert_eq!(lost.reason.as_deref(), Some("worker lost"), "{lost:?}");
    assert_eq!(lost.exit_code, None, "no exit code is invented: {lost:?}");
    env.jobs(&["wait", &job])
        .assert_code(125)
        .assert_stderr_contains("worker lost");
    let status = env.status(&job);
    assert_eq!(status["exit_code"], serde_json::Value::Null, "{status}");
    assert_eq!(starts_of(&starts, &job), 1, "never run again");

    // The job's container outlived its worker; a worker that comes back
    // later removes it, as it holds no job any more.
    env.restart_worker();
    env.finish();
    let stored = env.db_job(&job).expect("stored");
    assert_eq!(
        stored.state, "lost",
        "a terminal state never changes: {stored:?}"
    );
}

#[test]
fn a_job_claimed_by_a_dead_worker_but_never_started_is_queued_again_and_runs() {
    let mut env = short_lease_env();
    let starts = env.watch_container_starts_and_dies();
    let job = env.run_detached(&["--", "sh", "-c", "echo ran; exit 6"]);
    env.jobs(&["wait", &job]).assert_code(6);
    // A crash between the claim and the container's start, by another
    // worker that never comes back: the job is `starting`, held by it,
    // with no container, and its lease runs out on its own. (As a claim
    // does, this clears the start intent of the first run.)
    env.db_execute(&format!(
        "update jobs set state = 'starting', exit_code = null, reason = null, \
         finished_at = null, started_at = null, lease_owner = 'a-dead-worker', \
         start_requested_at = null, stop_reason = null, \
         lease_expires_at = now() + interval '{LEASE_SECONDS} seconds' where id = '{job}'"
    ));
    let requeued_and_ended = env.wait_for_job(&job, "run again", DEADLINE, |job| {
        job.attempt == 2 && job.is_terminal()
    });
    assert_eq!(
        (
            requeued_and_ended.state.as_str(),
            requeued_and_ended.exit_code
        ),
        ("failed", Some(6)),
        "{requeued_and_ended:?}"
    );
    assert_eq!(
        starts_of(&starts, &job),
        2,
        "the first run, and the re-queued one"
    );
    env.finish();
}

#[test]
fn a_job_stopped_for_its_timeout_by_a_worker_that_then_dies_still_ends_timed_out() {
    // The worker sends SIGTERM at the timeout; the command takes 3 s to
    // exit (within the 10 s stop grace), and the worker is killed in those
    // 3 s. The worker that takes the exited container over must record the
    // timeout, not the signal's exit status as the command's own end.
    let mut env = TestEnv::start_with(
        TestEnvOptions::new(1)
            .worker_env("JOBS_LEASE", "30s")
            .worker_env("JOBS_STOP_GRACE", "10s"),
    );
    let job = env.run_detached(&[
        "--timeout",
        "2s",
        "--",
        "sh",
        "-c",
        "trap 'echo got TERM; sleep 3; exit 143' TERM; echo started; sleep 60 & wait",
    ]);
    env.wait_for_state(&job, "running", DEADLINE);
    let container = container_of(&job, DEADLINE);
    wait_for_logs(&env, &job, b"started\ngot TERM\n", DEADLINE);

    env.kill_worker();
    jobs_e2e::poll::wait_until("the container to exit", DEADLINE, || {
        (container_status(&container) == "exited").then_some(())
    });
    env.restart_worker();

    env.jobs_with_timeout(&["wait", &job], DEADLINE)
        .assert_code(124);
    let stored = env.db_job(&job).expect("stored");
    assert_eq!(stored.state, "timed_out", "{stored:?}");
    env.finish();
}
