//! Fault: the worker host's disk is slow. The worker meets its host's disk
//! only through the Docker engine, so the engine is slowed as such a disk
//! slows it ([`SlowEngine`]): every request waits 300 ms before the engine
//! hears of it (a container's layer made, started, removed; an exec), and
//! files copied into or out of containers (uploads, artifacts) move at
//! 2 MiB/s. This machine has no device-mapper (`dm-delay`) to put under
//! the engine's data root itself.
//!
//! Jobs are slowed, never killed, and nothing is lost: a job with a 4 MiB
//! upload copied out again as an artifact and 290 KB of output ends with
//! its exit code, its exact output and the artifact's exact bytes; a job
//! that outlives its timeout and an interactive run end as they must
//! ([`slow_disk::a_timeout_and_an_interactive_run`]); each ends in its
//! first attempt.
//!
//! Synchronisation: the CLI's own exit; the stored jobs.

use std::time::{Duration, Instant};

use jobs_e2e::docker_proxy::{DockerProxy, SlowEngine};
use jobs_e2e::expect::{assert_bytes_eq, numbered_lines};
use jobs_e2e::slow_disk;
use jobs_e2e::{TestEnv, TestEnvOptions};
use sha2::{Digest, Sha256};

const SLOW: SlowEngine = SlowEngine {
    latency: Duration::from_millis(300),
    archive_bytes_per_second: 2 * 1024 * 1024,
};
const RUN_TIMEOUT: Duration = Duration::from_secs(180);
const LINES: usize = 50_000;

#[test]
fn a_slow_engine_disk_slows_jobs_without_losing_a_byte_or_an_exit_code() {
    let mut env = TestEnv::start_with(TestEnvOptions::new(2));
    let socket = std::env::temp_dir().join(format!(
        "jobs-e2e-docker-{}.sock",
        uuid::Uuid::now_v7().simple()
    ));
    let proxy = DockerProxy::start_slow(&socket, SLOW);
    env.kill_worker();
    env.restart_worker_with(&[("DOCKER_HOST", &proxy.docker_host())]);

    // The engine is slow indeed: a run's create and start alone wait for it.
    let began = Instant::now();
    env.jobs_with_timeout(&["run", "--", "true"], RUN_TIMEOUT)
        .assert_success();
    let took = began.elapsed();
    assert!(took >= SLOW.latency * 2, "a run took {took:?}");

    let data: Vec<u8> = (0..4 * 1024 * 1024u32)
        .map(|n| (n.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let upload = env.log_dir.join("data.bin");
    std::fs::write(&upload, &data).expect("write the upload");
    let script = format!(
        "sha256sum /tmp/uploads/data.bin; cp /tmp/uploads/data.bin /tmp/copy.bin; \
         seq 1 {LINES}; exit 5"
    );
    let output = env.jobs_with_timeout(
        &[
            "run",
            "-f",
            &upload.display().to_string(),
            "--artifact",
            "/tmp/copy.bin",
            "--",
            "sh",
            "-c",
            &script,
        ],
        RUN_TIMEOUT,
    );
    output.assert_code(5);
    let digest: String = Sha256::digest(&data)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let mut expected = format!("{digest}  /tmp/uploads/data.bin\n").into_bytes();
    expected.extend(numbered_lines("", LINES));
    assert_bytes_eq(&output.stdout, &expected, "the job's stdout");
    let upload_id = env.db_last_job_id();
    let out = env.log_dir.join("artifacts");
    env.jobs_with_timeout(
        &["artifacts", &upload_id, "-o", &out.display().to_string()],
        RUN_TIMEOUT,
    )
    .assert_success();
    assert_bytes_eq(
        &std::fs::read(out.join("copy.bin")).expect("the artifact"),
        &data,
        "the artifact's bytes",
    );

    let mut expected = vec![(upload_id, "failed", Some(5))];
    expected.extend(slow_disk::a_timeout_and_an_interactive_run(
        &env,
        RUN_TIMEOUT,
    ));
    slow_disk::assert_ended_in_first_attempt(&env, &expected);
    env.finish();
}
