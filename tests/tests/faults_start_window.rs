//! Fault: the worker dies while its container's start is under way — after
//! it recorded the start (from then on the job is never queued again), and
//! before Docker told it the container runs. A proxy in front of Docker
//! ([`jobs_e2e::docker_proxy`]) holds the worker at that moment.
//!
//! - the start never reached Docker: the next worker starts the created
//!   container, and the job ends with its command's exit code and output;
//! - the start reached Docker, and the container is started once more (as a
//!   late start would): the command still runs once, and the job ends as
//!   that one run did;
//! - the start reached Docker and the worker died before it recorded the
//!   job running: the next worker records it running, and it can be
//!   canceled.
//!
//! Synchronisation: the proxy's count of held starts, the stored job, and
//! Docker's own view of the container (`docker wait`).

use std::process::Command;
use std::time::Duration;

use jobs_e2e::docker_proxy::{DockerProxy, StartHold};
use jobs_e2e::executions::{container_of, container_status, starts_of};
use jobs_e2e::poll::wait_until;
use jobs_e2e::{TestEnv, TestEnvOptions};

const DEADLINE: Duration = Duration::from_secs(60);

/// A worker whose Docker goes through a proxy that holds starts as `hold`
/// says; the lease is short, so that a held start cannot outlast the test.
fn env_with_held_starts(hold: StartHold) -> (TestEnv, DockerProxy) {
    let mut env = TestEnv::start_with(TestEnvOptions::new(1).worker_env("JOBS_LEASE", "6s"));
    let socket = std::env::temp_dir().join(format!(
        "jobs-e2e-docker-{}.sock",
        uuid::Uuid::now_v7().simple()
    ));
    let proxy = DockerProxy::start(&socket, hold);
    env.kill_worker();
    env.restart_worker_with(&[("DOCKER_HOST", &proxy.docker_host())]);
    (env, proxy)
}

fn wait_for_held_start(proxy: &DockerProxy) {
    wait_until(
        "the worker to ask Docker to start the container",
        DEADLINE,
        || (proxy.held_starts() == 1).then_some(()),
    );
}

/// `docker wait`: the container's exit code once it has stopped.
fn docker_wait(container: &str) -> String {
    let output = Command::new("docker")
        .args(["wait", container])
        .output()
        .expect("docker wait runs");
    assert!(output.status.success(), "docker wait: {output:?}");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[test]
fn a_start_recorded_but_never_sent_to_docker_is_made_by_the_next_worker() {
    let (mut env, proxy) = env_with_held_starts(StartHold::Before);
    let starts = env.watch_container_starts_and_dies();
    let job = env.run_detached(&["--", "sh", "-c", "echo ran; echo to stderr >&2; exit 7"]);
    wait_for_held_start(&proxy);
    let container = container_of(&job, DEADLINE);
    assert_eq!(container_status(&container), "created");
    assert_eq!(env.db_job(&job).expect("stored").state, "starting");
    assert!(
        env.db_start_requested(&job),
        "the start is recorded before Docker is asked"
    );

    env.kill_worker();
    env.restart_worker();

    env.jobs_with_timeout(&["wait", &job], DEADLINE)
        .assert_code(7);
    let stored = env.db_job(&job).expect("stored");
    assert_eq!(
        (stored.state.as_str(), stored.exit_code, stored.attempt),
        ("failed", Some(7), 1),
        "{stored:?}"
    );
    let logs = env.jobs(&["logs", &job]);
    logs.assert_success().assert_stdout(b"ran\n");
    assert_eq!(
        String::from_utf8_lossy(&logs.stderr),
        "to stderr\n",
        "the command's stderr, as it wrote it"
    );
    assert_eq!(starts_of(&starts, &job), 1, "the command ran once");
    env.finish();
}

#[test]
fn a_container_started_twice_runs_its_command_once_and_ends_as_that_run_did() {
    let (mut env, proxy) = env_with_held_starts(StartHold::After);
    let starts = env.watch_container_starts_and_dies();
    // Each run of the command adds a line to a file in the container's own
    // layer, and exits with the number of lines: 1 for the first run.
    let job = env.run_detached(&[
        "--",
        "sh",
        "-c",
        "echo ran; echo run >> /runs; exit $(wc -l < /runs)",
    ]);
    wait_for_held_start(&proxy);
    let container = container_of(&job, DEADLINE);
    assert_eq!(docker_wait(&container), "1", "the first run");

    // A second start of the same container, as a dead worker's late start
    // would make: it runs nothing, and ends as the first run did.
    let started = Command::new("docker")
        .args(["start", &container])
        .output()
        .expect("docker start runs");
    assert!(started.status.success(), "docker start: {started:?}");
    assert_eq!(docker_wait(&container), "1", "the second start ran nothing");

    env.kill_worker();
    env.restart_worker();
    env.jobs_with_timeout(&["wait", &job], DEADLINE)
        .assert_code(1);
    let stored = env.db_job(&job).expect("stored");
    assert_eq!(
        (stored.state.as_str(), stored.exit_code, stored.attempt),
        ("failed", Some(1), 1),
        "{stored:?}"
    );
    env.jobs(&["logs", &job])
        .assert_success()
        .assert_stdout(b"ran\n");
    assert_eq!(starts_of(&starts, &job), 2, "two starts of one container");
    env.finish();
}

#[test]
fn a_job_whose_worker_died_before_recording_it_running_shows_running_and_can_be_canceled() {
    let (mut env, proxy) = env_with_held_starts(StartHold::After);
    let job = env.run_detached(&["--", "sh", "-c", "echo started; sleep 60"]);
    wait_for_held_start(&proxy);
    let container = container_of(&job, DEADLINE);
    wait_until("the container to run", DEADLINE, || {
        (container_status(&container) == "running").then_some(())
    });
    assert_eq!(env.db_job(&job).expect("stored").state, "starting");

    env.kill_worker();
    env.restart_worker();
    let running = env.wait_for_state(&job, "running", DEADLINE);
    assert!(running.started, "{running:?}");
    env.jobs(&["cancel", &job]).assert_success();
    let canceled = env.wait_for_state(&job, "canceled", DEADLINE);
    assert_eq!(canceled.reason.as_deref(), Some("canceled"), "{canceled:?}");
    env.jobs(&["logs", &job])
        .assert_success()
        .assert_stdout(b"started\n");
    env.finish();
}
