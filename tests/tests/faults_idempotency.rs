//! Idempotency keys under retries and races: a client that repeats its
//! request (a CI retry, a timeout that hid a success) gets the job it made,
//! never a second run; a key reused for another request is refused with a
//! 409 that names it; keys expire after `JOBS_IDEMPOTENCY_TTL`.

use std::time::Duration;

use jobs_e2e::env::job_id_from_detached_output;
use jobs_e2e::executions::starts_of;
use jobs_e2e::poll::wait_until;
use jobs_e2e::{TestEnv, TestEnvOptions};

const DEADLINE: Duration = Duration::from_secs(60);

#[test]
fn racing_requests_with_one_key_make_one_job_that_runs_once() {
    let mut env = TestEnv::start(1);
    let starts = env.watch_container_starts_and_dies();
    let args = [
        "run",
        "-d",
        "--idempotency-key",
        "deploy-42",
        "--",
        "sh",
        "-c",
        "echo migrated; exit 3",
    ];
    let racing: Vec<_> = (0..8).map(|_| env.spawn_jobs(&args)).collect();
    let ids: Vec<String> = racing
        .into_iter()
        .map(|cli| {
            let output = cli.wait(DEADLINE);
            output.assert_success();
            job_id_from_detached_output(&output)
        })
        .collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "one job for one key: {ids:?}"
    );
    assert_eq!(env.db_count_jobs(), 1);

    env.jobs(&["wait", &ids[0]]).assert_code(3);
    // A retry after the end still names the same job, and runs nothing.
    let again = env.jobs(&args);
    again.assert_success();
    assert_eq!(job_id_from_detached_output(&again), ids[0]);
    let sentinel = env.run_detached(&["--", "true"]);
    env.jobs(&["wait", &sentinel]).assert_code(0);
    assert_eq!(starts_of(&starts, &ids[0]), 1, "the keyed job ran once");
    env.finish();
}

#[test]
fn a_key_reused_for_another_request_is_refused_with_a_409_naming_it() {
    let mut env = TestEnv::start(1);
    let first = env.run_detached(&["--idempotency-key", "nightly", "--", "echo", "one"]);
    env.jobs(&[
        "run",
        "-d",
        "--idempotency-key",
        "nightly",
        "--",
        "echo",
        "two",
    ])
    .assert_cli_error(
        125,
        "idempotency key \"nightly\" was already used for another request",
    )
    .assert_stderr_contains(&first);
    env.jobs(&[
        "run",
        "-d",
        "--idempotency-key",
        "nightly",
        "-e",
        "A=1",
        "--",
        "echo",
        "one",
    ])
    .assert_code(125)
    .assert_stderr_contains("\"nightly\"");
    assert_eq!(env.db_count_jobs(), 1, "a refused request creates nothing");
    env.jobs(&["wait", &first]).assert_code(0);
    env.finish();
}

#[test]
fn an_expired_key_makes_a_new_job() {
    let mut env = TestEnv::start_with(TestEnvOptions::new(1).api_env("JOBS_IDEMPOTENCY_TTL", "4s"));
    let args = ["--idempotency-key", "hourly", "--", "sh", "-c", "exit 4"];
    let first = env.run_detached(&args);
    assert_eq!(env.run_detached(&args), first, "a fresh key names its job");
    env.jobs(&["wait", &first]).assert_code(4);
    wait_until("the key to be older than its TTL", DEADLINE, || {
        env.db_job_age(&first)
            .filter(|age| *age > Duration::from_secs(4))
            .map(|_| ())
    });
    let second = env.run_detached(&args);
    assert_ne!(second, first, "an expired key makes a new job");
    // At once, well within the new key's TTL: how long the job then takes
    // on a loaded machine must not expire it first.
    assert_eq!(
        env.run_detached(&args),
        second,
        "the key now names the new job"
    );
    env.jobs(&["wait", &second]).assert_code(4);
    assert_eq!(env.db_job(&first).expect("kept").state, "failed");
    env.finish();
}
