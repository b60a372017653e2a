//! What `jobs run` prints and how it exits: the streams kept apart and byte
//! for byte, the job's own exit code, signals, OOM kills, missing commands
//! and images, and config vars.
//!
//! Synchronisation: every CLI call here runs to completion (bounded by a
//! deadline) before the next one; `run` itself returns only when the job has
//! ended, so `status` afterwards sees the final state. The job id of an
//! attached `run` is read from the database (the newest job). Each test ends
//! with `finish()`, which polls (bounded) until the worker has removed every
//! container it made.

use jobs_e2e::{TEST_IMAGE, TestEnv, assert_bytes_eq, expect};

/// Checks the final status of a job: its state, its exit code and, for a
/// job that did not succeed, that the reason contains `reason`.
#[track_caller]
fn assert_status(env: &TestEnv, job_id: &str, state: &str, exit_code: Option<i64>, reason: &str) {
    let status = env.status(job_id);
    assert_eq!(status["state"], state, "state of {job_id}: {status}");
    assert_eq!(status["app"], "demo", "app of {job_id}: {status}");
    if let Some(code) = exit_code {
        assert_eq!(status["exit_code"], code, "exit code of {job_id}: {status}");
    }
    if state != "succeeded" {
        let actual = status["reason"].as_str().unwrap_or_default();
        assert!(
            actual.contains(reason),
            "reason of {job_id} should contain {reason:?}: {status}"
        );
    }
}

#[test]
fn run_keeps_stdout_and_stderr_apart_and_exits_with_the_job_code() {
    let mut env = TestEnv::start(2);
    let script = "echo out; echo err >&2; exit 7";

    env.jobs(&["run", "--", "sh", "-c", script])
        .assert_code(7)
        .assert_stdout(b"out\n")
        .assert_stderr_contains("err\n");

    let id = env.run_detached(&["--", "sh", "-c", script]);
    env.jobs(&["wait", &id]).assert_code(7);
    assert_status(&env, &id, "failed", Some(7), "exit status 7");

    // The stored logs keep the two streams apart, byte for byte.
    let logs = env.jobs(&["logs", &id]);
    logs.assert_success().assert_stdout(b"out\n");
    assert_eq!(logs.stderr, b"err\n", "stderr of logs: {logs:?}");

    env.finish();
}

#[test]
fn the_exit_code_of_the_command_is_the_exit_code_of_run() {
    let mut env = TestEnv::start(2);
    for (code, state) in [(0, "succeeded"), (1, "failed"), (255, "failed")] {
        env.jobs(&["run", "--", "sh", "-c", &format!("exit {code}")])
            .assert_code(code)
            .assert_stdout(b"");
        let id = env.db_last_job_id();
        assert_status(
            &env,
            &id,
            state,
            Some(code.into()),
            &format!("exit status {code}"),
        );
    }
    env.finish();
}

#[test]
fn a_job_killed_by_a_signal_exits_128_plus_the_signal() {
    let mut env = TestEnv::start(2);
    // The shell sends SIGTERM to itself; it never reaches "after". (When the
    // command runs as PID 1 of its container, the kernel ignores this signal:
    // the worker must run jobs under an init, as `docker run --init` does.)
    env.jobs(&[
        "run",
        "--",
        "sh",
        "-c",
        "echo before; kill -TERM $$; echo after",
    ])
    .assert_code(143)
    .assert_stdout(b"before\n");
    let id = env.db_last_job_id();
    assert_status(&env, &id, "failed", Some(143), "");
    env.finish();
}

#[test]
fn a_job_over_its_memory_limit_is_oom_killed_and_exits_137() {
    let mut env = TestEnv::start(2);
    // busybox `tail -n 1` keeps the whole last line in memory: one 400 MiB
    // line of NUL bytes does not fit in size S (256 MiB, swap equal), and
    // fits in size M (512 MiB).
    let hog = "head -c 400m /dev/zero | tail -n 1 > /dev/null";

    env.jobs(&["run", "-s", "S", "--", "sh", "-c", hog])
        .assert_code(137)
        .assert_stdout(b"");
    let id = env.db_last_job_id();
    assert_status(&env, &id, "failed", Some(137), "oom killed");
    assert_eq!(env.status(&id)["size"], "S");

    // The same command in a bigger size: the limit, not the command, killed it.
    env.jobs(&["run", "-s", "M", "--", "sh", "-c", hog])
        .assert_success();

    env.finish();
}

#[test]
fn a_command_that_does_not_exist_exits_127() {
    let mut env = TestEnv::start(2);

    // Several arguments: the worker executes the argv itself.
    env.jobs(&["run", "--", "no-such-command", "--flag"])
        .assert_code(127)
        .assert_stdout(b"");
    let id = env.db_last_job_id();
    assert_status(&env, &id, "failed", Some(127), "");

    // One argument: it goes through /bin/sh -c, which reports it.
    env.jobs(&["run", "no-such-command"])
        .assert_code(127)
        .assert_stderr_contains("not found");
    let id = env.db_last_job_id();
    assert_status(&env, &id, "failed", Some(127), "");

    env.finish();
}

#[test]
fn an_unknown_image_exits_125_and_names_the_image() {
    let mut env = TestEnv::start(2);

    env.jobs(&["apps", "create", "ghost", "--image", "nope:1"])
        .assert_success();
    env.jobs(&["run", "-a", "ghost", "--", "echo", "never"])
        .assert_code(125)
        .assert_stdout(b"")
        .assert_stderr_contains("image not found: nope:1");
    let id = env.db_last_job_id();
    let status = env.status(&id);
    assert_eq!(status["state"], "failed", "{status}");
    assert_eq!(status["app"], "ghost", "{status}");
    assert!(
        status["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("image not found: nope:1")),
        "{status}"
    );

    // An app switched to a missing image fails the same way.
    env.jobs(&["apps", "set", "demo", "--image", "nope:1"])
        .assert_success();
    env.jobs(&["run", "--", "echo", "never"])
        .assert_code(125)
        .assert_stderr_contains("image not found: nope:1");

    env.finish();
}

#[test]
fn megabytes_of_binary_output_arrive_byte_for_byte_through_run_follow_and_logs() {
    let mut env = TestEnv::start(2);
    // About 4.8 MB, with 0xFF and NUL bytes, which are not UTF-8.
    let lines = 700_000;
    let expected = expect::binary_sequence(lines);
    let command = format!("{}; echo done >&2", expect::binary_sequence_command(lines));

    let run = env.jobs(&["run", &command]);
    run.assert_success().assert_stderr_contains("done\n");
    assert_bytes_eq(&run.stdout, &expected, "stdout of run");
    let id = env.db_last_job_id();

    let follow = env.jobs(&["follow", &id]);
    follow.assert_success().assert_stderr_contains("done\n");
    assert_bytes_eq(&follow.stdout, &expected, "stdout of follow");

    let logs = env.jobs(&["logs", &id]);
    logs.assert_success();
    assert_bytes_eq(&logs.stdout, &expected, "stdout of logs");
    assert_eq!(logs.stderr, b"done\n", "stderr of logs: {logs:?}");

    env.finish();
}

#[test]
fn app_config_vars_and_run_env_reach_the_command_and_run_env_wins() {
    let mut env = TestEnv::start(2);
    let show = r#"printf '%s|%s|%s\n' "$GREETING" "$COLOR" "${EXTRA-unset}""#;

    env.jobs(&[
        "apps",
        "set",
        "demo",
        "-e",
        "GREETING=hello",
        "-e",
        "COLOR=red",
    ])
    .assert_success();
    env.jobs(&["run", "--", "sh", "-c", show])
        .assert_success()
        .assert_stdout(b"hello|red|unset\n");
    env.jobs(&[
        "run",
        "-e",
        "COLOR=blue",
        "-e",
        "EXTRA=a b=c",
        "--",
        "sh",
        "-c",
        show,
    ])
    .assert_success()
    .assert_stdout(b"hello|blue|a b=c\n");

    // Config vars given when the app is created, and removed with --unset.
    env.jobs(&[
        "apps",
        "create",
        "configured",
        "--image",
        TEST_IMAGE,
        "-e",
        "FROM_CREATE=yes",
    ])
    .assert_success();
    env.jobs(&[
        "run",
        "-a",
        "configured",
        "--",
        "sh",
        "-c",
        "echo \"$FROM_CREATE\"",
    ])
    .assert_success()
    .assert_stdout(b"yes\n");
    env.jobs(&["apps", "set", "demo", "--unset", "GREETING"])
        .assert_success();
    env.jobs(&["run", "--", "sh", "-c", "echo \"${GREETING-unset}\""])
        .assert_success()
        .assert_stdout(b"unset\n");

    env.finish();
}
