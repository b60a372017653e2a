//! Fault: PostgreSQL's disk is slow: every write to a file waits 2 ms and
//! every fsync 100 ms, with fsync on, so that each commit takes at least a
//! tenth of a second ([`jobs_e2e::slow_disk`]).
//!
//! Jobs are slowed, never killed, and nothing is lost: a queued job with
//! over a megabyte of output ends with its exit code and every byte of
//! both streams; a job that outlives its timeout ends `timed_out`, 124; an
//! interactive run echoes its stdin back byte for byte and keeps its exit
//! code; no lease is lost on the way (each ends in its first attempt).
//!
//! Synchronisation: the CLI's own exit; the stored jobs.

use std::time::{Duration, Instant};

use jobs_e2e::expect::{assert_bytes_eq, numbered_lines};
use jobs_e2e::slow_disk::{self, SlowDisk};
use jobs_e2e::{TestEnv, TestEnvOptions};

const SLOW: SlowDisk = SlowDisk {
    write: Duration::from_millis(2),
    sync: Duration::from_millis(100),
};
const LINES: usize = 200_000;

#[test]
fn a_slow_database_disk_slows_jobs_without_losing_a_byte_or_an_exit_code() {
    let mut env = TestEnv::start_with(TestEnvOptions::new(2).private_postgres_on_slow_disk(SLOW));
    // The disk is slow indeed: a commit waits for its fsync.
    let began = Instant::now();
    env.db_execute("create table slow_disk_probe (n int)");
    let took = began.elapsed();
    assert!(
        took >= SLOW.sync,
        "a commit took {took:?}, under the disk's fsync"
    );

    let queued = env.jobs_with_timeout(
        &[
            "run",
            "--",
            "sh",
            "-c",
            &format!("seq 1 {LINES}; echo done >&2; exit 3"),
        ],
        Duration::from_secs(180),
    );
    queued.assert_code(3);
    assert_bytes_eq(
        &queued.stdout,
        &numbered_lines("", LINES),
        "the queued job's stdout",
    );
    queued.assert_stderr_contains("done\n");
    let queued_id = env.db_last_job_id();
    let logs = env.jobs(&["logs", &queued_id]);
    logs.assert_success();
    assert_bytes_eq(
        &logs.stdout,
        &numbered_lines("", LINES),
        "the stored stdout",
    );

    let mut expected = vec![(queued_id, "failed", Some(3))];
    expected.extend(slow_disk::a_timeout_and_an_interactive_run(
        &env,
        Duration::from_secs(180),
    ));
    slow_disk::assert_ended_in_first_attempt(&env, &expected);
    env.finish();
}
