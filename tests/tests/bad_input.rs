//! Bad input: every mistake gets a clear error that names the thing and the
//! limit, exit code 2 (the command line is wrong) or 125 (the API refused),
//! and never a half-created job.
//!
//! Synchronisation: none is needed beyond each CLI call running to its end
//! (bounded); the job count is read from the database before and after.

use jobs_e2e::{TestEnv, http};

/// Runs `check` and asserts that no job was stored meanwhile.
#[track_caller]
fn creates_no_job(env: &TestEnv, check: impl FnOnce()) {
    let before = env.db_count_jobs();
    check();
    assert_eq!(
        env.db_count_jobs(),
        before,
        "a refused request stored a job"
    );
}

#[test]
fn an_unknown_app_is_refused_with_125() {
    let mut env = TestEnv::start(1);
    creates_no_job(&env, || {
        env.jobs(&["run", "-a", "nope", "--", "echo", "never"])
            .assert_cli_error(125, r#"app "nope" not found"#);
        let mut command = env.jobs_command(&["run", "--", "echo", "never"]);
        command.env("JOBS_APP", "nope");
        jobs_e2e::cli::run_bounded(command, None, jobs_e2e::cli::DEFAULT_CLI_TIMEOUT)
            .assert_cli_error(125, r#"app "nope" not found"#);
    });
    env.finish();
}

#[test]
fn malformed_env_pairs_and_names_are_refused_with_2() {
    let mut env = TestEnv::start(1);
    creates_no_job(&env, || {
        env.jobs(&["run", "-e", "FOO", "--", "echo", "never"])
            .assert_usage_error("K=V")
            .assert_stderr_contains("FOO");
        env.jobs(&["run", "-e", "1FOO=x", "--", "echo", "never"])
            .assert_usage_error("[A-Za-z_][A-Za-z0-9_]*")
            .assert_stderr_contains("1FOO");
        env.jobs(&["apps", "set", "demo", "-e", "1FOO=x"])
            .assert_usage_error("[A-Za-z_][A-Za-z0-9_]*");
    });
    env.finish();
}

#[test]
fn an_unknown_size_is_refused_naming_the_sizes() {
    let mut env = TestEnv::start(1);
    creates_no_job(&env, || {
        let output = env.jobs(&["run", "-s", "XXL", "--", "echo", "never"]);
        assert!(
            matches!(output.status.code(), Some(2 | 125)),
            "an unknown size exits 2 or 125: {output:?}"
        );
        output.assert_stderr_contains("S, M, L, XL");
        assert!(output.stdout.is_empty(), "{output:?}");
    });
    env.finish();
}

#[test]
fn a_bad_duration_is_refused_with_2_naming_the_timeout() {
    let mut env = TestEnv::start(1);
    creates_no_job(&env, || {
        for bad in ["5parsecs", "0s"] {
            env.jobs(&["run", "--timeout", bad, "--", "echo", "never"])
                .assert_usage_error("timeout")
                .assert_stderr_contains(bad);
        }
    });
    env.finish();
}

#[test]
fn a_too_long_command_is_refused_with_125_naming_the_limit() {
    let mut env = TestEnv::start(1);
    let long = "x".repeat(70_000);
    creates_no_job(&env, || {
        // The CLI may refuse it itself (2, the command line is wrong) or
        // pass on the API's refusal (125); either way it names the limit.
        let output = env.jobs(&["run", "--", "echo", &long]);
        assert!(
            matches!(output.status.code(), Some(2 | 125)),
            "a too-long command exits 2 or 125: {output:?}"
        );
        output.assert_stderr_contains("limit");
        output.assert_stderr_contains("65536");
        assert!(output.stdout.is_empty(), "{output:?}");
    });
    env.finish();
}

#[test]
fn a_missing_or_wrong_token_is_refused_with_125() {
    let mut env = TestEnv::start(1);
    creates_no_job(&env, || {
        let mut without = env.jobs_command(&["run", "--", "echo", "never"]);
        without.env_remove("JOBS_TOKEN");
        let output = jobs_e2e::cli::run_bounded(without, None, jobs_e2e::cli::DEFAULT_CLI_TIMEOUT);
        output.assert_code(125);
        assert!(
            output.stderr_text().to_lowercase().contains("token"),
            "the error names the token: {output:?}"
        );

        for args in [&["run", "--", "echo", "never"][..], &["list"][..]] {
            let mut wrong = env.jobs_command(args);
            wrong.env("JOBS_TOKEN", "not-the-token");
            jobs_e2e::cli::run_bounded(wrong, None, jobs_e2e::cli::DEFAULT_CLI_TIMEOUT)
                .assert_cli_error(125, "");
        }
    });
    env.finish();
}

/// An id shaped like `id` that names no job: its last character changed.
fn sibling_id(id: &str) -> String {
    let mut chars: Vec<char> = id.chars().collect();
    let last = chars.last_mut().expect("ids are not empty");
    *last = match *last {
        '0' => '1',
        c if c.is_ascii_digit() => '0',
        'a' => 'b',
        c if c.is_ascii_lowercase() => 'a',
        'A' => 'B',
        _ => 'A',
    };
    chars.into_iter().collect()
}

#[test]
fn an_id_that_names_no_job_is_not_found_with_125() {
    let mut env = TestEnv::start(1);
    let real = env.run_detached(&["--", "echo", "real"]);
    env.jobs(&["wait", &real]).assert_success();
    let missing = sibling_id(&real);

    creates_no_job(&env, || {
        for command in ["status", "follow", "wait", "logs", "cancel"] {
            env.jobs(&[command, &missing])
                .assert_cli_error(125, "not found");
        }
    });
    env.finish();
}

#[test]
fn the_api_refuses_bad_job_requests_with_a_4xx_naming_the_field() {
    let mut env = TestEnv::start(1);
    let url = env.api_url().to_owned();
    let token = env.admin_token.clone();
    let long = "x".repeat(70_000);
    let cases = [
        (
            r#"{"command":["true"],"env":{"1FOO":"x"}}"#.to_owned(),
            "1FOO",
        ),
        (format!(r#"{{"command":["echo","{long}"]}}"#), "limit"),
        (r#"{"command":[]}"#.to_owned(), "command"),
        (
            r#"{"command":["true"],"timeout_seconds":0}"#.to_owned(),
            "timeout",
        ),
    ];
    creates_no_job(&env, || {
        for (body, needle) in &cases {
            let response =
                http::request(&url, "POST", "/v1/apps/demo/jobs", Some(&token), Some(body));
            assert!(
                (400..500).contains(&response.status),
                "a bad job request gets a 4xx: {response:?}"
            );
            let message = response.json()["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            assert!(
                message.contains(needle),
                "the error message names {needle:?}: {response:?}"
            );
        }
        let unauthenticated = http::request(
            &url,
            "POST",
            "/v1/apps/demo/jobs",
            None,
            Some(r#"{"command":["true"]}"#),
        );
        assert_eq!(unauthenticated.status, 401, "{unauthenticated:?}");
        let unknown_app = http::request(
            &url,
            "POST",
            "/v1/apps/nope/jobs",
            Some(&token),
            Some(r#"{"command":["true"]}"#),
        );
        assert_eq!(unknown_app.status, 404, "{unknown_app:?}");
    });
    env.finish();
}
