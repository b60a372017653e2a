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

/// The one container of `job_id`, once it exists: found by its name
/// (`jobs-ID-ATTEMPT`), which a warm container also takes with its job,
/// unlike the job's label.
fn container_of(job_id: &str) -> String {
    wait_until("the job's container", RUN_TIMEOUT, || {
        let found = docker(&["ps", "-aq", "--filter", &format!("name=jobs-{job_id}-")]);
        found.split_whitespace().next().map(str::to_owned)
    })
}

fn file_exists_in(container: &str, path: &str) -> bool {
    std::process::Command::new("docker")
        .args(["exec", container, "test", "-f", path])
        .stdin(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// The peak resident memory of a process, in bytes (`VmHWM`).
fn peak_memory(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("its status");
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .expect("a VmHWM line");
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .expect("a number of kB");
    kib * 1024
}

/// Finding 7, the ring: a job rewrote its output log (`/.jobs/log/seg.0`)
/// with a record header that claimed 1.5 GB, and a restarted worker
/// buffered everything after it, waiting for the record's end. The reader
/// now refuses a record longer than the shim ever writes (64 KiB): the
/// read-back ends with a marked line, the worker's memory stays small, and
/// the job ends with its own exit code.
#[test]
fn a_forged_output_log_neither_swells_a_restarted_worker_nor_changes_the_exit_code() {
    let mut env = TestEnv::start(1);
    // The header (JOBSLOG1, segment 0, offsets 0 and 0), then a stdout
    // record of 0x60000000 bytes (1.5 GiB), and 200 MiB of it.
    let script = "echo before; while [ ! -f /tmp/go ]; do sleep 0.1; done; \
        { printf JOBSLOG1; head -c 24 /dev/zero; printf '\\001\\000\\000\\000\\140'; \
          head -c 209715200 /dev/zero; } > /.jobs/log/seg.0 && touch /tmp/forged; \
        while [ ! -f /tmp/end ]; do sleep 0.1; done; exit 7";
    let job = env.run_detached(&["--", "sh", "-c", script]);
    wait_until("the first output", RUN_TIMEOUT, || {
        (env.jobs(&["logs", &job]).stdout == b"before\n").then_some(())
    });
    let container = container_of(&job);

    env.kill_worker();
    docker(&["exec", &container, "touch", "/tmp/go"]);
    wait_until("the forged log, with no worker", RUN_TIMEOUT, || {
        file_exists_in(&container, "/tmp/forged").then_some(())
    });
    env.restart_worker();
    let (_, worker) = env.server_pids();
    docker(&["exec", &container, "touch", "/tmp/end"]);
    env.jobs_with_timeout(&["wait", &job], RUN_TIMEOUT)
        .assert_code(7);
    let peak = peak_memory(worker);
    assert!(
        peak < 100 << 20,
        "the restarted worker peaked at {peak} bytes"
    );
    let status = env.status(&job);
    assert_eq!(status["exit_code"], 7, "{status}");
    assert_eq!(status["attempt"], 1, "{status}");
    let logs = env.jobs(&["logs", &job]);
    logs.assert_success()
        .assert_stdout(b"before\n")
        .assert_stderr_contains(
            "[jobs: the rest of the output written while the worker was away is not readable",
        );
    env.finish();
}

/// Finding 7, the shim: a root job replaced `/.jobs/shim`, which a
/// restarted worker then ran (`shim cat`), and could have moved `/.jobs`
/// away and made a new one. `/.jobs` is now a read-only volume mounted at
/// `/.jobs` itself: the mount point cannot be moved or removed, nor its
/// files written, so the worker runs the real shim and the job's output
/// and exit code are what it wrote.
#[test]
fn a_root_job_cannot_replace_the_shim_a_restarted_worker_runs() {
    let mut env = TestEnv::start(1);
    // A shim that gives a worker `before`, a forged line and the run's
    // end, as `shim cat` would print its ring.
    let script = "echo before; while [ ! -f /tmp/go ]; do sleep 0.1; done; \
        { printf JOBSLOG1; head -c 24 /dev/zero; \
          printf '\\001\\023\\000\\000\\000before\\nFORGED-SHIM\\n\\005\\000\\000\\000\\000'; \
        } > /tmp/fake-ring; \
        printf '#!/bin/sh\\ncat /tmp/fake-ring\\n' > /tmp/forged; chmod 755 /tmp/forged; \
        id -u >&2; \
        mv /.jobs /.jobs-moved && mkdir -p /.jobs/log && cp /tmp/forged /.jobs/shim; \
        rm -f /.jobs/shim; cp /tmp/forged /.jobs/shim; \
        touch /tmp/forged-in; \
        while [ ! -f /tmp/end ]; do sleep 0.1; done; echo after; exit 5";
    let job = env.run_detached(&["--", "sh", "-c", script]);
    wait_until("the first output", RUN_TIMEOUT, || {
        (env.jobs(&["logs", &job]).stdout == b"before\n").then_some(())
    });
    let container = container_of(&job);

    env.kill_worker();
    docker(&["exec", &container, "touch", "/tmp/go"]);
    wait_until("the job's attempts, with no worker", RUN_TIMEOUT, || {
        file_exists_in(&container, "/tmp/forged-in").then_some(())
    });
    env.restart_worker();
    docker(&["exec", &container, "touch", "/tmp/end"]);
    env.jobs_with_timeout(&["wait", &job], RUN_TIMEOUT)
        .assert_code(5);
    let logs = env.jobs(&["logs", &job]);
    logs.assert_success()
        .assert_stdout(b"before\nafter\n")
        .assert_stderr_contains("Read-only file system");
    assert!(
        logs.stderr_text().starts_with("0\n"),
        "the job ran as root: {:?}",
        logs.stderr_text()
    );
    let status = env.status(&job);
    assert_eq!(status["exit_code"], 5, "{status}");
    env.finish();
}

/// Finding 2, `/.jobs`: a read-only-root job wrote 900 MB into `/.jobs`,
/// on the host's disk, past the cap of its `/tmp`. What a job can write
/// there (the shim's log and artifact copies) is now measured while it
/// runs, and a job over the cap (the ring's 64 MiB, its `/tmp`'s size and
/// 16 MiB) is stopped with the reason; its volumes go with it.
#[test]
fn a_job_that_fills_jobs_past_its_cap_is_stopped() {
    let mut env = TestEnv::start(1);
    env.jobs(&["apps", "set", "demo", "--read-only-root"])
        .assert_success();
    // Up to 3 GiB in files of 16 MiB, into the artifacts' directory.
    let script = "i=0; while [ $i -lt 192 ]; do \
        head -c 16777216 /dev/zero > /.jobs/art/f$i || exit 1; i=$((i+1)); done; \
        echo wrote-all";
    let output = env.jobs_with_timeout(&["run", "--", "sh", "-c", script], RUN_TIMEOUT);
    let job = env.db_last_job_id();
    let status = env.status(&job);
    assert_eq!(status["state"], "failed", "{status} {output:?}");
    let reason = status["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("disk limit exceeded (/.jobs holds ")
            && reason.ends_with(" over the limit of 620756992 bytes (592 MiB) at size M)"),
        "{status}"
    );
    assert!(!output.stdout_text().contains("wrote-all"), "{output:?}");
    env.finish();
}

/// Finding 2, the writable layer: a size-S job wrote 4 GB into its own
/// files, on the host's disk. Each size now has a disk limit (S 1 GiB to
/// XL 8 GiB), measured as Docker's `SizeRw` while the job runs; a job past
/// it is stopped with a reason that names the limit and the size.
#[test]
fn a_job_past_its_sizes_disk_limit_is_stopped() {
    let mut env = TestEnv::start(1);
    // Up to 3 GiB in files of 64 MiB, outside /tmp and every volume.
    let script = "mkdir -p /fill && i=0; while [ $i -lt 48 ]; do \
        head -c 67108864 /dev/zero > /fill/f$i || exit 1; i=$((i+1)); done; \
        echo wrote-all";
    let output = env.jobs_with_timeout(&["run", "-s", "S", "--", "sh", "-c", script], RUN_TIMEOUT);
    let job = env.db_last_job_id();
    let status = env.status(&job);
    assert_eq!(status["state"], "failed", "{status} {output:?}");
    let reason = status["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("disk limit exceeded (its own files hold ")
            && reason.ends_with(" over the limit of 1073741824 bytes (1 GiB) at size S)"),
        "{status}"
    );
    assert!(!output.stdout_text().contains("wrote-all"), "{output:?}");
    env.finish();
}

/// Removes a Docker network and a container of a test, whatever happens.
struct OperatorNetwork {
    network: String,
    container: String,
}

impl Drop for OperatorNetwork {
    fn drop(&mut self) {
        for args in [
            vec!["rm", "--force", self.container.as_str()],
            vec!["network", "rm", self.network.as_str()],
        ] {
            let _ = std::process::Command::new("docker")
                .args(&args)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

/// Finding 1, the operator's way through: an admin attaches an app to an
/// operator's Docker network (`--network NAME`) where its database lives,
/// and its jobs reach the database by name; the host's network and an
/// app's own network are refused by name; `default` goes back.
#[test]
fn an_admin_attaches_an_app_to_an_operators_network() {
    let mut env = TestEnv::start(1);
    let suffix = uuid::Uuid::now_v7().simple().to_string();
    let fixture = OperatorNetwork {
        network: format!("e2e-operator-{suffix}"),
        container: format!("e2e-database-{suffix}"),
    };
    docker(&["network", "create", &fixture.network]);
    docker(&[
        "run",
        "--detach",
        "--network",
        &fixture.network,
        "--name",
        &fixture.container,
        jobs_e2e::TEST_IMAGE,
        "nc",
        "-ll",
        "-p",
        "5432",
        "-e",
        "echo",
        "database-answers",
    ]);
    env.jobs(&["apps", "set", "demo", "--network", &fixture.network])
        .assert_success();
    let shown = env.jobs(&["apps", "show", "demo"]);
    assert_eq!(
        shown.field_line("network"),
        Some(format!("network: {}", fixture.network))
    );
    let probe = format!("timeout 5 nc -w 3 {} 5432 </dev/null", fixture.container);
    let reached = wait_until("the job to reach the database", RUN_TIMEOUT, || {
        let output = env.jobs_with_timeout(&["run", "--", "sh", "-c", &probe], RUN_TIMEOUT);
        (output.stdout == b"database-answers\n").then_some(output)
    });
    reached.assert_success();

    env.jobs(&["apps", "set", "demo", "--network", "host"])
        .assert_usage_error(r#"network "host" is the host's own network"#);
    env.jobs(&[
        "apps",
        "set",
        "demo",
        "--network",
        "jobs-app-0123abcd-other",
    ])
    .assert_usage_error("is an app's own network");
    env.jobs(&["apps", "set", "demo", "--network", "default"])
        .assert_success();
    let shown = env.jobs(&["apps", "show", "demo"]);
    assert_eq!(
        shown.field_line("network").as_deref(),
        Some("network: default (the app's own)")
    );
    env.finish();
    drop(fixture);
}
