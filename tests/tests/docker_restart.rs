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

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use jobs_e2e::{TestEnv, wait_until};

const DEADLINE: Duration = Duration::from_secs(90);

/// A dockerd of the test's own, stopped and removed on drop.
struct PrivateDockerd {
    dir: PathBuf,
    child: Option<Child>,
}

impl PrivateDockerd {
    fn start(dir: PathBuf) -> Self {
        std::fs::create_dir_all(&dir).unwrap();
        let mut dockerd = PrivateDockerd { dir, child: None };
        dockerd.spawn();
        dockerd
    }

    fn host(&self) -> String {
        format!("unix://{}", self.dir.join("docker.sock").display())
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("dockerd.log"))
            .unwrap();
        // In a network namespace of its own: a dockerd with `--bridge=none`
        // deletes the host's `docker0` at start, which would cut the shared
        // engine's containers (and every other test) off their bridge.
        let child = Command::new("unshare")
            .args(["--net", "--", "dockerd"])
            .arg("--data-root")
            .arg(self.dir.join("data"))
            .arg("--exec-root")
            .arg(self.dir.join("exec"))
            .arg("--pidfile")
            .arg(self.dir.join("dockerd.pid"))
            .args(["-H", &self.host()])
            .args(["--bridge=none", "--iptables=false", "--ip-masq=false"])
            .args(["--storage-driver=vfs"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("dockerd runs");
        self.child = Some(child);
        wait_until("the private dockerd to answer", DEADLINE, || {
            self.docker(&["info"]).then_some(())
        });
    }

    /// Runs `docker` against this engine; whether it succeeded.
    fn docker(&self, args: &[&str]) -> bool {
        Command::new("docker")
            .args(["-H", &self.host()])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }

    fn load_test_image(&self) {
        let mut save = Command::new("docker")
            .args(["save", jobs_e2e::TEST_IMAGE])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let loaded = Command::new("docker")
            .args(["-H", &self.host(), "load", "-q"])
            .stdin(save.stdout.take().unwrap())
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(save.wait().unwrap().success(), "docker save");
        assert!(
            loaded.success(),
            "loading the test image into the private dockerd"
        );
    }

    /// SIGTERM, as a service manager's restart sends, and waits for exit.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            wait_until("the private dockerd to exit", DEADLINE, || {
                child.try_wait().ok().flatten().map(|_| ())
            });
        }
    }
}

impl Drop for PrivateDockerd {
    fn drop(&mut self) {
        self.stop();
        let _ = Command::new("umount")
            .arg("-R")
            .arg(self.dir.join("data"))
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A directory short enough for the engine's unix sockets (108 bytes).
fn short_dir(env: &TestEnv) -> PathBuf {
    let unique = env.worker_label();
    let tail = &unique[unique.len().saturating_sub(12)..];
    std::env::temp_dir().join(format!("jobs-dockerd-{tail}"))
}

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
    let containers = dockerd.dir.join("data").join("containers");
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
