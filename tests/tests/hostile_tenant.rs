//! A hostile tenant: a `run` token, or a job's own code, trying to reach
//! past its own job. One test per finding of the isolation audit (issue
//! 24, `docs/security.md`, "Threat model"); each failed before its fix.
//!
//! Synchronisation: each CLI call or HTTP request runs to its end
//! (bounded); rows are counted in the database before and after.

use std::time::Duration;

use jobs_e2e::docker::docker;
use jobs_e2e::{TestEnv, http, wait_until};

const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// Asserts a JSON error answer: `status`, `error.code` and `error.field`,
/// and a message that contains `needle`.
#[track_caller]
fn assert_refused(response: &http::HttpResponse, status: u16, field: Option<&str>, needle: &str) {
    assert_eq!(response.status, status, "{response:?}");
    let body = response.json();
    assert_eq!(body["error"]["field"].as_str(), field, "{response:?}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(needle), "{needle:?} in {response:?}");
}

/// Finding 8: a NUL in an idempotency key or a token's description was an
/// HTTP 500 on PostgreSQL. Every single-line text field now refuses
/// control and bidirectional formatting characters with a 422 naming it,
/// and a path segment with one is a 400, before any row is written.
#[test]
fn control_characters_in_text_fields_get_a_4xx_naming_the_field() {
    let mut env = TestEnv::start(1);
    let url = env.api_url().to_owned();
    let token = Some(env.admin_token.as_str());
    let jobs_before = env.db_count_jobs();
    let tokens_before = env.db_query_one("select count(*) from api_tokens");

    let keyed = http::request(
        &url,
        "POST",
        "/v1/apps/demo/jobs",
        token,
        Some(r#"{"command":["true"],"idempotency_key":"deploy\u0000-1"}"#),
    );
    assert_refused(&keyed, 422, Some("idempotency_key"), "U+0000");
    let escape = http::request(
        &url,
        "POST",
        "/v1/apps/demo/jobs",
        token,
        Some(r#"{"command":["true"],"idempotency_key":"k\u001b[2J"}"#),
    );
    assert_refused(&escape, 422, Some("idempotency_key"), "U+001B");
    let described = http::request(
        &url,
        "POST",
        "/v1/tokens",
        token,
        Some(r#"{"role":"read","description":"ci\u0000"}"#),
    );
    assert_refused(&described, 422, Some("description"), "U+0000");
    let reversed = http::request(
        &url,
        "POST",
        "/v1/tokens",
        token,
        Some(r#"{"role":"read","description":"ci \u202etoken"}"#),
    );
    assert_refused(
        &reversed,
        422,
        Some("description"),
        "bidirectional formatting character U+202E",
    );
    let artifact = http::request(
        &url,
        "POST",
        "/v1/apps/demo/jobs",
        token,
        Some(r#"{"command":["true"],"artifacts":["/tmp/a\nb"]}"#),
    );
    assert_refused(&artifact, 422, Some("artifacts"), "U+000A");
    for path in ["/v1/jobs/job%00x", "/v1/tokens/t%00"] {
        let method = if path.starts_with("/v1/tokens") {
            "DELETE"
        } else {
            "GET"
        };
        let response = http::request(&url, method, path, token, None);
        assert_refused(&response, 400, Some("path"), "U+0000");
    }
    let upload = http::request_with_headers(
        &url,
        "POST",
        "/v1/apps/demo/uploads?name=report%E2%80%AEvsc.exe&size=0",
        token,
        None,
        &[("Content-Length", "0")],
    );
    assert_refused(&upload, 422, Some("name"), "U+202E");

    // The CLI says the same before it sends anything.
    env.jobs(&["run", "--idempotency-key", "a\u{7}b", "--", "true"])
        .assert_usage_error("U+0007");
    assert_eq!(env.db_count_jobs(), jobs_before);
    assert_eq!(
        env.db_query_one("select count(*) from api_tokens"),
        tokens_before
    );
    env.finish();
}

/// Finding 3: `--artifact /tmp/../.jobs` made the shim copy its own
/// directory into itself, 1,019 levels deep (295 MB). Artifact paths must
/// now be in normal form (422 naming the path; the CLI exits 2 before any
/// upload), and the shim's copy never leaves the `/tmp` tmpfs, so a
/// symlink that leads back into `/.jobs` copies nothing.
#[test]
fn artifact_paths_are_normalised_and_their_copy_stays_on_tmp() {
    let mut env = TestEnv::start(1);
    let url = env.api_url().to_owned();
    let token = Some(env.admin_token.as_str());
    let jobs_before = env.db_count_jobs();
    for (path, why) in [
        ("/tmp/../.jobs", "has a .. segment"),
        ("/tmp/./out", "has a . segment"),
        ("/tmp//out", "has an empty segment"),
    ] {
        let body = format!(r#"{{"command":["true"],"artifacts":["{path}"]}}"#);
        let response = http::request(&url, "POST", "/v1/apps/demo/jobs", token, Some(&body));
        assert_refused(
            &response,
            422,
            Some("artifacts"),
            &format!("artifact path {path:?} {why}"),
        );
    }
    let file = env.log_dir.join("data.csv");
    std::fs::write(&file, b"a,b\n").unwrap();
    let uploads_before = env.db_query_one("select count(*) from uploads");
    env.jobs(&[
        "run",
        "-f",
        &file.display().to_string(),
        "--artifact",
        "/tmp/../.jobs",
        "--",
        "true",
    ])
    .assert_usage_error(r#"artifact path "/tmp/../.jobs" has a .. segment"#);
    assert_eq!(
        env.db_query_one("select count(*) from uploads"),
        uploads_before,
        "nothing is uploaded"
    );
    assert_eq!(env.db_count_jobs(), jobs_before);

    // The same trick through a symlink: /tmp/jobs -> /.jobs. The shim copies
    // only what lies on the /tmp tmpfs, so the escaping path is not there
    // and the honest one beside it is collected whole.
    let script = "ln -s /.jobs /tmp/jobs && mkdir /tmp/out && echo kept > /tmp/out/k.txt \
                  && echo done";
    env.jobs_with_timeout(
        &[
            "run",
            "--artifact",
            "/tmp/jobs/art",
            "--artifact",
            "/tmp/out",
            "--",
            "sh",
            "-c",
            script,
        ],
        RUN_TIMEOUT,
    )
    .assert_success()
    .assert_stdout(b"done\n");
    let job_id = env.db_last_job_id();
    let status = env.status(&job_id);
    let artifacts = status["artifacts"].as_array().expect("artifacts");
    assert_eq!(
        artifacts[0]["error"], "no such file or directory",
        "{status}"
    );
    assert!(artifacts[1]["error"].is_null(), "{status}");
    assert!(
        artifacts[1]["size"]
            .as_u64()
            .is_some_and(|size| size < 16 * 1024),
        "{status}"
    );
    env.finish();
}

/// Finding 9: a root job appended to its file in `/tmp/uploads`, though
/// the docs call uploads read-only. The uploads' volume is now mounted
/// read-only: no job, root included, can change, add or chmod a file
/// there, and every upload still reads back byte for byte.
#[test]
fn uploads_are_read_only_even_to_a_root_job() {
    let mut env = TestEnv::start(1);
    let file = env.log_dir.join("data.csv");
    std::fs::write(&file, b"a,b\n1,2\n").unwrap();
    let script = "id -u; cat /tmp/uploads/data.csv; \
                  echo x >> /tmp/uploads/data.csv && echo appended; \
                  touch /tmp/uploads/new && echo created; \
                  chmod 666 /tmp/uploads/data.csv && echo chmodded; \
                  rm -f /tmp/uploads/data.csv && echo removed; \
                  cat /tmp/uploads/data.csv";
    let output = env.jobs_with_timeout(
        &[
            "run",
            "-f",
            &file.display().to_string(),
            "--",
            "sh",
            "-c",
            script,
        ],
        RUN_TIMEOUT,
    );
    output
        .assert_success()
        .assert_stdout(b"0\na,b\n1,2\na,b\n1,2\n")
        .assert_stderr_contains("Read-only file system");
    // The volume and its loader go with the job: no loader is left, and
    // every volume left is held by a container (a warm one, with the pool).
    let label = format!("label={}", env.worker_label());
    wait_until(
        "the job's loader and volume are removed",
        RUN_TIMEOUT,
        || {
            let loaders = docker(&[
                "ps",
                "-aq",
                "--filter",
                "label=jobs.uploads_loader",
                "--filter",
                &label,
            ]);
            let volumes = docker(&["volume", "ls", "-q", "--filter", &label]);
            let unheld = volumes.lines().filter(|volume| {
                docker(&["ps", "-aq", "--filter", &format!("volume={volume}")])
                    .trim()
                    .is_empty()
            });
            (loaders.trim().is_empty() && unheld.count() == 0).then_some(())
        },
    );
    env.finish();
}

/// Finding 6, output: 1 GiB of one job's output went into the shared
/// database in 20 s. An app's `--max-output` now caps what one job keeps:
/// past it nothing more is stored, one marked line says how many bytes were
/// not kept, and the job ends with its own exit code.
#[test]
fn a_job_past_its_output_cap_keeps_the_cap_and_its_exit_code() {
    let mut env = TestEnv::start(1);
    env.jobs(&["apps", "set", "demo", "--max-output", "64KiB"])
        .assert_success();
    let shown = env.jobs(&["apps", "show", "demo"]);
    shown.assert_success();
    assert_eq!(
        shown.field_line("max output").as_deref(),
        Some("max output: 65536 bytes (64 KiB)")
    );
    // 1,000,000 bytes of x, a newline, then exit 3.
    let script = "head -c 1000000 /dev/zero | tr '\\0' x; echo; exit 3";
    let output = env.jobs_with_timeout(&["run", "--", "sh", "-c", script], RUN_TIMEOUT);
    output.assert_code(3);
    assert_eq!(output.stdout, vec![b'x'; 64 * 1024]);
    let marker = "[jobs: output limit of 65536 bytes (64 KiB) reached: \
                  934465 more bytes were not kept]\n";
    assert_eq!(output.stderr_text(), format!("\n{marker}"));
    let job_id = env.db_last_job_id();
    assert_eq!(
        env.db_query_one(&format!(
            "select output_bytes from jobs where id = '{job_id}'"
        )),
        (64 * 1024 + 1 + marker.len()) as i64
    );
    env.finish();
}

/// Finding 6, storage: nothing capped an app's total storage. With
/// `--storage-quota`, `apps show` reports the use, and past the quota a
/// new job or upload is refused naming it, until the quota is lifted.
#[test]
fn an_app_past_its_storage_quota_gets_its_submissions_refused() {
    let mut env = TestEnv::start(1);
    env.jobs(&["apps", "set", "demo", "--storage-quota", "100KiB"])
        .assert_success();
    let script = "head -c 204800 /dev/zero | tr '\\0' y";
    let output = env.jobs_with_timeout(&["run", "--", "sh", "-c", script], RUN_TIMEOUT);
    output.assert_success();
    assert_eq!(output.stdout.len(), 204_800);
    let shown = env.jobs(&["apps", "show", "demo"]);
    shown.assert_success();
    assert_eq!(
        shown.field_line("storage").as_deref(),
        Some("storage: 204800 bytes (200 KiB) used of 102400 bytes (100 KiB)")
    );
    let jobs_before = env.db_count_jobs();
    env.jobs(&["run", "--", "true"]).assert_cli_error(
        125,
        "jobs: app \"demo\" stores 204800 bytes (200 KiB) of logs, uploads and artifacts: \
         its storage quota is 102400 bytes (100 KiB)",
    );
    let file = env.log_dir.join("data.csv");
    std::fs::write(&file, b"a,b\n").unwrap();
    env.jobs(&["run", "-f", &file.display().to_string(), "--", "true"])
        .assert_cli_error(125, "its storage quota is 102400 bytes (100 KiB)");
    let url = env.api_url().to_owned();
    let response = http::request(
        &url,
        "POST",
        "/v1/apps/demo/jobs",
        Some(env.admin_token.as_str()),
        Some(r#"{"command":["true"]}"#),
    );
    assert_refused(&response, 429, None, "storage_quota_bytes");
    assert_eq!(response.json()["error"]["code"], "storage_quota_exceeded");
    assert_eq!(env.db_count_jobs(), jobs_before);
    assert_eq!(env.db_query_one("select count(*) from uploads"), 0);

    // Another app of the installation is not held back by demo's use.
    env.jobs(&["apps", "create", "other", "--image", jobs_e2e::TEST_IMAGE])
        .assert_success();
    env.jobs(&["-a", "other", "run", "--", "echo", "fine"])
        .assert_success()
        .assert_stdout(b"fine\n");

    env.jobs(&["apps", "set", "demo", "--storage-quota", "none"])
        .assert_success();
    env.jobs(&["run", "--", "echo", "again"])
        .assert_success()
        .assert_stdout(b"again\n");
    env.finish();
}

/// Accepts every connection on `listener` and answers `marker`, so that a
/// job can tell it reached this port of the host.
fn answer_every_connection(listener: std::net::TcpListener, marker: &'static str) {
    std::thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            let _ = std::io::Write::write_all(&mut stream, marker.as_bytes());
        }
    });
}

/// Finding 1: every job sat on Docker's default bridge. A job of one app
/// read a listening job of another app, and a job reached RabbitMQ on the
/// worker host through the bridge's gateway. Each app's jobs now run on a
/// network of their own with no traffic between its containers, and the
/// host's ports are closed to jobs but for those the operator allows.
#[test]
fn jobs_reach_neither_another_apps_jobs_nor_the_worker_host() {
    let closed = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let allowed = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    let allowed_port = allowed.local_addr().unwrap().port();
    answer_every_connection(closed, "host-closed-port\n");
    answer_every_connection(allowed, "host-allowed-port\n");
    let options = jobs_e2e::TestEnvOptions::new(2)
        .worker_env("JOBS_HOST_FIREWALL", "true")
        .worker_env("JOBS_HOST_PORTS_ALLOWED", &allowed_port.to_string());
    let mut env = TestEnv::start_with(options);
    env.jobs(&["apps", "create", "other", "--image", jobs_e2e::TEST_IMAGE])
        .assert_success();

    // A job of demo serves a secret on its port 8080 and says its address.
    let server = env.run_detached(&[
        "--",
        "sh",
        "-c",
        "hostname -i; nc -ll -p 8080 -e echo demo-secret",
    ]);
    let address = wait_until("the server's address", RUN_TIMEOUT, || {
        let logs = env.jobs(&["logs", &server]).stdout_text();
        let address = logs.trim().to_owned();
        (!address.is_empty()).then_some(address)
    });
    // It does serve: the host, outside every app, reads the secret.
    wait_until("the server to answer the host", RUN_TIMEOUT, || {
        let mut stream = std::net::TcpStream::connect((address.as_str(), 8080)).ok()?;
        let mut answer = String::new();
        std::io::Read::read_to_string(&mut stream, &mut answer).ok()?;
        (answer == "demo-secret\n").then_some(())
    });

    // Neither a job of another app nor another job of demo itself reads it.
    let probe = format!("timeout 5 nc -w 3 {address} 8080 </dev/null; echo tried");
    for app in ["other", "demo"] {
        env.jobs_with_timeout(&["-a", app, "run", "--", "sh", "-c", &probe], RUN_TIMEOUT)
            .assert_success()
            .assert_stdout(b"tried\n");
    }

    // The host through the gateway: the closed port is not reached, the
    // port the operator allows is.
    let host_probe = format!(
        "gw=$(ip route | awk '/default/ {{print $3}}'); \
         timeout 5 nc -w 3 $gw {closed_port} </dev/null; \
         timeout 5 nc -w 3 $gw {allowed_port} </dev/null; true"
    );
    env.jobs_with_timeout(
        &["-a", "other", "run", "--", "sh", "-c", &host_probe],
        RUN_TIMEOUT,
    )
    .assert_success()
    .assert_stdout(b"host-allowed-port\n");
    env.jobs(&["cancel", &server]).assert_success();
    env.finish();
}
