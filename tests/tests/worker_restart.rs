//! A worker that dies and comes back: its jobs keep their exit codes.
//!
//! Synchronisation: job states are bounded polls of the database; container
//! states are bounded polls of `docker inspect`; the restarted worker is
//! ready once it prints its ready line, which it does after it has taken
//! over its containers.

use std::time::Duration;

use jobs_e2e::TestEnv;
use jobs_e2e::docker::{containers_with_label, docker};
use jobs_e2e::poll::wait_until;

const STATE_DEADLINE: Duration = Duration::from_secs(60);

/// The one container of `job_id`, once it exists.
fn container_of(job_id: &str) -> String {
    wait_until("the job's container", STATE_DEADLINE, || {
        containers_with_label(&format!("jobs.job_id={job_id}"))
            .into_iter()
            .next()
    })
}

fn container_status(container: &str) -> String {
    docker(&["inspect", "-f", "{{.State.Status}}", container])
        .trim()
        .to_owned()
}

fn wait_for_logs(env: &TestEnv, job_id: &str, expected: &[u8]) {
    wait_until("the job's first output", STATE_DEADLINE, || {
        (env.jobs(&["logs", job_id]).stdout == expected).then_some(())
    });
}

#[test]
fn a_job_that_ends_while_its_worker_is_dead_keeps_its_exit_code() {
    let mut env = TestEnv::start(1);
    let job = env.run_detached(&["--", "sh", "-c", "echo before; sleep 1; exit 9"]);
    env.wait_for_state(&job, "running", STATE_DEADLINE);
    wait_for_logs(&env, &job, b"before\n");
    let container = container_of(&job);

    env.kill_worker();
    wait_until("the container to exit", STATE_DEADLINE, || {
        (container_status(&container) == "exited").then_some(())
    });
    assert_eq!(
        env.status(&job)["state"],
        "running",
        "nobody recorded the end yet"
    );

    env.restart_worker();
    env.jobs(&["wait", &job]).assert_code(9);
    let status = env.status(&job);
    assert_eq!(status["state"], "failed", "{status}");
    assert_eq!(status["exit_code"], 9, "{status}");
    assert_eq!(status["attempt"], 1, "the job ran once: {status}");
    env.jobs(&["logs", &job])
        .assert_success()
        .assert_stdout(b"before\n");

    env.finish();
}

#[test]
fn a_job_still_running_when_its_worker_restarts_is_taken_over() {
    let mut env = TestEnv::start(1);
    let job = env.run_detached(&["--", "sh", "-c", "echo before; sleep 6; echo after; exit 3"]);
    env.wait_for_state(&job, "running", STATE_DEADLINE);
    wait_for_logs(&env, &job, b"before\n");
    let container = container_of(&job);

    env.kill_worker();
    env.restart_worker();
    // The new worker attached before it said it was ready, so everything
    // the job prints from now on is captured.
    assert_eq!(
        container_status(&container),
        "running",
        "the job must outlive the worker's restart for this test to mean anything"
    );

    env.jobs(&["wait", &job]).assert_code(3);
    let status = env.status(&job);
    assert_eq!(status["state"], "failed", "{status}");
    assert_eq!(status["exit_code"], 3, "{status}");
    assert_eq!(status["attempt"], 1, "the job was not run twice: {status}");
    env.jobs(&["logs", &job])
        .assert_success()
        .assert_stdout(b"before\nafter\n");

    env.finish();
}

#[test]
fn a_restarted_worker_puts_back_a_job_it_claimed_but_never_started() {
    let mut env = TestEnv::start(1);
    let job = env.run_detached(&["--", "sh", "-c", "exit 5"]);
    env.jobs(&["wait", &job]).assert_code(5);
    // Simulate a crash between the claim and the container's start: the
    // job is held by this worker in `starting`, with no container (and,
    // as after a claim, no start intent).
    env.kill_worker();
    env.db_execute(&format!(
        "update jobs set state = 'starting', exit_code = null, reason = null, \
         finished_at = null, started_at = null, lease_expires_at = now() + interval '1 hour', \
         start_requested_at = null, stop_reason = null \
         where id = '{job}'"
    ));

    env.restart_worker();
    // The relay publishes it again, and it runs as a second attempt.
    env.jobs(&["wait", &job]).assert_code(5);
    let status = env.status(&job);
    assert_eq!(status["state"], "failed", "{status}");
    assert_eq!(status["attempt"], 2, "{status}");

    env.finish();
}

#[test]
fn sigterm_lets_running_jobs_finish_then_the_worker_exits_cleanly() {
    let mut env = TestEnv::start(1);
    let job = env.run_detached(&["--", "sh", "-c", "echo working; sleep 2; echo done; exit 4"]);
    env.wait_for_state(&job, "running", STATE_DEADLINE);
    wait_for_logs(&env, &job, b"working\n");

    let status = env.terminate_worker(STATE_DEADLINE);
    assert!(status.success(), "a drained worker exits 0: {status}");
    let stored = env.db_job(&job).expect("the job is stored");
    assert_eq!(stored.state, "failed", "the job ran to its end: {stored:?}");
    assert_eq!(stored.exit_code, Some(4), "{stored:?}");
    env.jobs(&["logs", &job])
        .assert_success()
        .assert_stdout(b"working\ndone\n");

    env.finish();
}

#[test]
fn sigterm_stops_jobs_that_outlast_the_drain_and_records_them_lost() {
    let mut env = TestEnv::start(1);
    env.kill_worker();
    env.restart_worker_with(&[("JOBS_DRAIN_TIMEOUT", "1s")]);
    let job = env.run_detached(&["--", "sh", "-c", "echo working; sleep 120"]);
    env.wait_for_state(&job, "running", STATE_DEADLINE);
    wait_for_logs(&env, &job, b"working\n");

    let status = env.terminate_worker(STATE_DEADLINE);
    assert!(status.success(), "a drained worker exits 0: {status}");
    let stored = env.db_job(&job).expect("the job is stored");
    assert_eq!(stored.state, "lost", "{stored:?}");
    assert_eq!(
        stored.reason.as_deref(),
        Some("worker shut down"),
        "{stored:?}"
    );
    env.jobs(&["wait", &job])
        .assert_code(125)
        .assert_stderr_contains("worker shut down");

    env.finish();
}

/// `seq FROM TO` as bytes.
fn numbered(from: u32, to: u32) -> Vec<u8> {
    (from..=to)
        .flat_map(|n| format!("{n}\n").into_bytes())
        .collect()
}

fn file_exists_in(container: &str, path: &str) -> bool {
    std::process::Command::new("docker")
        .args(["exec", container, "test", "-f", path])
        .stdin(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

#[test]
fn output_written_while_the_worker_is_down_is_stored_byte_for_byte() {
    let mut env = TestEnv::start(1);
    // Three phases, each started by a file the test creates: before the
    // kill, while no worker runs, and after the takeover.
    let script = "seq 1 2000; seq 1 500 >&2; \
        while [ ! -f /tmp/go1 ]; do sleep 0.1; done; \
        seq 2001 60000; seq 501 1000 >&2; touch /tmp/phase2; \
        while [ ! -f /tmp/go2 ]; do sleep 0.1; done; \
        seq 60001 80000; exit 4";
    let job = env.run_detached(&["--", "sh", "-c", script]);
    env.wait_for_state(&job, "running", STATE_DEADLINE);
    wait_until("the first phase's output", STATE_DEADLINE, || {
        let logs = env.jobs(&["logs", &job]);
        (logs.stdout == numbered(1, 2000) && logs.stderr == numbered(1, 500)).then_some(())
    });
    let container = container_of(&job);

    env.kill_worker();
    docker(&["exec", &container, "touch", "/tmp/go1"]);
    wait_until("the second phase, with no worker", STATE_DEADLINE, || {
        file_exists_in(&container, "/tmp/phase2").then_some(())
    });
    env.restart_worker();
    docker(&["exec", &container, "touch", "/tmp/go2"]);

    env.jobs(&["wait", &job]).assert_code(4);
    let status = env.status(&job);
    assert_eq!(status["exit_code"], 4, "{status}");
    assert_eq!(status["attempt"], 1, "{status}");
    let logs = env.jobs(&["logs", &job]);
    logs.assert_success();
    jobs_e2e::assert_bytes_eq(&logs.stdout, &numbered(1, 80000), "stdout");
    jobs_e2e::assert_bytes_eq(&logs.stderr, &numbered(1, 1000), "stderr");

    env.finish();
}

#[test]
fn a_job_that_ends_while_its_worker_is_dead_keeps_its_output() {
    let mut env = TestEnv::start(1);
    let script = "seq 1 100; while [ ! -f /tmp/go ]; do sleep 0.1; done; \
        seq 101 5000; seq 1 300 >&2; exit 6";
    let job = env.run_detached(&["--", "sh", "-c", script]);
    env.wait_for_state(&job, "running", STATE_DEADLINE);
    wait_until("the first output", STATE_DEADLINE, || {
        (env.jobs(&["logs", &job]).stdout == numbered(1, 100)).then_some(())
    });
    let container = container_of(&job);

    env.kill_worker();
    docker(&["exec", &container, "touch", "/tmp/go"]);
    wait_until("the container to exit", STATE_DEADLINE, || {
        (container_status(&container) == "exited").then_some(())
    });
    env.restart_worker();

    env.jobs(&["wait", &job]).assert_code(6);
    let logs = env.jobs(&["logs", &job]);
    jobs_e2e::assert_bytes_eq(&logs.stdout, &numbered(1, 5000), "stdout");
    jobs_e2e::assert_bytes_eq(&logs.stderr, &numbered(1, 300), "stderr");

    env.finish();
}

#[test]
fn output_beyond_the_ring_while_the_worker_is_down_leaves_a_marked_line() {
    let mut env = TestEnv::start(1);
    const WRITTEN: usize = 80 << 20;
    let script = "echo start; while [ ! -f /tmp/go ]; do sleep 0.1; done; \
        head -c 83886080 /dev/zero | tr '\\0' x; touch /tmp/written; \
        while [ ! -f /tmp/end ]; do sleep 0.1; done";
    let job = env.run_detached(&["--", "sh", "-c", script]);
    wait_until("the first output", STATE_DEADLINE, || {
        (env.jobs(&["logs", &job]).stdout == b"start\n").then_some(())
    });
    let container = container_of(&job);

    env.kill_worker();
    docker(&["exec", &container, "touch", "/tmp/go"]);
    wait_until("80 MiB written with no worker", STATE_DEADLINE, || {
        file_exists_in(&container, "/tmp/written").then_some(())
    });
    env.restart_worker();
    docker(&["exec", &container, "touch", "/tmp/end"]);
    env.jobs(&["wait", &job]).assert_success();

    let stdout = env.jobs(&["logs", &job]).stdout;
    let text_end = stdout
        .iter()
        .position(|&b| b == b'x')
        .expect("the kept tail");
    let head = String::from_utf8_lossy(&stdout[..text_end]).into_owned();
    let lost: usize = head
        .strip_prefix("start\n[jobs: ")
        .and_then(|rest| {
            rest.strip_suffix(" bytes of stdout written while the worker was away were not kept]\n")
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no marked line: {head:?}"));
    let kept = &stdout[text_end..];
    assert!(
        kept.iter().all(|&b| b == b'x'),
        "the kept tail is the job's bytes"
    );
    assert_eq!(
        lost + kept.len(),
        WRITTEN,
        "every byte is either kept or counted"
    );
    assert!(
        kept.len() >= 48 << 20,
        "the ring keeps at least 3 segments: {}",
        kept.len()
    );
    env.finish();
}
