//! A rolling upgrade under load: the worker and then the API are each
//! stopped with SIGTERM (as systemd does) and started again, one by one,
//! while jobs run and others wait in the queue; more are submitted while
//! each is down or coming back. No job is lost, none runs twice, every one
//! ends with its own exit code and every byte of its output.
//!
//! Submissions carry idempotency keys and are retried while the API is
//! away, as a careful client (a CI pipeline) does.
//!
//! Synchronisation: the CLI's exit, the processes' exits, the stored jobs.

use std::time::Duration;

use jobs_e2e::poll::wait_until;
use jobs_e2e::{TestEnv, TestEnvOptions};

const DEADLINE: Duration = Duration::from_secs(120);
const BATCH: usize = 6;

fn command_of(index: usize) -> String {
    format!(
        "echo start-{index}; sleep 1; echo end-{index}; exit {}",
        index % 7
    )
}

/// Submits job `index` (detached), retrying with its idempotency key until
/// the API accepts it; returns its id.
fn submit(env: &TestEnv, index: usize) -> String {
    let key = format!("rolling-{index}");
    let command = command_of(index);
    wait_until("the API to accept the job", DEADLINE, || {
        let output = env.jobs(&[
            "run",
            "-d",
            "--idempotency-key",
            &key,
            "--",
            "sh",
            "-c",
            &command,
        ]);
        (output.code() == 0).then(|| jobs_e2e::env::job_id_from_detached_output(&output))
    })
}

fn submit_batch(env: &TestEnv, jobs: &mut Vec<String>) {
    for _ in 0..BATCH {
        let index = jobs.len();
        jobs.push(submit(env, index));
    }
}

#[test]
fn a_rolling_restart_of_the_worker_and_the_api_under_load_loses_nothing() {
    // Room for every job of the test at once: the default quota of 10
    // active jobs per app would refuse some while the worker is away.
    let mut env = TestEnv::start_with(
        TestEnvOptions::new(2)
            .worker_env("JOBS_DRAIN_TIMEOUT", "60s")
            .api_env("JOBS_MAX_QUEUED_JOBS_PER_APP", "100"),
    );
    let starts = env.watch_container_starts_and_dies();
    let mut jobs = Vec::new();

    // The worker: stopped while it runs two jobs and four wait, more
    // submitted while it drains and while it is gone, then started again.
    submit_batch(&env, &mut jobs);
    env.wait_for_state(&jobs[0], "running", DEADLINE);
    let stopping = env.terminate_worker_async();
    submit_batch(&env, &mut jobs);
    assert!(
        stopping.wait(DEADLINE).success(),
        "the worker drained and exited 0"
    );
    submit_batch(&env, &mut jobs);
    env.restart_worker();

    // The API: stopped while jobs run; submissions wait for it to return.
    submit_batch(&env, &mut jobs);
    env.wait_for_state(&jobs[jobs.len() - BATCH], "running", DEADLINE);
    assert!(
        env.terminate_api(DEADLINE).success(),
        "the API stopped and exited 0"
    );
    env.restart_api();
    submit_batch(&env, &mut jobs);

    for (index, job) in jobs.iter().enumerate() {
        let code = i32::try_from(index % 7).unwrap();
        env.jobs_with_timeout(&["wait", job], DEADLINE)
            .assert_code(code);
        let stored = env.db_job(job).expect("stored");
        let state = if code == 0 { "succeeded" } else { "failed" };
        assert_eq!(
            (stored.state.as_str(), stored.exit_code, stored.attempt),
            (state, Some(code), 1),
            "job {index}: {stored:?}"
        );
        env.jobs(&["logs", job])
            .assert_success()
            .assert_stdout(format!("start-{index}\nend-{index}\n").as_bytes());
        assert_eq!(
            jobs_e2e::executions::starts_of(&starts, job),
            1,
            "job {index} ran once"
        );
    }
    assert_eq!(
        env.db_count_jobs(),
        jobs.len() as i64,
        "one job per submission"
    );
    env.finish();
}
