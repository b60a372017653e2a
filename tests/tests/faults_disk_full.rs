//! Fault: PostgreSQL's disk fills up in the middle of a job, then an
//! operator frees space.
//!
//! While the disk is full: a new submission is refused with a reason that
//! names the disk and a 125, and leaves no job behind; the running job is
//! slowed (its output waits in the worker, which holds the container back),
//! not killed. Once space is freed: the running job ends with its own exit
//! code and every line of its output, once, in order; new jobs run.
//!
//! The cluster is private, its data directory on a tmpfs of its own
//! ([`jobs_e2e::services::PrivatePostgres::fill_disk`]).
//!
//! Synchronisation: the stored log and the stored job, polled.

use std::time::Duration;

use jobs_e2e::executions::wait_for_log_prefix;
use jobs_e2e::expect::{assert_bytes_eq, numbered_lines, numbered_lines_script};
use jobs_e2e::{TestEnv, TestEnvOptions};

const DEADLINE: Duration = Duration::from_secs(90);
const LINES: usize = 400;

/// Long lines, so that the job writes enough to need new pages.
fn prefix() -> String {
    format!("{} line ", "x".repeat(200))
}

#[test]
fn a_full_database_disk_refuses_new_jobs_by_name_and_slows_the_running_one_without_losing_a_byte() {
    let mut env = TestEnv::start_with(TestEnvOptions::new(1).private_postgres_on_own_disk(200));
    let script = format!(
        "{}; exit 3",
        numbered_lines_script(&prefix(), LINES, "0.01")
    );
    let job = env.run_detached(&["--", "sh", "-c", &script]);
    wait_for_log_prefix(&env, &job, prefix().as_bytes(), DEADLINE);

    let filled = env.postgres().fill_disk();
    assert!(filled > 0, "the filler took the disk's free space");
    // A write that needs new space fails by name, and no job is
    // half-created. (A small job may still fit in the pages the database
    // has; 100 KiB of env that does not compress needs new ones.)
    let blob = format!("BLOB={}", incompressible(100 * 1024));
    let jobs_before = env.db_count_jobs();
    env.jobs(&["run", "-e", &blob, "--", "true"])
        .assert_cli_error(125, "the database is out of disk space");
    assert_eq!(env.db_count_jobs(), jobs_before, "no job was created");

    // The job is held back, not killed: it is still running.
    let stored = env.db_job(&job).expect("stored");
    assert_eq!(stored.state, "running", "{stored:?}");

    env.postgres().free_disk();
    if !env.postgres().answers() {
        // PostgreSQL stops when it cannot write its WAL; an operator starts
        // it again once there is space.
        env.postgres().start_again();
    }
    env.jobs_with_timeout(&["wait", &job], DEADLINE)
        .assert_code(3);
    let logs = env.jobs(&["logs", &job]);
    logs.assert_success();
    assert_bytes_eq(
        &logs.stdout,
        &numbered_lines(&prefix(), LINES),
        "the job's output",
    );
    let stored = env.db_job(&job).expect("stored");
    assert_eq!(
        (stored.state.as_str(), stored.exit_code, stored.attempt),
        ("failed", Some(3), 1),
        "{stored:?}"
    );

    // The same submission, once there is space: accepted, and it runs.
    env.jobs(&["run", "-e", &blob, "--", "sh", "-c", "echo ${#BLOB}"])
        .assert_success()
        .assert_stdout(format!("{}\n", 100 * 1024).as_bytes());
    env.finish();
}

/// `len` letters and digits of a fixed pseudo-random sequence, which
/// PostgreSQL's compression cannot shrink much.
fn incompressible(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ALPHABET[(state >> 33) as usize % ALPHABET.len()] as char
        })
        .collect()
}
