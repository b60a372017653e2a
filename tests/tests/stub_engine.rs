//! The stub runtime of the control-plane simulation (`bench/simulate.py`):
//! a real worker whose Docker is `jobs-stub-engine`, a Docker API that runs
//! no container and only reads each command line. What the simulation
//! measures must be the worker's real path, so a run through it ends as
//! the command says: its output, its exit code, its states, and no
//! container left in the engine.
//!
//! Synchronisation: the engine prints its ready line before the worker
//! starts; CLI calls run to their end.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use jobs_e2e::{TestEnv, TestEnvOptions, binaries};

struct StubEngine {
    child: Child,
    socket: std::path::PathBuf,
}

impl StubEngine {
    fn start() -> StubEngine {
        let socket = std::env::temp_dir().join(format!(
            "jobs-e2e-stub-{}.sock",
            uuid::Uuid::now_v7().simple()
        ));
        let mut child = Command::new(binaries::binary("jobs-stub-engine"))
            .arg("--socket")
            .arg(&socket)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start jobs-stub-engine");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("its stdout"))
            .read_line(&mut line)
            .expect("its ready line");
        assert!(line.starts_with("listening on "), "{line:?}");
        StubEngine { child, socket }
    }

    fn docker_host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The containers the engine holds: the body of `GET /containers/json`.
    fn containers(&self) -> String {
        use std::io::{Read, Write};
        let mut stream =
            std::os::unix::net::UnixStream::connect(&self.socket).expect("reach the engine");
        stream
            .write_all(b"GET /containers/json?all=1 HTTP/1.0\r\nHost: stub\r\n\r\n")
            .expect("ask the engine");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("its answer");
        let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
        assert!(
            head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
            "{head}"
        );
        body.to_owned()
    }
}

impl Drop for StubEngine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }
}

#[test]
fn a_worker_on_the_stub_engine_runs_the_whole_path_of_a_queued_job() {
    let engine = StubEngine::start();
    let mut env = TestEnv::start_with(
        TestEnvOptions::new(2).worker_env("DOCKER_HOST", &engine.docker_host()),
    );
    env.jobs(&["run", "--", "sh", "-c", "echo simulated; sleep 0.2; exit 3"])
        .assert_code(3)
        .assert_stdout(b"simulated\n");
    let id = env.db_last_job_id();
    let status = env.status(&id);
    assert_eq!(
        (&status["state"], &status["exit_code"], &status["attempt"]),
        (
            &serde_json::json!("failed"),
            &serde_json::json!(3),
            &serde_json::json!(1)
        ),
        "{status}"
    );
    let logs = env.jobs(&["logs", &id]);
    logs.assert_success().assert_stdout(b"simulated\n");
    env.jobs(&["run", "--", "true"]).assert_code(0);
    // Removed after their ends, as on a real engine.
    jobs_e2e::poll::wait_until(
        "the engine to hold no container",
        std::time::Duration::from_secs(30),
        || (engine.containers().trim() == "[]").then_some(()),
    );
    env.assert_servers_alive();
}
