//! Fault: PostgreSQL restarts (or crashes) in the middle of a job. Each test
//! runs its own cluster (`jobs_e2e::services::PrivatePostgres`).
//!
//! The job writes numbered lines while the database is away; it also
//! keeps a copy in a file of its own container, which the test reads with
//! `docker exec` to know that output was written during the outage. After
//! the database is back, the stored log holds every line once, in order,
//! and the job keeps its exit code.

use std::time::Duration;

use jobs_e2e::executions::{container_of, lines_in_container, starts_of, wait_for_log_prefix};
use jobs_e2e::poll::wait_until;
use jobs_e2e::{TestEnv, TestEnvOptions};

const DEADLINE: Duration = Duration::from_secs(90);
const LINES: usize = 80;

/// Prints `line 0` … `line 79`, one every 50 ms, copies each into
/// /tmp/progress, and exits 5.
fn numbered_lines_job() -> String {
    format!(
        "i=0; while [ $i -lt {LINES} ]; do echo line $i; echo $i >> /tmp/progress; \
         i=$((i+1)); sleep 0.05; done; exit 5"
    )
}

fn expected_log() -> Vec<u8> {
    (0..LINES)
        .map(|i| format!("line {i}\n"))
        .collect::<String>()
        .into_bytes()
}

fn database_outage_mid_job(crash: bool) {
    let mut env = TestEnv::start_with(TestEnvOptions::new(1).private_postgres());
    let starts = env.watch_container_starts_and_dies();
    let job = env.run_detached(&["--", "sh", "-c", &numbered_lines_job()]);
    env.wait_for_state(&job, "running", DEADLINE);
    wait_for_log_prefix(&env, &job, b"line 0\n", DEADLINE);
    let container = container_of(&job, DEADLINE);

    if crash {
        env.postgres().kill();
    } else {
        env.postgres().stop();
    }
    // The job goes on writing while nothing can be stored.
    let at_outage = lines_in_container(&container, "/tmp/progress");
    wait_until("the job to write during the outage", DEADLINE, || {
        (lines_in_container(&container, "/tmp/progress") >= at_outage + 10).then_some(())
    });
    env.postgres().start_again();

    env.jobs_with_timeout(&["wait", &job], DEADLINE)
        .assert_code(5);
    env.jobs(&["logs", &job])
        .assert_success()
        .assert_stdout(&expected_log());
    let stored = env.db_job(&job).expect("stored");
    assert_eq!(
        (stored.state.as_str(), stored.exit_code, stored.attempt),
        ("failed", Some(5), 1),
        "{stored:?}"
    );
    assert_eq!(starts_of(&starts, &job), 1);
    env.finish();
}

#[test]
fn a_database_restart_mid_job_loses_no_log_line_repeats_none_and_keeps_the_exit_code() {
    database_outage_mid_job(false);
}

#[test]
fn a_database_crash_mid_job_loses_no_log_line_repeats_none_and_keeps_the_exit_code() {
    database_outage_mid_job(true);
}
