//! Fault: a worker gets SIGTERM (a deploy, a scale-down) while it runs a
//! job and another waits in the queue.
//!
//! It stops taking jobs at once; its running job gets the grace of
//! `JOBS_DRAIN_TIMEOUT` and ends with its own exit code; the queued job is
//! left for another worker, which runs it.

use std::time::Duration;

use jobs_e2e::executions::{starts_of, wait_for_logs};
use jobs_e2e::{TestEnv, TestEnvOptions};

const DEADLINE: Duration = Duration::from_secs(60);

#[test]
fn a_draining_worker_finishes_its_job_within_the_grace_and_leaves_queued_jobs_to_another() {
    let mut env =
        TestEnv::start_with(TestEnvOptions::new(1).worker_env("JOBS_DRAIN_TIMEOUT", "30s"));
    let starts = env.watch_container_starts_and_dies();
    let running = env.run_detached(&[
        "--",
        "sh",
        "-c",
        "echo draining; sleep 3; echo done; exit 4",
    ]);
    env.wait_for_state(&running, "running", DEADLINE);
    wait_for_logs(&env, &running, b"draining\n", DEADLINE);

    let first_worker = env.worker_id.clone();
    let status = env.terminate_worker_async();
    // Created after the SIGTERM: the draining worker must not take it.
    let queued = env.run_detached(&["--", "sh", "-c", "echo elsewhere; exit 8"]);
    let status = status.wait(DEADLINE);
    assert!(status.success(), "a drained worker exits 0: {status}");

    let drained = env.db_job(&running).expect("stored");
    assert_eq!(
        (drained.state.as_str(), drained.exit_code),
        ("failed", Some(4)),
        "the running job had its grace and ended on its own: {drained:?}"
    );
    env.jobs(&["logs", &running])
        .assert_stdout(b"draining\ndone\n");
    let waiting = env.db_job(&queued).expect("stored");
    assert_eq!(
        waiting.state, "queued",
        "the draining worker took a job: {waiting:?}"
    );

    // Another worker (another id, another host in production) takes it.
    env.start_other_worker("other");
    env.jobs_with_timeout(&["wait", &queued], DEADLINE)
        .assert_code(8);
    assert_ne!(env.worker_id, first_worker);
    assert_eq!(starts_of(&starts, &running), 1);
    env.finish();
}
