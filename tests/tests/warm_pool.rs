//! The warm pool (`jobs apps set APP --warm N`): the worker keeps N started
//! containers of the app waiting, and a run takes one instead of creating
//! and starting its own.
//!
//! Which container a run used is what the job itself sees: its hostname,
//! which Docker sets to the first 12 characters of the container's id. A
//! run that prints a waiting warm container's short id ran in it.
//!
//! The suites of normal runs run again through the pool with
//! `JOBS_E2E_WARM=2` (deploy/test.sh); this file checks what only the pool
//! does: it is used, refilled, replaced when the app changes, emptied at
//! `--warm 0`, and a run in it is taken over by a restarted worker, even
//! one whose job the dead worker never sent it.
//!
//! Synchronisation: CLI calls run to their end; the pool's containers and
//! a job's output so far are polled with deadlines.

use std::time::Duration;

use jobs_e2e::docker_proxy::{DockerProxy, StartHold};
use jobs_e2e::executions::wait_for_logs;
use jobs_e2e::poll::wait_until;
use jobs_e2e::{TEST_IMAGE, TestEnv, TestEnvOptions, assert_bytes_eq};

const DEADLINE: Duration = Duration::from_secs(60);

fn short_ids(ids: &[String]) -> Vec<String> {
    ids.iter().map(|id| id[..12].to_owned()).collect()
}

/// The first line of a run's stdout: the hostname it printed.
fn first_line(stdout: &[u8]) -> String {
    String::from_utf8_lossy(stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// The pool let go (its containers are the worker's), then the usual end.
fn finish(env: &mut TestEnv) {
    env.jobs(&["apps", "set", "demo", "--warm", "0"])
        .assert_success();
    env.finish();
}

#[test]
fn runs_take_warm_containers_which_are_refilled_and_keep_env_files_and_exit_codes() {
    let mut env = TestEnv::start(2);
    env.jobs(&["apps", "set", "demo", "-e", "FROM_APP=app value"])
        .assert_success();
    env.jobs(&["apps", "set", "demo", "--warm", "2"])
        .assert_success();
    let waiting = short_ids(&env.wait_for_warm_containers(2));

    // The app's env and the run's own, the streams and the exit code.
    let run = env.jobs(&[
        "run",
        "-e",
        "FROM_RUN=run value",
        "--",
        "sh",
        "-c",
        "hostname; echo \"$FROM_APP / $FROM_RUN\"; echo err >&2; exit 3",
    ]);
    run.assert_code(3).assert_stderr_contains("err\n");
    let host = first_line(&run.stdout);
    assert!(
        waiting.contains(&host),
        "the run ran in {host}, not in a warm container of {waiting:?}"
    );
    assert_bytes_eq(
        &run.stdout,
        format!("{host}\napp value / run value\n").as_bytes(),
        "the run's stdout",
    );
    let status = env.status(&env.db_last_job_id());
    assert_eq!(
        (&status["state"], &status["exit_code"], &status["reason"]),
        (
            &serde_json::json!("failed"),
            &serde_json::json!(3),
            &serde_json::json!("exit status 3")
        ),
        "{status}"
    );

    // The pool is back to two, without the one the run used.
    let refilled = short_ids(&env.wait_for_warm_containers(2));
    assert!(!refilled.contains(&host), "{host} is back in {refilled:?}");

    // An upload in, an artifact under /tmp out, in a warm container.
    let local = env.log_dir.join("in.txt");
    std::fs::write(&local, b"hello warm pool\n").expect("write the upload");
    let out = env.log_dir.join("artifacts");
    let run = env.jobs(&[
        "run",
        "-f",
        &local.display().to_string(),
        "--artifact",
        "/tmp/out.txt",
        "--",
        "sh",
        "-c",
        "hostname; tr a-z A-Z < /tmp/uploads/in.txt > /tmp/out.txt",
    ]);
    run.assert_success();
    let host = first_line(&run.stdout);
    assert!(
        refilled.contains(&host),
        "{host} is not one of {refilled:?}"
    );
    let id = env.db_last_job_id();
    env.jobs(&["artifacts", &id, "-o", &out.display().to_string()])
        .assert_success();
    let artifact = std::fs::read(out.join("out.txt")).expect("the artifact");
    assert_bytes_eq(&artifact, b"HELLO WARM POOL\n", "the artifact");

    // A command that does not exist: 127 and its name, as cold.
    env.wait_for_warm_containers(2);
    env.jobs(&["run", "--", "no-such-command", "--flag"])
        .assert_code(127)
        .assert_stdout(b"");
    let status = env.status(&env.db_last_job_id());
    assert_eq!(
        status["reason"], "command not found: no-such-command",
        "{status}"
    );

    finish(&mut env);
}

#[test]
fn the_pool_follows_the_app_s_image_and_hardening_and_empties_at_zero() {
    let mut env = TestEnv::start(1);
    env.jobs(&["apps", "set", "demo", "--warm", "1"])
        .assert_success();
    let first = env.wait_for_warm_containers(1);

    // Another hardening: the waiting container cannot serve it.
    env.jobs(&["apps", "set", "demo", "--read-only-root"])
        .assert_success();
    let hardened = jobs_e2e::poll::poll_until(DEADLINE, || {
        let now = env.wait_for_warm_containers(1);
        (now != first).then_some(now)
    })
    .expect("the warm container replaced after --read-only-root");
    assert!(
        jobs_e2e::docker::containers_with_label(&env.worker_label())
            .iter()
            .all(|id| !first.contains(id)),
        "the first warm container is still there"
    );
    let run = env.jobs(&["run", "--", "sh", "-c", "hostname; touch /x"]);
    run.assert_code(1)
        .assert_stderr_contains("Read-only file system");
    assert_eq!(first_line(&run.stdout), hardened[0][..12]);

    // Another image (the same bytes under another name).
    let other = "jobs-test/busybox:warm-e2e";
    jobs_e2e::docker::docker(&["tag", TEST_IMAGE, other]);
    let before = env.wait_for_warm_containers(1);
    env.jobs(&["apps", "set", "demo", "--image", other])
        .assert_success();
    jobs_e2e::poll::poll_until(DEADLINE, || {
        (env.wait_for_warm_containers(1) != before).then_some(())
    })
    .expect("the warm container replaced after --image");

    // Off: nothing waits any more.
    env.jobs(&["apps", "set", "demo", "--warm", "0"])
        .assert_success();
    env.wait_for_warm_containers(0);
    env.finish();
}

#[test]
fn a_run_in_a_warm_container_is_taken_over_by_the_restarted_worker() {
    let mut env = TestEnv::start(1);
    env.jobs(&["apps", "set", "demo", "--warm", "1"])
        .assert_success();
    let waiting = short_ids(&env.wait_for_warm_containers(1));
    let id = env.run_detached(&[
        "--",
        "sh",
        "-c",
        "hostname; echo before; sleep 3; echo after; exit 4",
    ]);
    let expected_start = format!("{}\nbefore\n", waiting[0]);
    wait_for_logs(&env, &id, expected_start.as_bytes(), DEADLINE);

    env.kill_worker();
    env.restart_worker();
    env.jobs_with_timeout(&["wait", &id], DEADLINE)
        .assert_code(4);
    let logs = env.jobs(&["logs", &id]);
    assert_bytes_eq(
        &logs.stdout,
        format!("{}\nbefore\nafter\n", waiting[0]).as_bytes(),
        "the taken-over run's output",
    );
    let status = env.status(&id);
    assert_eq!(status["attempt"], 1, "{status}");
    finish(&mut env);
}

#[test]
fn a_warm_container_whose_worker_died_before_sending_its_job_gets_it_from_the_next() {
    // The worker's Docker goes through a proxy that swallows what it
    // writes on a warm container's stdin: the job's start is recorded, and
    // its shim goes on waiting, as if the worker had died just after the
    // record.
    let mut env = TestEnv::start_with(TestEnvOptions::new(1).worker_env("JOBS_LEASE", "6s"));
    let socket = std::env::temp_dir().join(format!(
        "jobs-e2e-docker-{}.sock",
        uuid::Uuid::now_v7().simple()
    ));
    let proxy = DockerProxy::start_disarmed(&socket, StartHold::WarmSpec);
    env.kill_worker();
    env.restart_worker_with(&[("DOCKER_HOST", &proxy.docker_host())]);
    env.jobs(&[
        "apps",
        "set",
        "demo",
        "-e",
        "FROM_APP=app value",
        "--warm",
        "1",
    ])
    .assert_success();
    let waiting = short_ids(&env.wait_for_warm_containers(1));
    proxy.arm();

    let id = env.run_detached(&[
        "-e",
        "FROM_RUN=run value",
        "--",
        "sh",
        "-c",
        "hostname; echo \"$FROM_APP / $FROM_RUN\"; exit 6",
    ]);
    wait_until("the job's spec to be swallowed", DEADLINE, || {
        (proxy.held_starts() == 1 && env.db_start_requested(&id)).then_some(())
    });
    assert_eq!(env.jobs(&["logs", &id]).stdout, b"", "nothing ran yet");

    env.kill_worker();
    env.restart_worker();
    env.jobs_with_timeout(&["wait", &id], DEADLINE)
        .assert_code(6);
    let logs = env.jobs(&["logs", &id]);
    assert_bytes_eq(
        &logs.stdout,
        format!("{}\napp value / run value\n", waiting[0]).as_bytes(),
        "the run's output, in the warm container it was given",
    );
    let status = env.status(&id);
    assert_eq!(status["attempt"], 1, "{status}");
    finish(&mut env);
}

#[test]
fn interactive_runs_take_warm_containers_with_their_stdin_and_their_terminal() {
    let mut env = TestEnv::start(2);
    env.jobs(&["apps", "set", "demo", "--warm", "2"])
        .assert_success();
    let waiting = short_ids(&env.wait_for_warm_containers(2));

    // Piped stdin: it reaches the command once, its streams stay apart,
    // its exit code holds.
    let stdin: Vec<u8> = (0..300 * 1024).map(|n| (n % 253) as u8).collect();
    let piped = env.jobs_with_stdin(
        &["run", "-i", "--", "sh", "-c", "hostname >&2; cat; exit 4"],
        &stdin,
    );
    piped.assert_code(4);
    assert_bytes_eq(&piped.stdout, &stdin, "the echo of the piped stdin");
    let host = first_line(&piped.stderr);
    assert!(
        waiting.contains(&host),
        "the run ran in {host}, not in a warm container of {waiting:?}"
    );

    // At a terminal: the shim's pty, its size, a line typed at it.
    let waiting = short_ids(&env.wait_for_warm_containers(2));
    let mut pty = jobs_e2e::pty::PtyProcess::spawn(env.jobs_command(&["run", "--", "sh"]), 30, 90);
    pty.wait_for_output(
        "the shell's prompt",
        DEADLINE,
        jobs_e2e::pty::ends_with_prompt,
    );
    pty.type_bytes(b"hostname; stty size; tty; exit 7\r");
    let (status, output) = pty.wait(DEADLINE);
    let text = String::from_utf8_lossy(&output);
    assert_eq!(status.code(), Some(7), "{text:?}");
    let host = waiting
        .iter()
        .find(|id| text.contains(&format!("\r\n{id}\r\n")))
        .unwrap_or_else(|| panic!("the shell ran in none of {waiting:?}: {text:?}"));
    assert!(
        text.contains(&format!("{host}\r\n30 90\r\n/dev/pts/0\r\n")),
        "{text:?}"
    );
    finish(&mut env);
}
