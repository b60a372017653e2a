//! The Docker engine restarts in the middle of a job: the job ends
//! truthfully, with its real exit code and its whole output, and the worker
//! reconnects by itself.
//!
//! The test never touches the shared dockerd: it starts a private one (its
//! own data root, exec root, pid file and socket, no bridge, no iptables,
//! in a network namespace of its own so that it cannot touch the host's),
//! loads the test image into it, and points the worker at it with
//! DOCKER_HOST.
//!
//! Synchronisation: bounded polls of the private engine's socket, of job
//! states and logs; the restarted dockerd is up once `docker info` answers.

use std::time::Duration;

use jobs_e2e::private_dockerd::{PrivateDockerd, short_dir};
use jobs_e2e::{TestEnv, wait_until};

const DEADLINE: Duration = Duration::from_secs(90);

#[test]
fn a_dockerd_restart_mid_job_ends_it_with_its_real_exit_code_and_output() {
    let mut env = TestEnv::start(1);
    let mut dockerd = PrivateDockerd::start(short_dir(&env));
    dockerd.load_test_image();
    env.kill_worker();
    env.restart_worker_with(&[("DOCKER_HOST", &dockerd.host())]);
    // The private engine has no bridge.
    env.jobs(&["apps", "set", jobs_e2e::DEMO_APP, "--network", "none"])
        .assert_success();

    // dockerd stops its containers with SIGTERM: the job says goodbye on
    // both streams and exits 42.
    let script = "trap 'echo bye; echo bye-err >&2; exit 42' TERM; echo started; \
                  while true; do sleep 0.1; done";
    let job = env.run_detached(&["--", "sh", "-c", script]);
    wait_until("the job's first output", DEADLINE, || {
        (env.jobs(&["logs", &job]).stdout == b"started\n").then_some(())
    });

    dockerd.stop();
    assert_eq!(env.db_job(&job).unwrap().state, "running");
    dockerd.spawn();

    env.jobs_with_timeout(&["wait", &job], DEADLINE)
        .assert_code(42);
    let status = env.status(&job);
    assert_eq!(status["state"], "failed", "{status}");
    assert_eq!(status["exit_code"], 42, "{status}");
    let logs = env.jobs(&["logs", &job]);
    jobs_e2e::assert_bytes_eq(&logs.stdout, b"started\nbye\n", "stdout");
    jobs_e2e::assert_bytes_eq(&logs.stderr, b"bye-err\n", "stderr");

    // The worker reconnected by itself: the next job runs.
    env.jobs(&["run", "--", "sh", "-c", "echo again; exit 5"])
        .assert_code(5)
        .assert_stdout(b"again\n");
    env.finish();
}

#[test]
fn a_job_whose_container_the_restarted_engine_lost_ends_lost() {
    let mut env = TestEnv::start(1);
    let mut dockerd = PrivateDockerd::start(short_dir(&env));
    dockerd.load_test_image();
    env.kill_worker();
    env.restart_worker_with(&[("DOCKER_HOST", &dockerd.host())]);
    env.jobs(&["apps", "set", jobs_e2e::DEMO_APP, "--network", "none"])
        .assert_success();

    let job = env.run_detached(&["--", "sh", "-c", "echo started; sleep 300"]);
    wait_until("the job's first output", DEADLINE, || {
        (env.jobs(&["logs", &job]).stdout == b"started\n").then_some(())
    });
    // The engine comes back without the container: its state was wiped
    // while the engine was down.
    dockerd.stop();
    let containers = dockerd.data_root().join("containers");
    for entry in std::fs::read_dir(&containers).unwrap() {
        std::fs::remove_dir_all(entry.unwrap().path()).unwrap();
    }
    dockerd.spawn();

    let stored = env.wait_for_job(&job, "the job to end", DEADLINE, |job| {
        job.state != "running"
    });
    assert_eq!(stored.state, "lost", "{stored:?}");
    let status = env.status(&job);
    assert_eq!(status["exit_code"], serde_json::Value::Null, "{status}");
    assert_eq!(
        status["reason"], "its container is gone from the Docker engine",
        "{status}"
    );
    env.finish();
}
