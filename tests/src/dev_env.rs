//! [`DevEnv`]: the real `jobs dev` on a throw-away home directory.
//!
//! Every process gets a clean environment: no `JOBS_*` variable from the
//! machine, `HOME` and `XDG_DATA_HOME` inside the test's temporary
//! directory. The CLI is given only `JOBS_API_URL` (the port is picked by
//! `jobs dev` itself, from `--listen 127.0.0.1:0`), so its token comes from
//! the token file that `jobs dev` wrote, as on a developer's machine.
//!
//! Each data dir has its own worker id, which labels its containers, so
//! dev tests run in parallel with each other and with the other e2e tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::cli::{BackgroundCli, CliOutput, DEFAULT_CLI_TIMEOUT, run_bounded};
use crate::env::{current_test_name, job_id_from_detached_output};
use crate::poll::poll_until;
use crate::{TEST_IMAGE, binaries, docker};

/// How long `jobs dev` may take to print its ready line. Generous: this is
/// a bound for a loaded CI machine, not the performance target, which
/// `bench/run.py --dev` measures.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `jobs dev` may take to stop after SIGTERM: its drain period
/// (10 s) and then some.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the worker may take to remove the containers of ended jobs.
const CONTAINER_REMOVAL_TIMEOUT: Duration = Duration::from_secs(60);

/// One `jobs dev` (started, stopped and restarted at will) and the CLI
/// pointed at it.
pub struct DevEnv {
    pub name: String,
    /// The test's temporary directory; removed at the end of a passing test.
    pub root: PathBuf,
    /// `--data-dir`, when the test passes one; otherwise the default data
    /// dir under the temporary `XDG_DATA_HOME` is used.
    explicit_data_dir: Option<PathBuf>,
    server: Option<BackgroundCli>,
    api_url: Option<String>,
    /// What the stopped or killed servers printed on stderr, for diagnostics.
    past_stderr: Vec<String>,
}

impl DevEnv {
    /// A fresh temporary home; `jobs dev` uses its default data dir there.
    pub fn in_default_data_dir() -> DevEnv {
        binaries::jobs_cli();
        assert!(
            docker::docker_is_up(),
            "docker does not answer `docker info`: run deploy/setup.sh"
        );
        let name = current_test_name();
        let root = std::env::temp_dir().join(format!(
            "jobs-e2e-dev-{name}-{}",
            uuid::Uuid::now_v7().simple()
        ));
        for dir in ["home", "xdg-data"] {
            std::fs::create_dir_all(root.join(dir))
                .unwrap_or_else(|error| panic!("cannot create {}: {error}", root.display()));
        }
        DevEnv {
            name,
            root,
            explicit_data_dir: None,
            server: None,
            api_url: None,
            past_stderr: Vec::new(),
        }
    }

    /// Like [`DevEnv::in_default_data_dir`], with `--data-dir` given
    /// explicitly; the CLI then finds the token through `JOBS_DEV_DATA_DIR`.
    pub fn in_explicit_data_dir() -> DevEnv {
        let mut env = DevEnv::in_default_data_dir();
        env.explicit_data_dir = Some(env.root.join("explicit-data-dir"));
        env
    }

    /// The data dir `jobs dev` uses.
    pub fn data_dir(&self) -> PathBuf {
        self.explicit_data_dir
            .clone()
            .unwrap_or_else(|| self.root.join("xdg-data/jobs/dev"))
    }

    /// A command with the test's clean environment.
    fn clean_command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("JOBS_") {
                command.env_remove(name);
            }
        }
        command
            .env("HOME", self.root.join("home"))
            .env("XDG_DATA_HOME", self.root.join("xdg-data"))
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG");
        if let Some(dir) = &self.explicit_data_dir {
            command.env("JOBS_DEV_DATA_DIR", dir);
        }
        command
    }

    /// Starts `jobs dev --listen 127.0.0.1:0 EXTRA...` and waits for its
    /// ready line. Returns how long that took, from spawn to the line.
    pub fn start(&mut self, extra_args: &[&str]) -> Duration {
        assert!(self.server.is_none(), "jobs dev is running already");
        let mut command = self.clean_command(&binaries::jobs_cli());
        command.args(["dev", "--listen", "127.0.0.1:0"]);
        if let Some(dir) = &self.explicit_data_dir {
            command.arg("--data-dir").arg(dir);
        }
        command.args(extra_args);
        // More than the default `warn`, for the diagnostics of a failure.
        command.env("RUST_LOG", "info,sqlx=warn");
        let spawned = Instant::now();
        let mut server = BackgroundCli::spawn(command);
        let stdout = server.wait_for_stdout("`listening on ADDR`", START_TIMEOUT, |stdout| {
            stdout.ends_with(b"\n") && stdout.starts_with(b"listening on ")
        });
        let ready_after = spawned.elapsed();
        let line = String::from_utf8(stdout).expect("the ready line is UTF-8");
        let address = line["listening on ".len()..].trim();
        assert_eq!(
            line.lines().count(),
            1,
            "jobs dev prints one line on stdout: {line:?}"
        );
        self.api_url = Some(format!("http://{address}"));
        self.server = Some(server);
        ready_after
    }

    /// Kills `jobs dev` with SIGKILL, as a crash would. Its containers keep
    /// running.
    pub fn kill(&mut self) {
        let server = self.server.take().expect("jobs dev is running");
        let output = server.kill();
        self.past_stderr.push(output.stderr_text());
    }

    /// Sends SIGTERM and returns how `jobs dev` exited.
    pub fn terminate(&mut self) -> CliOutput {
        let server = self.server.take().expect("jobs dev is running");
        server.signal(libc::SIGTERM);
        let output = server.wait(STOP_TIMEOUT);
        self.past_stderr.push(output.stderr_text());
        output
    }

    /// What the running `jobs dev` printed on stderr so far.
    pub fn server_stderr(&self) -> String {
        self.server
            .as_ref()
            .map(|server| String::from_utf8_lossy(&server.stderr_so_far()).into_owned())
            .unwrap_or_default()
    }

    pub fn api_url(&self) -> &str {
        self.api_url.as_deref().expect("jobs dev was started")
    }

    /// `program`, such as a shell, with the test's clean environment and
    /// told only where the API is, as the CLI would be.
    pub fn command(&self, program: &Path) -> Command {
        let mut command = self.clean_command(program);
        command.env("JOBS_API_URL", self.api_url());
        command
    }

    /// The home directory of every process of the test.
    pub fn home(&self) -> PathBuf {
        self.root.join("home")
    }

    /// `jobs ARGS`, told only where the API is.
    pub fn jobs_command(&self, args: &[&str]) -> Command {
        let mut command = self.clean_command(&binaries::jobs_cli());
        command.env("JOBS_API_URL", self.api_url()).args(args);
        command
    }

    /// Runs `jobs ARGS` with stdin on /dev/null (the queued path).
    #[track_caller]
    pub fn jobs(&self, args: &[&str]) -> CliOutput {
        run_bounded(self.jobs_command(args), None, DEFAULT_CLI_TIMEOUT)
    }

    /// Creates the app `name` with the test image.
    #[track_caller]
    pub fn create_app(&self, name: &str) {
        self.jobs(&["apps", "create", name, "--image", TEST_IMAGE])
            .assert_success();
    }

    /// `jobs run -d RUN_ARGS...`, returning the job id.
    #[track_caller]
    pub fn run_detached(&self, run_args: &[&str]) -> String {
        let mut args = vec!["run", "-d"];
        args.extend_from_slice(run_args);
        let output = self.jobs(&args);
        output.assert_success();
        job_id_from_detached_output(&output)
    }

    /// `jobs status ID --json`, parsed.
    #[track_caller]
    pub fn status(&self, job_id: &str) -> serde_json::Value {
        let output = self.jobs(&["status", job_id, "--json"]);
        output.assert_success();
        serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|error| panic!("status --json is not JSON ({error}): {output:?}"))
    }

    /// The label of the containers of this data dir's worker.
    pub fn worker_label(&self) -> String {
        let file = self.data_dir().join("worker-id");
        let id = std::fs::read_to_string(&file)
            .unwrap_or_else(|error| panic!("cannot read {}: {error}", file.display()));
        format!("jobs.worker_id={}", id.trim())
    }

    /// The end of every test: `jobs dev` still runs, and none of its
    /// containers is left once it had a bounded time to remove them.
    #[track_caller]
    pub fn finish(&mut self) {
        if let Some(server) = self.server.as_mut() {
            assert!(
                server.is_running(),
                "jobs dev exited during the test; stderr:\n{}",
                self.server_stderr()
            );
        }
        let label = self.worker_label();
        let gone = poll_until(CONTAINER_REMOVAL_TIMEOUT, || {
            docker::containers_with_label(&label)
                .is_empty()
                .then_some(())
        });
        assert!(
            gone.is_some(),
            "containers with {label} are left {CONTAINER_REMOVAL_TIMEOUT:?} after their jobs:\n{}",
            docker::describe_containers_with_label(&label)
        );
    }
}

impl Drop for DevEnv {
    fn drop(&mut self) {
        let failed = std::thread::panicking();
        if let Some(mut server) = self.server.take() {
            // Nothing here may panic: this may run during a panic.
            if server.is_running() {
                // SAFETY: kill(2) on our own child, not reaped yet.
                unsafe { libc::kill(server.id() as libc::pid_t, libc::SIGTERM) };
                let _ = poll_until(STOP_TIMEOUT, || (!server.is_running()).then_some(()));
            }
            let output = if server.is_running() {
                server.kill()
            } else {
                server.wait(Duration::from_secs(1))
            };
            self.past_stderr.push(output.stderr_text());
        }
        if let Ok(id) = std::fs::read_to_string(self.data_dir().join("worker-id")) {
            docker::remove_containers_with_label(&format!("jobs.worker_id={}", id.trim()));
        }
        if failed {
            eprintln!(
                "\n=== dev test {} failed; api {}, temporary dir kept: {}",
                self.name,
                self.api_url.as_deref().unwrap_or("(not started)"),
                self.root.display()
            );
            for (index, stderr) in self.past_stderr.iter().enumerate() {
                eprintln!("--- stderr of jobs dev, run {}:\n{stderr}", index + 1);
            }
        } else {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}
