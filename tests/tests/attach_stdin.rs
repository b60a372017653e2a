//! Stdin of interactive runs is exactly-once across reconnects: a cut
//! connection neither loses nor repeats a byte of piped stdin or a
//! keystroke (docs/architecture.md, "Stdin across reconnects").
//!
//! - 10 MiB of random bytes piped into `jobs run -i` while a [`CutProxy`]
//!   cuts the CLI⇄API connection, or the API⇄worker one, several times,
//!   or while the API is killed and restarted: the container counts and
//!   hashes exactly the bytes that were piped in.
//! - Lines typed into a shell at a terminal, half of each before a cut and
//!   half after: each runs once.
//! - A client that does not ask for offsets (a browser console) gets the
//!   protocol as it was: raw input frames, `attached` without
//!   `input_offset`, no `input_ack`.
//!
//! Synchronisation: the test writes the CLI's stdin itself, and cuts when
//! the CLI has taken a given amount of it and is connected again (the
//! proxy counts connections); nothing sleeps for a fixed time. The CLI
//! holds at most 4 MiB unacknowledged, so the amount taken tracks the
//! transfer, and every cut falls while bytes are on their way.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use jobs_e2e::cli::Capture;
use jobs_e2e::docker::docker;
use jobs_e2e::poll::poll_until;
use jobs_e2e::proxy::CutProxy;
use jobs_e2e::pty::{PtyProcess, ends_with_prompt};
use jobs_e2e::{CliOutput, TestEnv, http, wait_until};
use sha2::{Digest, Sha256};

const START_DEADLINE: Duration = Duration::from_secs(60);
const ANSWER_DEADLINE: Duration = Duration::from_secs(30);
const CLI_DEADLINE: Duration = Duration::from_secs(180);
const TEN_MIB: usize = 10 * 1024 * 1024;
const MIB: usize = 1024 * 1024;

/// Counts and hashes its stdin in the container, once it has all of it.
const COUNT_AND_HASH: &str = "cat > /tmp/in; wc -c < /tmp/in; sha256sum < /tmp/in";

/// Bytes that are the same on every run, every value included.
fn random_bytes(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    (0..len)
        .map(|_| {
            // xorshift64
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// What [`COUNT_AND_HASH`] prints for `data`.
fn count_and_hash(data: &[u8]) -> String {
    let digest = Sha256::digest(data);
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("{}\n{hex}  -\n", data.len())
}

/// A `jobs run -i` whose stdin the test writes in the background, counting
/// what the CLI has taken.
struct PipedRun {
    child: Child,
    taken: Arc<AtomicUsize>,
    /// How many bytes the writer may give the CLI so far.
    gate: Arc<(Mutex<usize>, Condvar)>,
    writer: Option<JoinHandle<()>>,
    stdout: Option<Capture>,
    stderr: Option<Capture>,
}

impl PipedRun {
    fn spawn(command: Command, data: Vec<u8>) -> PipedRun {
        let total = data.len();
        PipedRun::spawn_gated(command, data, total)
    }

    /// Like [`Self::spawn`], the writer giving the CLI at most `open` bytes
    /// until [`Self::open_gate`] allows more.
    fn spawn_gated(mut command: Command, data: Vec<u8>, open: usize) -> PipedRun {
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("start jobs run -i");
        let mut pipe = child.stdin.take().expect("stdin is piped");
        let taken = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&taken);
        let gate = Arc::new((Mutex::new(open), Condvar::new()));
        let writer_gate = Arc::clone(&gate);
        let writer = std::thread::spawn(move || {
            let mut written = 0;
            for chunk in data.chunks(64 * 1024) {
                let (allowed, opened) = &*writer_gate;
                let mut allowed = allowed.lock().unwrap();
                while *allowed < written + chunk.len() {
                    allowed = opened.wait(allowed).unwrap();
                }
                drop(allowed);
                written += chunk.len();
                if pipe.write_all(chunk).is_err() {
                    return;
                }
                counter.fetch_add(chunk.len(), Ordering::SeqCst);
            }
            // Dropping the pipe is the end of stdin.
        });
        let stdout = Capture::start(child.stdout.take().expect("stdout is piped"));
        let stderr = Capture::start(child.stderr.take().expect("stderr is piped"));
        PipedRun {
            child,
            taken,
            gate,
            writer: Some(writer),
            stdout: Some(stdout),
            stderr: Some(stderr),
        }
    }

    /// Lets the writer give the CLI up to `bytes` in all.
    fn open_gate(&self, bytes: usize) {
        let (allowed, opened) = &*self.gate;
        *allowed.lock().unwrap() = bytes;
        opened.notify_all();
    }

    /// Waits until the CLI has taken at least `bytes` of its stdin.
    #[track_caller]
    fn wait_for_taken(&self, bytes: usize) {
        let taken = &self.taken;
        let what = format!("the CLI to take {bytes} bytes of stdin");
        wait_until(&what, ANSWER_DEADLINE, || {
            (taken.load(Ordering::SeqCst) >= bytes).then_some(())
        });
    }

    /// Waits until the CLI has printed at least `bytes` of output.
    #[track_caller]
    fn wait_for_echoed(&self, bytes: usize) {
        let stdout = self.stdout.as_ref().expect("stdout");
        let what = format!("the CLI to print {bytes} bytes");
        wait_until(&what, ANSWER_DEADLINE, || {
            (stdout.snapshot().len() >= bytes).then_some(())
        });
    }

    fn stderr_so_far(&self) -> String {
        let bytes = self
            .stderr
            .as_ref()
            .map(Capture::snapshot)
            .unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[track_caller]
    fn wait(mut self) -> CliOutput {
        let status = poll_until(CLI_DEADLINE, || self.child.try_wait().expect("try_wait"));
        let Some(status) = status else {
            let _ = self.child.kill();
            let _ = self.child.wait();
            panic!(
                "jobs run -i did not finish within {CLI_DEADLINE:?}; stderr: {}",
                self.stderr_so_far()
            );
        };
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
        CliOutput {
            command_line: "jobs run -i".into(),
            status,
            stdout: self.stdout.take().expect("stdout").finish(),
            stderr: self.stderr.take().expect("stderr").finish(),
        }
    }
}

/// Cuts every connection of `proxy` once the CLI has taken each of
/// `marks` bytes, each time after a fresh connection came through; returns
/// how many cuts hit a live connection. The run's writer (spawned gated)
/// gives the CLI no byte past a mark before its cut, so that a fast run (a
/// warm container) cannot end before the last one; then all of it.
#[track_caller]
fn cut_at(proxy: &CutProxy, run: &PipedRun, marks: &[usize]) -> usize {
    let mut cuts = 0;
    for (index, &mark) in marks.iter().enumerate() {
        run.open_gate(mark);
        let connections = index + 1;
        let what = format!("connection {connections} through the proxy");
        wait_until(&what, ANSWER_DEADLINE, || {
            (proxy.accepted() >= connections).then_some(())
        });
        run.wait_for_taken(mark);
        if proxy.cut() > 0 {
            cuts += 1;
        }
    }
    run.open_gate(usize::MAX);
    cuts
}

fn megabytes(marks: &[usize]) -> Vec<usize> {
    marks.iter().map(|mark| mark * MIB).collect()
}

#[test]
fn piped_stdin_crosses_cut_client_connections_exactly_once() {
    let mut env = TestEnv::start(2);
    let proxy = CutProxy::start(env.api_url().trim_start_matches("http://"));
    let data = random_bytes(TEN_MIB);
    let mut command = env.jobs_command(&["run", "-i", "--", "sh", "-c", COUNT_AND_HASH]);
    command.env("JOBS_API_URL", proxy.url());
    let run = PipedRun::spawn_gated(command, data.clone(), 0);

    let cuts = cut_at(&proxy, &run, &megabytes(&[1, 2, 3, 4, 5, 6, 7]));
    assert!(cuts >= 5, "most cuts hit a live connection: {cuts}");

    let output = run.wait();
    output
        .assert_success()
        .assert_stdout(count_and_hash(&data).as_bytes());
    let id = env.db_last_job_id();
    output.assert_stderr_contains(&format!("reconnected to job {id}"));
    env.finish();
}

#[test]
fn piped_stdin_crosses_cut_worker_connections_exactly_once() {
    // The worker reaches the API through the proxy; the CLI does not.
    let proxy = CutProxy::start_unrouted();
    let mut env = TestEnv::start_with_api_env(2, &[("JOBS_ADVERTISE_URL", &proxy.url())], &[]);
    proxy.route_to(env.api_url().trim_start_matches("http://"));
    let data = random_bytes(TEN_MIB);
    let run = PipedRun::spawn_gated(
        env.jobs_command(&["run", "-i", "--", "sh", "-c", COUNT_AND_HASH]),
        data.clone(),
        0,
    );

    let cuts = cut_at(&proxy, &run, &megabytes(&[1, 2, 3, 4, 5, 6, 7]));
    assert!(cuts >= 5, "most cuts hit a live connection: {cuts}");

    let output = run.wait();
    output
        .assert_success()
        .assert_stdout(count_and_hash(&data).as_bytes());
    assert!(
        proxy.accepted() > cuts,
        "the worker dialed back after each cut"
    );
    env.finish();
}

#[test]
fn piped_stdin_crosses_an_api_restart_exactly_once() {
    let mut env = TestEnv::start(2);
    let data = random_bytes(TEN_MIB);
    let run = PipedRun::spawn(
        env.jobs_command(&["run", "-i", "--", "sh", "-c", COUNT_AND_HASH]),
        data.clone(),
    );
    for mark in [2, 5] {
        run.wait_for_taken(mark * MIB);
        env.kill_api();
        env.restart_api();
    }

    let output = run.wait();
    output
        .assert_success()
        .assert_stdout(count_and_hash(&data).as_bytes());
    let id = env.db_last_job_id();
    output.assert_stderr_contains(&format!("reconnected to job {id}"));
    env.finish();
}

#[test]
fn piped_stdin_and_its_echo_cross_a_worker_kill_exactly_once() {
    // `cat` echoes its stdin: every byte must go in once and come back
    // once, though the worker holding the run is killed (SIGKILL) and
    // restarted in the middle, while bytes are on their way both ways.
    let mut env = TestEnv::start(2);
    let data = random_bytes(TEN_MIB);
    // The stdin is held at 2 MiB until the kill, so that the kill falls
    // while it is on its way however fast the pipeline runs; the rest goes
    // in while no worker holds the run.
    let run = PipedRun::spawn_gated(
        env.jobs_command(&["run", "-i", "--", "cat"]),
        data.clone(),
        2 * MIB,
    );
    run.wait_for_echoed(MIB);
    env.kill_worker();
    let taken_at_kill = run.taken.load(Ordering::SeqCst);
    run.open_gate(TEN_MIB);
    env.restart_worker();

    let output = run.wait();
    assert!(
        taken_at_kill < TEN_MIB,
        "the kill must fall while stdin is on its way ({taken_at_kill} bytes taken)"
    );
    let id = env.db_last_job_id();
    let job = env.db_job(&id).expect("the job is stored");
    assert_eq!((job.state.as_str(), job.attempt), ("succeeded", 1));
    // The stored log holds the same bytes, also those written while no
    // worker was there.
    let logs = env.jobs(&["logs", &id]);
    logs.assert_success();
    assert!(
        logs.stdout == data,
        "the stored log is the input byte for byte: {} bytes of {}",
        logs.stdout.len(),
        data.len()
    );
    output.assert_success();
    assert!(
        output.stdout == data,
        "the echo is the input byte for byte: {} bytes back of {}",
        output.stdout.len(),
        data.len()
    );
    env.finish();
}

fn occurrences(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|window| *window == needle)
        .count()
}

#[test]
fn keystrokes_across_cut_connections_reach_the_shell_once() {
    let mut env = TestEnv::start(2);
    let proxy = CutProxy::start(env.api_url().trim_start_matches("http://"));
    let mut command = env.jobs_command(&["run", "--", "sh"]);
    command.env("JOBS_API_URL", proxy.url());
    let mut pty = PtyProcess::spawn(command, 24, 80);
    pty.wait_for_output("the shell's prompt", START_DEADLINE, ends_with_prompt);

    let lines = 8;
    for line in 0..lines {
        let connections = line + 1;
        let what = format!("connection {connections} through the proxy");
        wait_until(&what, ANSWER_DEADLINE, || {
            (proxy.accepted() >= connections).then_some(())
        });
        // Half of the line before the cut, half after: the second half is
        // typed while the CLI is away, and goes once it is back.
        pty.type_bytes(format!("echo typed$(({line}+").as_bytes());
        assert!(proxy.cut() >= 1, "line {line}: the CLI was connected");
        let mark = pty.output_so_far().len();
        pty.type_bytes(b"1000))\r");
        let answer = format!("\r\ntyped{}\r\n", line + 1000);
        pty.wait_for_output(&answer, ANSWER_DEADLINE, |out| {
            occurrences(&out[mark.min(out.len())..], answer.as_bytes()) >= 1
                && ends_with_prompt(out)
        });
    }
    pty.type_bytes(b"exit 6\r");
    let (status, output) = pty.wait(CLI_DEADLINE);
    let text = String::from_utf8_lossy(&output);
    assert_eq!(status.code(), Some(6), "{text:?}");
    for line in 0..lines {
        let answer = format!("\r\ntyped{}\r\n", line + 1000);
        assert_eq!(
            occurrences(&output, answer.as_bytes()),
            1,
            "line {line} ran exactly once: {text:?}"
        );
    }
    env.finish();
}

#[test]
fn a_shell_at_a_terminal_outlives_its_worker_s_death() {
    // The worker holding a shell at a terminal is killed (SIGKILL); while
    // it is away the shell writes a line and half a line is typed; then it
    // is restarted: the line arrives once, the half line is finished and
    // runs once, and the terminal keeps its size.
    let mut env = TestEnv::start(2);
    let mut pty = PtyProcess::spawn(env.jobs_command(&["run", "--", "sh"]), 24, 80);
    pty.wait_for_output("the shell's prompt", START_DEADLINE, ends_with_prompt);
    let id = env.db_last_job_id();
    let mark = pty.output_so_far().len();
    pty.type_bytes(b"until [ -e /tmp/go ]; do sleep 0.05; done; echo away$((2+3))\r");
    pty.wait_for_output("the command's echo", ANSWER_DEADLINE, |out| {
        occurrences(&out[mark.min(out.len())..], b"echo away$((2+3))\r\n") >= 1
    });
    env.kill_worker();
    // The line is written with no worker there: into the shim's ring.
    // By its name: a warm container has no job label (JOBS_E2E_WARM).
    let container = format!("jobs-{id}-1");
    docker(&["exec", &container, "touch", "/tmp/go"]);
    wait_until(
        "the shell to write with no worker there",
        ANSWER_DEADLINE,
        || {
            let found = docker(&[
                "exec",
                &container,
                "sh",
                "-c",
                "grep -l away5 /.jobs/log/seg.* || true",
            ]);
            (!found.trim().is_empty()).then_some(())
        },
    );
    pty.type_bytes(b"echo typed$((7+");
    env.restart_worker();
    pty.wait_for_output(
        "the line written while no worker was there",
        ANSWER_DEADLINE,
        |out| occurrences(out, b"\r\naway5\r\n") >= 1,
    );
    pty.type_bytes(b"1000)); stty size\r");
    pty.wait_for_output("the finished line and the size", ANSWER_DEADLINE, |out| {
        occurrences(out, b"\r\ntyped1007\r\n24 80\r\n") >= 1 && ends_with_prompt(out)
    });
    pty.type_bytes(b"exit 6\r");
    let (status, output) = pty.wait(CLI_DEADLINE);
    let text = String::from_utf8_lossy(&output);
    assert_eq!(status.code(), Some(6), "{text:?}");
    for answer in ["\r\naway5\r\n", "\r\ntyped1007\r\n"] {
        assert_eq!(
            occurrences(&output, answer.as_bytes()),
            1,
            "{answer:?} exactly once: {text:?}"
        );
    }
    let id = env.db_last_job_id();
    let job = env.db_job(&id).expect("the job is stored");
    assert_eq!(
        (job.state.as_str(), job.attempt, job.exit_code),
        ("failed", 1, Some(6))
    );
    env.finish();
}

#[test]
fn a_client_without_offsets_keeps_the_raw_input_protocol() {
    use futures::{SinkExt, StreamExt};
    use reqwest_websocket::{Message, Upgrade};

    let mut env = TestEnv::start(2);
    let created = http::request(
        env.api_url(),
        "POST",
        "/v1/apps/demo/jobs",
        Some(&env.admin_token),
        Some(r#"{"command":["sh","-c","cat; echo done"],"interactive":{"tty":false}}"#),
    );
    assert_eq!(created.status, 201, "{created:?}");
    let id = created.json()["id"].as_str().expect("an id").to_owned();
    let url = format!("{}/v1/jobs/{id}/attach?after=0", env.api_url());
    let token = env.admin_token.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let (first, texts, stdout) = runtime.block_on(async move {
        let response = reqwest::Client::new()
            .get(url)
            .bearer_auth(token)
            .upgrade()
            .send()
            .await
            .expect("the attach request");
        let mut socket = response.into_websocket().await.expect("a WebSocket");
        let first = socket.next().await.expect("a first message").expect("read");
        socket
            .send(Message::Binary(b"raw bytes\n".to_vec().into()))
            .await
            .expect("send stdin");
        socket
            .send(Message::Text(r#"{"type":"eof"}"#.into()))
            .await
            .expect("send eof");
        let (mut texts, mut stdout) = (Vec::new(), Vec::new());
        let read_all = async {
            while let Some(Ok(message)) = socket.next().await {
                match message {
                    Message::Binary(frame) if frame.first() == Some(&1) => {
                        stdout.extend_from_slice(&frame[9..]);
                    }
                    Message::Text(text) => {
                        let ended = text.contains(r#""type":"ended""#);
                        texts.push(text);
                        if ended {
                            return;
                        }
                    }
                    _ => {}
                }
            }
        };
        tokio::time::timeout(CLI_DEADLINE, read_all)
            .await
            .expect("the run ends");
        (first, texts, stdout)
    });
    match first {
        Message::Text(text) => assert_eq!(
            text, r#"{"type":"attached","after":0}"#,
            "attached as before offsets"
        ),
        other => panic!("the first message is attached, not {other:?}"),
    }
    assert_eq!(String::from_utf8_lossy(&stdout), "raw bytes\ndone\n");
    assert!(
        texts.iter().all(|text| !text.contains("input_")),
        "no input messages for a client without offsets: {texts:?}"
    );
    assert!(
        texts
            .last()
            .is_some_and(|text| text.contains(r#""state":"succeeded""#)),
        "{texts:?}"
    );
    env.finish();
}
