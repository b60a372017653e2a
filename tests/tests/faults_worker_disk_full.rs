//! Fault: the worker host's disk fills up (the Docker engine's data root:
//! images, container layers, volumes).
//!
//! - a job that fills it itself gets an error for its write, as it would anywhere,
//!   and ends with its own exit code and its whole output (the shim's copy
//!   of the output, on the same disk, stops; the job does not);
//! - with the disk full, a new job fails at once with a reason that names
//!   the full disk, exit 125, and leaves no container behind;
//! - once space is freed, jobs run again.
//!
//! The engine is private ([`jobs_e2e::private_dockerd`]), its data root on
//! a tmpfs of its own.
//!
//! Synchronisation: the CLI's own exit.

use std::process::Command;

use jobs_e2e::private_dockerd::{PrivateDockerd, short_dir};
use jobs_e2e::{DEMO_APP, TestEnv};

const NO_SPACE: &str = "no space left on device";

#[test]
fn a_full_engine_disk_fails_new_containers_by_name_and_keeps_each_job_s_exit_code() {
    let mut env = TestEnv::start(1);
    let dockerd = PrivateDockerd::start_on_own_disk(short_dir(&env), 96);
    dockerd.load_test_image();
    env.kill_worker();
    env.restart_worker_with(&[("DOCKER_HOST", &dockerd.host())]);
    // The private engine has no bridge.
    env.jobs(&["apps", "set", DEMO_APP, "--network", "none"])
        .assert_success();

    // The job fills the disk itself, says how its write went, and cleans up.
    let filled_by_job = env.jobs(&[
        "run",
        "--",
        "sh",
        "-c",
        "echo start; head -c 200000000 /dev/zero > /big; echo \"write: $?\"; rm -f /big; exit 4",
    ]);
    filled_by_job
        .assert_code(4)
        .assert_stdout(b"start\nwrite: 1\n");
    // busybox reports the failed write in its own words (here `head:
    // standard output: I/O error`); it reaches the log as the job wrote it.
    assert!(
        filled_by_job.stderr_text().starts_with("head: "),
        "the job's own error: {}",
        filled_by_job.stderr_text()
    );

    // A disk left full: the next job cannot get a container.
    assert!(dockerd.fill_disk() > 0, "the filler took the free space");
    let refused = env.run_detached(&["--", "echo", "never"]);
    let waited = env.jobs(&["wait", &refused]);
    waited.assert_code(125);
    let status = env.status(&refused);
    assert_eq!(status["state"], "failed", "{status}");
    assert_eq!(status["exit_code"], serde_json::Value::Null, "{status}");
    let reason = status["reason"].as_str().unwrap_or_default().to_lowercase();
    assert!(
        reason.contains(NO_SPACE),
        "the reason names the disk: {status}"
    );
    assert!(
        waited.stderr_text().to_lowercase().contains(NO_SPACE),
        "jobs wait says why: {}",
        waited.stderr_text()
    );
    let left = Command::new("docker")
        .args(["-H", &dockerd.host(), "ps", "-aq", "--filter"])
        .arg(format!("label=jobs.job_id={refused}"))
        .output()
        .expect("docker ps runs");
    assert_eq!(
        String::from_utf8_lossy(&left.stdout).trim(),
        "",
        "no container left behind"
    );

    // Space again: jobs run.
    dockerd.free_disk();
    env.jobs(&["run", "--", "sh", "-c", "echo again; exit 5"])
        .assert_code(5)
        .assert_stdout(b"again\n");
    env.finish();
}
