//! Running the CLI (or any command) with a deadline, and asserting on what
//! it printed.

use std::fmt;
use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::poll::{poll_until, wait_until};

/// How long one CLI call may take unless a test says otherwise.
pub const DEFAULT_CLI_TIMEOUT: Duration = Duration::from_secs(120);

/// What a finished command printed, and how it ended.
pub struct CliOutput {
    /// The command line, for messages.
    pub command_line: String,
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl CliOutput {
    /// The exit code. Panics if the process was killed by a signal.
    #[track_caller]
    pub fn code(&self) -> i32 {
        match self.status.code() {
            Some(code) => code,
            None => panic!("the process was killed by a signal, not exited: {self:?}"),
        }
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// The `NAME: value` line of a `jobs status`-style listing, its runs
    /// of spaces made one (the CLI pads the names into a column).
    pub fn field_line(&self, name: &str) -> Option<String> {
        let prefix = format!("{name}:");
        self.stdout_text()
            .lines()
            .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
            .find(|line| line.starts_with(&prefix))
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// Asserts the exit code, showing everything the command printed if it
    /// differs.
    #[track_caller]
    pub fn assert_code(&self, expected: i32) -> &Self {
        assert_eq!(
            self.status.code(),
            Some(expected),
            "unexpected exit status: {self:?}"
        );
        self
    }

    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        self.assert_code(0)
    }

    /// Asserts that stdout is exactly `expected`.
    #[track_caller]
    pub fn assert_stdout(&self, expected: &[u8]) -> &Self {
        assert!(
            self.stdout == expected,
            "stdout should be exactly {:?}: {self:?}",
            String::from_utf8_lossy(expected)
        );
        self
    }

    /// Asserts that stderr contains `needle`.
    #[track_caller]
    pub fn assert_stderr_contains(&self, needle: &str) -> &Self {
        assert!(
            self.stderr_text().contains(needle),
            "stderr should contain {needle:?}: {self:?}"
        );
        self
    }

    /// Asserts that the CLI reported its own error the way every error is
    /// reported: on stderr, starting with `jobs: `, with nothing on stdout.
    #[track_caller]
    pub fn assert_cli_error(&self, code: i32, needle: &str) -> &Self {
        self.assert_code(code);
        self.assert_stderr_contains(needle);
        assert!(
            self.stderr_text().starts_with("jobs: ") || self.stderr_text().contains("\njobs: "),
            "errors are printed as `jobs: …` on stderr: {self:?}"
        );
        assert!(
            self.stdout.is_empty(),
            "an error prints nothing on stdout: {self:?}"
        );
        self
    }
}

impl CliOutput {
    /// Asserts a usage error: exit 2, `needle` on stderr, nothing on stdout.
    /// The message may come from the argument parser (`error: …`) or from
    /// the CLI itself (`jobs: …`).
    #[track_caller]
    pub fn assert_usage_error(&self, needle: &str) -> &Self {
        self.assert_code(2);
        self.assert_stderr_contains(needle);
        assert!(
            self.stdout.is_empty(),
            "a usage error prints nothing on stdout: {self:?}"
        );
        self
    }
}

impl fmt::Debug for CliOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "\n  command: {}\n  status: {}\n  stdout ({} bytes): {}\n  stderr ({} bytes): {}\n",
            abbreviate(&self.command_line, 300),
            self.status,
            self.stdout.len(),
            abbreviate(&format!("{:?}", self.stdout_text()), 2000),
            self.stderr.len(),
            abbreviate(&format!("{:?}", self.stderr_text()), 2000),
        )
    }
}

fn abbreviate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let head: String = text.chars().take(max_chars).collect();
    format!("{head}… ({} chars in all)", text.chars().count())
}

/// A human-readable command line.
pub fn describe(command: &Command) -> String {
    let mut line = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        line.push(' ');
        line.push_str(&abbreviate(&arg.to_string_lossy(), 120));
    }
    line
}

/// Collects everything a reader yields, in a background thread, so that a
/// child never blocks on a full pipe and a test can look at what arrived
/// so far.
pub struct Capture {
    buffer: Arc<Mutex<Vec<u8>>>,
    thread: Option<JoinHandle<()>>,
}

impl Capture {
    pub fn start(mut reader: impl Read + Send + 'static) -> Capture {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&buffer);
        let thread = std::thread::spawn(move || {
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                match reader.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => sink.lock().unwrap().extend_from_slice(&chunk[..n]),
                }
            }
        });
        Capture {
            buffer,
            thread: Some(thread),
        }
    }

    /// What arrived so far.
    pub fn snapshot(&self) -> Vec<u8> {
        self.buffer.lock().unwrap().clone()
    }

    /// Waits for the end of the stream; [`Capture::snapshot`] then has all
    /// of it.
    pub fn wait_for_end(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// Waits for the end of the stream and returns all of it.
    pub fn finish(mut self) -> Vec<u8> {
        self.wait_for_end();
        std::mem::take(&mut *self.buffer.lock().unwrap())
    }
}

/// Runs `command` to completion with `stdin` (or /dev/null), capturing its
/// output. Panics with what it printed so far if it takes longer than
/// `timeout`.
#[track_caller]
pub fn run_bounded(mut command: Command, stdin: Option<&[u8]>, timeout: Duration) -> CliOutput {
    let command_line = describe(&command);
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {command_line}: {error}"));
    let writer = stdin.map(|bytes| {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        let bytes = bytes.to_vec();
        // A command may exit without reading its stdin; a broken pipe is
        // then expected and harmless.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        })
    });
    let stdout = Capture::start(child.stdout.take().expect("stdout is piped"));
    let stderr = Capture::start(child.stderr.take().expect("stderr is piped"));
    let status = poll_until(timeout, || child.try_wait().expect("try_wait works"));
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "{command_line} did not finish within {timeout:?}\n  stdout so far: {}\n  stderr so far: {}",
            abbreviate(
                &format!("{:?}", String::from_utf8_lossy(&stdout.snapshot())),
                2000
            ),
            abbreviate(
                &format!("{:?}", String::from_utf8_lossy(&stderr.snapshot())),
                2000
            ),
        );
    };
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    CliOutput {
        command_line,
        status,
        stdout: stdout.finish(),
        stderr: stderr.finish(),
    }
}

/// A command running in the background, such as a `jobs follow` that a
/// test watches and then kills.
pub struct BackgroundCli {
    command_line: String,
    child: Option<Child>,
    stdout: Option<Capture>,
    stderr: Option<Capture>,
}

impl BackgroundCli {
    /// Starts `command` with stdin on /dev/null.
    #[track_caller]
    pub fn spawn(mut command: Command) -> BackgroundCli {
        let command_line = describe(&command);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {command_line}: {error}"));
        let stdout = Capture::start(child.stdout.take().expect("stdout is piped"));
        let stderr = Capture::start(child.stderr.take().expect("stderr is piped"));
        BackgroundCli {
            command_line,
            child: Some(child),
            stdout: Some(stdout),
            stderr: Some(stderr),
        }
    }

    pub fn id(&self) -> u32 {
        self.child.as_ref().expect("the child is there").id()
    }

    /// What it printed on stdout so far.
    pub fn stdout_so_far(&self) -> Vec<u8> {
        self.stdout
            .as_ref()
            .map(Capture::snapshot)
            .unwrap_or_default()
    }

    /// What it printed on stderr so far.
    pub fn stderr_so_far(&self) -> Vec<u8> {
        self.stderr
            .as_ref()
            .map(Capture::snapshot)
            .unwrap_or_default()
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => child.try_wait().expect("try_wait works").is_none(),
            None => false,
        }
    }

    /// Waits until its stdout satisfies `condition`, and returns that
    /// stdout. Panics if it exits or `timeout` passes first.
    #[track_caller]
    pub fn wait_for_stdout(
        &mut self,
        what: &str,
        timeout: Duration,
        condition: impl Fn(&[u8]) -> bool,
    ) -> Vec<u8> {
        let description = format!("{what} on the stdout of {}", self.command_line);
        wait_until(&description, timeout, || {
            let stdout = self.stdout_so_far();
            if condition(&stdout) {
                return Some(stdout);
            }
            if !self.is_running() {
                // It exited: read its output to the end and look once more.
                for capture in [self.stdout.as_mut(), self.stderr.as_mut()]
                    .into_iter()
                    .flatten()
                {
                    capture.wait_for_end();
                }
                let stdout = self.stdout_so_far();
                if condition(&stdout) {
                    return Some(stdout);
                }
                let stderr = self.stderr_so_far();
                panic!(
                    "{} exited before {what}\n  stdout: {:?}\n  stderr: {:?}",
                    self.command_line,
                    String::from_utf8_lossy(&stdout),
                    String::from_utf8_lossy(&stderr),
                );
            }
            None
        })
    }

    /// Sends `signal` (such as `libc::SIGKILL`) to it.
    pub fn signal(&self, signal: i32) {
        let pid = self.id() as libc::pid_t;
        // SAFETY: kill(2) on a child we spawned and have not reaped yet.
        let result = unsafe { libc::kill(pid, signal) };
        assert_eq!(result, 0, "kill({pid}, {signal}) failed");
    }

    /// Waits until the process handles `signal` itself (its handler is
    /// installed, as `/proc/PID/status` shows in `SigCgt`), so that a test
    /// sends it only once the CLI decides what it does.
    #[track_caller]
    pub fn wait_for_signal_handler(&self, signal: i32, timeout: Duration) {
        let status = format!("/proc/{}/status", self.id());
        let bit = 1u64 << (signal - 1);
        wait_until(
            &format!("a handler of signal {signal} in {}", self.command_line),
            timeout,
            || {
                let text = std::fs::read_to_string(&status).ok()?;
                let caught = text.lines().find_map(|line| line.strip_prefix("SigCgt:"))?;
                let mask = u64::from_str_radix(caught.trim(), 16).ok()?;
                (mask & bit != 0).then_some(())
            },
        );
    }

    /// Kills it with SIGKILL and returns what it printed until then.
    pub fn kill(self) -> CliOutput {
        self.signal(libc::SIGKILL);
        self.wait(Duration::from_secs(10))
    }

    /// Waits for it to exit, at most `timeout`, and returns its output.
    #[track_caller]
    pub fn wait(mut self, timeout: Duration) -> CliOutput {
        let mut child = self.child.take().expect("the child is there");
        let status = poll_until(timeout, || child.try_wait().expect("try_wait works"));
        let Some(status) = status else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{} did not finish within {timeout:?}\n  stdout so far: {}\n  stderr so far: {}",
                self.command_line,
                abbreviate(
                    &format!("{:?}", String::from_utf8_lossy(&self.stdout_so_far())),
                    2000
                ),
                abbreviate(
                    &format!("{:?}", String::from_utf8_lossy(&self.stderr_so_far())),
                    2000
                ),
            );
        };
        CliOutput {
            command_line: self.command_line.clone(),
            status,
            stdout: self.stdout.take().map(Capture::finish).unwrap_or_default(),
            stderr: self.stderr.take().map(Capture::finish).unwrap_or_default(),
        }
    }
}

impl Drop for BackgroundCli {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
