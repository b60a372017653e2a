//! `wait`, `follow` and `logs`: exit codes of detached jobs, replays of
//! ended jobs, live following, and following again after a follower (or
//! `run` itself) was killed.
//!
//! Synchronisation: a background CLI is watched through its captured stdout
//! with bounded polling ("the first line has arrived", "ten lines have
//! arrived"); the job's state is read from the database at that moment to
//! prove the job was still running, which the job's length (several
//! seconds of numbered lines) makes certain. Nothing sleeps for a fixed
//! time.

use std::time::Duration;

use jobs_e2e::expect::{numbered_lines, numbered_lines_script};
use jobs_e2e::{TestEnv, assert_bytes_eq};

const CLI_DEADLINE: Duration = Duration::from_secs(120);
const FIRST_OUTPUT_DEADLINE: Duration = Duration::from_secs(60);

fn line_count(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&byte| byte == b'\n').count()
}

#[test]
fn wait_and_follow_of_a_detached_job_give_its_exit_code_and_all_its_output() {
    let mut env = TestEnv::start(2);

    let id = env.run_detached(&[
        "--",
        "sh",
        "-c",
        "echo one; echo two >&2; echo three; exit 3",
    ]);
    env.jobs(&["wait", &id]).assert_code(3);

    // The job has ended: follow replays everything, then exits with its code.
    env.jobs(&["follow", &id])
        .assert_code(3)
        .assert_stdout(b"one\nthree\n")
        .assert_stderr_contains("two\n");
    let logs = env.jobs(&["logs", &id]);
    logs.assert_success().assert_stdout(b"one\nthree\n");
    assert_eq!(logs.stderr, b"two\n", "stderr of logs: {logs:?}");

    let status = env.status(&id);
    assert_eq!(status["state"], "failed", "{status}");
    assert_eq!(status["exit_code"], 3, "{status}");

    let succeeding = env.run_detached(&["--", "echo", "fine"]);
    env.jobs(&["wait", &succeeding]).assert_success();
    env.jobs(&["follow", &succeeding])
        .assert_success()
        .assert_stdout(b"fine\n");

    env.finish();
}

#[test]
fn followers_of_a_running_job_see_every_line_in_order() {
    let mut env = TestEnv::start(2);
    let count = 40;
    let expected = numbered_lines("line ", count);

    // About four seconds of output, one line every 0.1 s.
    let id = env.run_detached(&[
        "--",
        "sh",
        "-c",
        &numbered_lines_script("line ", count, "0.1"),
    ]);
    let mut first = env.spawn_jobs(&["follow", &id]);
    let second = env.spawn_jobs(&["follow", &id]);

    first.wait_for_stdout("the first line", FIRST_OUTPUT_DEADLINE, |out| {
        out.starts_with(b"line 1\n")
    });
    let job = env.db_job(&id).expect("the job exists");
    assert!(
        !job.is_terminal(),
        "the first line should arrive while the job still runs: {job:?}"
    );

    for follower in [first, second] {
        let output = follower.wait(CLI_DEADLINE);
        output.assert_success();
        assert_bytes_eq(&output.stdout, &expected, "stdout of a live follow");
    }
    assert_eq!(env.status(&id)["state"], "succeeded");

    env.finish();
}

#[test]
fn a_follower_killed_midway_can_follow_again_and_gets_the_whole_log_once() {
    let mut env = TestEnv::start(2);
    let count = 80;
    let expected = numbered_lines("n=", count);

    // About eight seconds of output.
    let id = env.run_detached(&["--", "sh", "-c", &numbered_lines_script("n=", count, "0.1")]);
    let mut follower = env.spawn_jobs(&["follow", &id]);
    follower.wait_for_stdout("ten lines", FIRST_OUTPUT_DEADLINE, |out| {
        line_count(out) >= 10
    });

    let killed = follower.kill();
    assert!(
        expected.starts_with(&killed.stdout),
        "the killed follower printed a prefix of the log: {killed:?}"
    );
    let job = env.db_job(&id).expect("the job exists");
    assert!(
        !job.is_terminal(),
        "the job should still run when its follower is killed: {job:?}"
    );

    let again = env.jobs_with_timeout(&["follow", &id], CLI_DEADLINE);
    again.assert_success();
    assert_bytes_eq(&again.stdout, &expected, "stdout of the second follow");
    assert_eq!(env.status(&id)["state"], "succeeded");

    env.finish();
}

#[test]
fn killing_run_leaves_the_job_running_and_follow_gets_its_whole_log_and_code() {
    let mut env = TestEnv::start(2);
    let count = 30;
    let script = format!("{}; exit 5", numbered_lines_script("n", count, "0.1"));

    let mut run = env.spawn_jobs(&["run", "--", "sh", "-c", &script]);
    run.wait_for_stdout("the first line", FIRST_OUTPUT_DEADLINE, |out| {
        out.starts_with(b"n1\n")
    });
    run.kill();
    let id = env.db_last_job_id();
    let job = env.db_job(&id).expect("the job exists");
    assert!(
        !job.is_terminal(),
        "the job should still run when its run CLI is killed: {job:?}"
    );

    let follow = env.jobs_with_timeout(&["follow", &id], CLI_DEADLINE);
    follow.assert_code(5);
    assert_bytes_eq(
        &follow.stdout,
        &numbered_lines("n", count),
        "stdout of follow",
    );
    let status = env.status(&id);
    assert_eq!(status["state"], "failed", "{status}");
    assert_eq!(status["exit_code"], 5, "{status}");

    env.finish();
}

#[test]
fn ctrl_c_detaches_run_says_how_to_follow_or_cancel_and_the_job_goes_on() {
    let mut env = TestEnv::start(2);
    let count = 30;
    let script = format!("{}; exit 6", numbered_lines_script("c", count, "0.1"));

    let mut run = env.spawn_jobs(&["run", "--", "sh", "-c", &script]);
    run.wait_for_stdout("the first line", FIRST_OUTPUT_DEADLINE, |out| {
        out.starts_with(b"c1\n")
    });
    run.signal(libc::SIGINT);
    let detached = run.wait(CLI_DEADLINE);
    detached.assert_code(130);
    let id = env.db_last_job_id();
    detached
        .assert_stderr_contains(&format!("jobsctl follow {id}"))
        .assert_stderr_contains(&format!("jobsctl cancel {id}"));
    let job = env.db_job(&id).expect("the job exists");
    assert!(!job.is_terminal(), "Ctrl-C must not end the job: {job:?}");

    let follow = env.jobs_with_timeout(&["follow", &id], CLI_DEADLINE);
    follow.assert_code(6);
    assert_bytes_eq(
        &follow.stdout,
        &numbered_lines("c", count),
        "stdout of follow",
    );

    env.finish();
}
