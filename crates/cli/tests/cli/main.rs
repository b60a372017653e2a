//! The real `jobs` binary against a scripted fake of the API: the bytes it
//! prints, the exit codes it returns, and the requests it sends.

mod fake_api;

use std::process::{Output, Stdio};
use std::time::Duration;

use chrono::Utc;
use fake_api::{FakeApi, Reply, Request};
use jobs_core::wire::{Job, LogChunk, LogStream};
use jobs_core::{JobState, Size};
use serde_json::json;

fn job(state: JobState, exit_code: Option<i32>, reason: Option<&str>) -> Job {
    Job {
        id: "j1".into(),
        app: "web".into(),
        command: vec!["/bin/sh".into(), "-c".into(), "echo hi".into()],
        env: Default::default(),
        size: Size::M,
        timeout_seconds: 3600,
        state,
        attempt: 1,
        exit_code,
        reason: reason.map(String::from),
        cancel_requested: false,
        worker_id: None,
        created_at: Utc::now(),
        started_at: None,
        finished_at: None,
        interactive: None,
        uploads: Vec::new(),
        artifact_paths: Vec::new(),
        artifacts: Vec::new(),
        created_by: None,
        priority: Default::default(),
        group_id: None,
        task_index: None,
        queue: None,
    }
}

fn job_json(state: JobState, exit_code: Option<i32>, reason: Option<&str>) -> serde_json::Value {
    serde_json::to_value(job(state, exit_code, reason)).unwrap()
}

fn log_event(seq: i64, stream: LogStream, bytes: &[u8]) -> String {
    let chunk = LogChunk::new(seq, stream, Utc::now(), bytes);
    format!(
        "event: log\nid: {seq}\ndata: {}\n\n",
        serde_json::to_string(&chunk).unwrap()
    )
}

fn end_event(job: &serde_json::Value) -> String {
    format!("event: end\ndata: {job}\n\n")
}

fn not_found(message: &str) -> Reply {
    Reply::Json(
        404,
        json!({"error": {"code": "not_found", "message": message}}),
    )
}

/// The binary with a clean environment: no `JOBS_*` from the machine, stdin
/// not a terminal (as in CI), pointed at `api_url`.
fn jobs(api_url: &str, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_jobs"));
    command
        .args(args)
        .env_remove("JOBS_APP")
        .env_remove("JOBS_TOKEN")
        .env_remove("JOBS_ON_INTERRUPT")
        .env_remove("JOBS_SHELL_INTEGRATION")
        // The fake API is on loopback: keep a `jobs dev` token file of this
        // machine out of the requests.
        .env("JOBS_DEV_DATA_DIR", "/nonexistent/jobs-cli-tests")
        .env("JOBS_API_URL", api_url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

async fn run_jobs(api_url: &str, args: &[&str]) -> Output {
    let child = jobs(api_url, args).spawn().unwrap();
    tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("jobs did not finish within a minute")
        .unwrap()
}

fn stderr_text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn follow_resumes_after_a_drop_without_gap_or_duplicate() {
    let api = FakeApi::start(|request: &Request, earlier| match request.path() {
        "/v1/jobs/j1" => Reply::Json(200, job_json(JobState::Running, None, None)),
        "/v1/jobs/j1/logs/stream" if earlier == 0 => Reply::Events {
            events: vec![
                log_event(1, LogStream::Stdout, b"first\n"),
                log_event(2, LogStream::Stderr, b"warning\n"),
            ],
            // The connection ends without `end`, as when a proxy drops it.
            hold_open: false,
        },
        "/v1/jobs/j1/logs/stream" => Reply::Events {
            events: vec![
                // A replay of what the CLI already printed...
                log_event(2, LogStream::Stderr, b"warning\n"),
                // ...then new, binary, output.
                log_event(3, LogStream::Stdout, &[0xff, 0x00, b'z']),
                end_event(&job_json(JobState::Failed, Some(3), Some("exit status 3"))),
            ],
            hold_open: false,
        },
        _ => not_found("no such route"),
    })
    .await;

    let output = run_jobs(&api.url, &["follow", "j1"]).await;

    assert_eq!(output.stdout, b"first\n\xff\x00z");
    assert_eq!(output.stderr, b"warning\n");
    assert_eq!(output.status.code(), Some(3));
    let streams = api.requests_to("/v1/jobs/j1/logs/stream");
    assert_eq!(streams.len(), 2);
    assert_eq!(streams[0].header("last-event-id"), None);
    assert_eq!(streams[1].header("last-event-id"), Some("2"));
    assert!(
        streams[1].target.ends_with("?after=2"),
        "{}",
        streams[1].target
    );
}

#[tokio::test]
async fn follow_retries_while_the_api_is_unavailable() {
    let api = FakeApi::start(|request: &Request, earlier| match request.path() {
        "/v1/jobs/j1" => Reply::Json(200, job_json(JobState::Running, None, None)),
        _ if earlier < 2 => Reply::Json(
            503,
            json!({"error": {"code": "unavailable", "message": "the API is restarting"}}),
        ),
        _ => Reply::Events {
            events: vec![
                log_event(1, LogStream::Stdout, b"done\n"),
                end_event(&job_json(JobState::Succeeded, Some(0), None)),
            ],
            hold_open: false,
        },
    })
    .await;
    let output = run_jobs(&api.url, &["follow", "j1"]).await;
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(output.stdout, b"done\n");
    // Not at a terminal, the outage leaves stderr to the job alone.
    assert_eq!(output.stderr, b"");
    assert_eq!(api.requests_to("/v1/jobs/j1/logs/stream").len(), 3);
}

#[tokio::test]
async fn run_queues_the_job_and_exits_with_its_code() {
    let api = FakeApi::start(|request: &Request, _| match request.path() {
        "/v1/apps/web/jobs" => Reply::Json(201, job_json(JobState::Queued, None, None)),
        "/v1/jobs/j1/logs/stream" => Reply::Events {
            events: vec![
                log_event(1, LogStream::Stdout, b"hi\n"),
                end_event(&job_json(JobState::Succeeded, Some(0), None)),
            ],
            hold_open: false,
        },
        _ => not_found("no such route"),
    })
    .await;

    let output = run_jobs(
        &api.url,
        &[
            "--token",
            "secret",
            "-a",
            "web",
            "run",
            "-e",
            "A=1",
            "--timeout",
            "90s",
            "--",
            "echo hi",
        ],
    )
    .await;

    assert_eq!(output.stdout, b"hi\n");
    assert_eq!(stderr_text(&output), "");
    assert_eq!(output.status.code(), Some(0));
    let create = &api.requests_to("/v1/apps/web/jobs")[0];
    assert_eq!(create.method, "POST");
    assert_eq!(create.header("authorization"), Some("Bearer secret"));
    let body: serde_json::Value = serde_json::from_slice(&create.body).unwrap();
    assert_eq!(body["command"], json!(["/bin/sh", "-c", "echo hi"]));
    assert_eq!(body["env"], json!({"A": "1"}));
    assert_eq!(body["timeout_seconds"], json!(90));
}

#[tokio::test]
async fn run_detached_prints_only_the_id() {
    let api =
        FakeApi::start(|_: &Request, _| Reply::Json(201, job_json(JobState::Queued, None, None)))
            .await;
    let output = run_jobs(&api.url, &["-a", "web", "run", "-d", "--", "sleep", "60"]).await;
    assert_eq!(output.stdout, b"j1\n");
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(api.requests_to("/v1/jobs/j1/logs/stream").len(), 0);
}

#[tokio::test]
async fn platform_ends_print_their_reason_and_exit_as_the_contract_says() {
    for (state, code, reason, exit) in [
        (JobState::TimedOut, Some(143), "timed out after 1s", 124),
        (JobState::Canceled, None, "canceled by user", 125),
        (JobState::Lost, None, "worker lost", 125),
    ] {
        let api = FakeApi::start(move |request: &Request, _| match request.path() {
            "/v1/jobs/j1" => Reply::Json(200, job_json(state, code, Some(reason))),
            _ => Reply::Events {
                events: vec![end_event(&job_json(state, code, Some(reason)))],
                hold_open: false,
            },
        })
        .await;
        let output = run_jobs(&api.url, &["follow", "j1"]).await;
        assert_eq!(output.status.code(), Some(exit), "{state}");
        assert_eq!(
            stderr_text(&output),
            format!("jobs: job j1 {state}: {reason}\n")
        );
    }
}

#[tokio::test]
async fn api_errors_are_printed_and_exit_125() {
    let api = FakeApi::start(|_: &Request, _| not_found("job \"nope\" not found")).await;
    let output = run_jobs(&api.url, &["follow", "nope"]).await;
    assert_eq!(output.status.code(), Some(125));
    assert_eq!(stderr_text(&output), "jobs: job \"nope\" not found\n");

    let refused = FakeApi::start(|_: &Request, _| {
        Reply::Json(
            401,
            json!({"error": {"code": "unauthorized", "message": "a bearer token is required"}}),
        )
    })
    .await;
    let output = run_jobs(&refused.url, &["status", "j1"]).await;
    assert_eq!(output.status.code(), Some(125));
    assert_eq!(
        stderr_text(&output),
        "jobs: missing API token: pass --token, set JOBS_TOKEN, or start `jobsctl dev` \
         on this machine, which writes one for the CLI\n"
    );
    assert_eq!(refused.requests()[0].header("authorization"), None);
}

#[tokio::test]
async fn an_unreachable_api_exits_125() {
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{closed_port}");
    let output = run_jobs(&url, &["-a", "web", "run", "--", "true"]).await;
    assert_eq!(output.status.code(), Some(125));
    let stderr = stderr_text(&output);
    assert!(
        stderr.starts_with(&format!("jobs: cannot reach the API at {url}: ")),
        "{stderr}"
    );
}

#[tokio::test]
async fn command_line_mistakes_exit_2_before_any_request() {
    let api = FakeApi::start(|_: &Request, _| not_found("unexpected")).await;
    for (args, needle) in [
        (&["run", "--", "true"][..], "JOBS_APP"),
        (&["-a", "web", "run", "-e", "1BAD=x", "true"][..], "--env"),
        (
            &["-a", "web", "run", "--timeout", "forever", "true"][..],
            "--timeout",
        ),
        (&["-a", "web", "run", "-s", "XXL", "true"][..], "--size"),
        (
            &["-a", "web", "run", "-i", "-d", "psql"][..],
            "-i/--interactive cannot be used with -d/--detached",
        ),
        (
            &["-a", "web", "run", "-f", "/nonexistent/x.csv", "true"][..],
            "--file",
        ),
        (
            &["-a", "web", "run", "--artifact", "out.txt", "true"][..],
            "--artifact",
        ),
        (
            &["apps", "create", "Bad_Name", "--image", "x"][..],
            "is invalid",
        ),
        (&["wait", "j1", "--timeout", "0s"][..], "--timeout"),
        (&["list", "--state", "finished"][..], "--state"),
    ] {
        let output = run_jobs(&api.url, args).await;
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = stderr_text(&output);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    assert!(api.requests().is_empty());
}

/// Ctrl-C, or SIGTERM as a CI runner sends it, leaves the job running and
/// names the commands to come back with: `jobs` through the shell
/// integration, `jobsctl` anywhere else.
#[tokio::test]
async fn ctrl_c_and_sigterm_detach_and_say_how_to_come_back() {
    for (signal, integration, code, cli) in [
        (libc::SIGINT, None, 130, "jobsctl"),
        (libc::SIGTERM, Some("bash"), 143, "jobs"),
    ] {
        let api = FakeApi::start(|request: &Request, _| match request.path() {
            "/v1/jobs/j1" => Reply::Json(200, job_json(JobState::Running, None, None)),
            _ => Reply::Events {
                events: vec![log_event(1, LogStream::Stdout, b"working\n")],
                hold_open: true,
            },
        })
        .await;
        let mut command = jobs(&api.url, &["follow", "j1"]);
        if let Some(shell) = integration {
            command.env("JOBS_SHELL_INTEGRATION", shell);
        }
        let child = command.spawn().unwrap();
        api.until_requested("/v1/jobs/j1/logs/stream").await;
        // Give the CLI a moment to print the first chunk and wait for more.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let pid = child.id().unwrap() as i32;
        // SAFETY: sending a signal to our own child process has no memory effects.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
        let output = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(output.status.code(), Some(code), "signal {signal}");
        assert_eq!(output.stdout, b"working\n");
        let stderr = stderr_text(&output);
        assert!(stderr.contains("detached from job j1"), "{stderr}");
        assert!(
            stderr.contains(&format!("\n  follow it: {cli} follow j1")),
            "{stderr}"
        );
        assert!(
            stderr.contains(&format!("\n  cancel it: {cli} cancel j1")),
            "{stderr}"
        );
        assert!(
            api.requests_to("/v1/jobs/j1/cancel").is_empty(),
            "a detach cancels nothing"
        );
    }
}

#[tokio::test]
async fn tail_prints_the_last_lines_then_follows_from_there() {
    let api = FakeApi::start(|request: &Request, _| match request.path() {
        "/v1/jobs/j1" => Reply::Json(200, job_json(JobState::Running, None, None)),
        "/v1/jobs/j1/logs" if request.target.ends_with("after=0") => {
            let chunks = [
                LogChunk::new(1, LogStream::Stdout, Utc::now(), b"one\ntwo\n"),
                LogChunk::new(2, LogStream::Stdout, Utc::now(), b"three\n"),
            ];
            Reply::Json(
                200,
                json!({"chunks": chunks, "next_after": 2, "more": true}),
            )
        }
        "/v1/jobs/j1/logs" => {
            let chunks = [LogChunk::new(3, LogStream::Stderr, Utc::now(), b"four\n")];
            Reply::Json(
                200,
                json!({"chunks": chunks, "next_after": 3, "more": false}),
            )
        }
        _ => Reply::Events {
            events: vec![
                log_event(4, LogStream::Stdout, b"five\n"),
                end_event(&job_json(JobState::Succeeded, Some(0), None)),
            ],
            hold_open: false,
        },
    })
    .await;
    let output = run_jobs(&api.url, &["follow", "j1", "--tail", "2"]).await;
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(output.stdout, b"three\nfive\n");
    assert_eq!(output.stderr, b"four\n");
    let stream = &api.requests_to("/v1/jobs/j1/logs/stream")[0];
    assert_eq!(stream.header("last-event-id"), Some("3"));
}

#[tokio::test]
async fn logs_pages_through_everything_stored() {
    let api = FakeApi::start(|request: &Request, _| {
        let (chunks, next_after, more) = if request.target.ends_with("after=0") {
            (
                vec![LogChunk::new(1, LogStream::Stdout, Utc::now(), b"a\n")],
                1,
                true,
            )
        } else {
            (
                vec![LogChunk::new(2, LogStream::Stderr, Utc::now(), b"b\n")],
                2,
                false,
            )
        };
        Reply::Json(
            200,
            json!({"chunks": chunks, "next_after": next_after, "more": more}),
        )
    })
    .await;
    let output = run_jobs(&api.url, &["logs", "j1"]).await;
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(output.stdout, b"a\n");
    assert_eq!(output.stderr, b"b\n");
    assert_eq!(api.requests_to("/v1/jobs/j1/logs").len(), 2);
}

#[tokio::test]
async fn wait_exits_with_the_job_code_or_gives_up_with_125() {
    let api = FakeApi::start(|_: &Request, earlier| {
        if earlier < 2 {
            Reply::Json(200, job_json(JobState::Running, None, None))
        } else {
            Reply::Json(
                200,
                job_json(JobState::Failed, Some(7), Some("exit status 7")),
            )
        }
    })
    .await;
    let output = run_jobs(&api.url, &["wait", "j1"]).await;
    assert_eq!(output.status.code(), Some(7));
    assert_eq!(stderr_text(&output), "");

    let stuck =
        FakeApi::start(|_: &Request, _| Reply::Json(200, job_json(JobState::Queued, None, None)))
            .await;
    let output = run_jobs(&stuck.url, &["wait", "j1", "--timeout", "600ms"]).await;
    assert_eq!(output.status.code(), Some(125));
    assert_eq!(
        stderr_text(&output),
        "jobs: job j1 is still queued after 600ms\n"
    );
}

#[tokio::test]
async fn status_json_is_the_job_object() {
    let api = FakeApi::start(|_: &Request, _| {
        Reply::Json(
            200,
            job_json(JobState::Failed, Some(3), Some("exit status 3")),
        )
    })
    .await;
    let output = run_jobs(&api.url, &["status", "j1", "--json"]).await;
    assert_eq!(output.status.code(), Some(0));
    let shown: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(shown["id"], "j1");
    assert_eq!(shown["app"], "web");
    assert_eq!(shown["state"], "failed");
    assert_eq!(shown["exit_code"], 3);
    assert_eq!(shown["reason"], "exit status 3");

    let human = run_jobs(&api.url, &["show", "j1"]).await;
    let text = String::from_utf8(human.stdout).unwrap();
    assert!(text.contains("state:"), "{text}");
    assert!(text.contains("echo hi"), "{text}");
}
