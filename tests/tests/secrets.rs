//! Secret config vars and the per-app active-job limit, through the real
//! binaries:
//! - `apps set --secret` hides the value in `apps show` and in the raw API
//!   answer, while the job's command really gets it;
//! - the value is masked (`***`) in the stored logs, so in `jobs logs` and
//!   in `jobs run`'s own output, on stdout and stderr, even when written in
//!   two parts with a pause between them;
//! - the value is in no server log of the test;
//! - with `JOBS_MAX_QUEUED_JOBS_PER_APP=2`, a third queued job is refused
//!   with 429 `too_many_jobs` (the CLI exits 125 with the API's message)
//!   and nothing is created.
//!
//! Synchronisation: each CLI and HTTP call runs to its end (bounded); job
//! states are awaited by polling with a deadline, never a fixed sleep.

use std::time::Duration;

use jobs_e2e::{DEMO_APP, TestEnv, http};

const SECRET: &str = "hunter2-very-secret";
/// What the API shows instead of a secret value.
const API_MASK: &str = "********";

/// Every server log of the test, as one text.
fn server_logs(env: &TestEnv) -> String {
    let mut all = String::new();
    for entry in std::fs::read_dir(&env.log_dir).expect("the log directory") {
        let path = entry.expect("a directory entry").path();
        if path.extension().is_some_and(|ext| ext == "log") {
            let bytes = std::fs::read(&path).expect("a server log");
            all.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    all
}

#[test]
fn secret_config_vars_are_masked_in_answers_logs_and_server_logs() {
    // Debug logging in the API, so that the check below covers the most
    // talkative level.
    let env = TestEnv::start_with_api_env(1, &[("RUST_LOG", "debug")], &[]);
    let secret_arg = format!("DB_PASSWORD={SECRET}");
    let set = env.jobs(&[
        "apps",
        "set",
        DEMO_APP,
        "--secret",
        &secret_arg,
        "-e",
        "PLAIN=shown",
    ]);
    set.assert_success();
    assert!(!set.stdout_text().contains(SECRET), "{set:?}");

    let show = env.jobs(&["apps", "show", DEMO_APP]);
    show.assert_success();
    let text = show.stdout_text();
    assert!(!text.contains(SECRET), "{text}");
    assert!(text.contains(&format!("DB_PASSWORD={API_MASK}")), "{text}");
    assert!(text.contains("PLAIN=shown"), "{text}");

    for path in [format!("/v1/apps/{DEMO_APP}"), "/v1/apps".to_owned()] {
        let raw = http::request(env.api_url(), "GET", &path, Some(&env.admin_token), None);
        assert_eq!(raw.status, 200, "{raw:?}");
        assert!(!raw.body.contains(SECRET), "{raw:?}");
        assert!(raw.body.contains(API_MASK), "{raw:?}");
    }
    let json = http::request(
        env.api_url(),
        "GET",
        &format!("/v1/apps/{DEMO_APP}"),
        Some(&env.admin_token),
        None,
    )
    .json();
    assert_eq!(
        json["secret_env"],
        serde_json::json!(["DB_PASSWORD"]),
        "{json}"
    );

    // The command gets the real value; its output holds only the mask.
    let script = r#"echo "pw=$DB_PASSWORD"; printf %s "$DB_PASSWORD" | cut -c1-5; printf %s "$DB_PASSWORD" >&2"#;
    let run = env.jobs(&["run", "--", "sh", "-c", script]);
    run.assert_success();
    assert_eq!(run.stdout_text(), "pw=***\nhunte\n", "{run:?}");
    assert!(run.stderr_text().contains("***"), "{run:?}");
    assert!(!run.stderr_text().contains(SECRET), "{run:?}");
    let job_id = env.db_last_job_id();
    let logs = env.jobs(&["logs", &job_id]);
    logs.assert_success();
    assert_eq!(logs.stdout_text(), "pw=***\nhunte\n", "{logs:?}");
    assert!(!logs.stderr_text().contains(SECRET), "{logs:?}");

    // Written in two parts, longer apart than the pump's flush interval; on
    // stdout, the stderr write right after the end may arrive first.
    let split = r#"printf 'hunter2-'; sleep 0.3; printf 'very-secret\n'; printf 'x-hunter2-' >&2; sleep 0.3; printf 'very-secret-y' >&2"#;
    let run = env.jobs(&["run", "--", "sh", "-c", split]);
    run.assert_success();
    assert_eq!(run.stdout_text(), "***\n", "{run:?}");
    assert!(run.stderr_text().contains("x-***-y"), "{run:?}");

    // A job's own `-e` override is not secret: it is shown as given.
    let run = env.jobs(&[
        "run",
        "-e",
        "DB_PASSWORD=not-secret-now",
        "--",
        "sh",
        "-c",
        "echo $DB_PASSWORD",
    ]);
    run.assert_success();
    assert_eq!(run.stdout_text(), "not-secret-now\n", "{run:?}");

    let servers = server_logs(&env);
    assert!(!servers.is_empty(), "the servers wrote no log");
    assert!(
        !servers.contains(SECRET),
        "a server log holds the secret value (see {})",
        env.log_dir.display()
    );
}

#[test]
fn an_app_at_its_queued_job_limit_refuses_more_with_429() {
    let env = TestEnv::start_with_api_env(1, &[("JOBS_MAX_QUEUED_JOBS_PER_APP", "2")], &[]);
    // The one slot runs the first job; a running job is not counted.
    let running = env.run_detached(&["--", "sleep", "300"]);
    env.wait_for_state(&running, "running", Duration::from_secs(60));
    let first = env.run_detached(&["--", "true"]);
    let second = env.run_detached(&["--", "true"]);
    let before = env.db_count_jobs();

    env.jobs(&["run", "-d", "--", "true"]).assert_cli_error(
        125,
        "app \"demo\" already has 2 queued jobs: the limit is 2 \
         (JOBS_MAX_QUEUED_JOBS_PER_APP); wait for some to start or cancel some",
    );
    let raw = http::request(
        env.api_url(),
        "POST",
        &format!("/v1/apps/{DEMO_APP}/jobs"),
        Some(&env.admin_token),
        Some(r#"{"command":["true"]}"#),
    );
    assert_eq!(raw.status, 429, "{raw:?}");
    assert_eq!(raw.json()["error"]["code"], "too_many_jobs", "{raw:?}");
    assert_eq!(env.db_count_jobs(), before, "nothing was created");

    // A canceled queued job frees its place.
    env.jobs(&["cancel", &first]).assert_success();
    let third = env.run_detached(&["--", "true"]);
    env.jobs(&["cancel", &running]).assert_success();
    env.wait_for_state(&second, "succeeded", Duration::from_secs(60));
    env.wait_for_state(&third, "succeeded", Duration::from_secs(60));
}
