//! API tokens and their scopes, through the real binaries.
//!
//! - a forged, an expired and a revoked token are each refused (125,
//!   `invalid API token`);
//! - every `/v1` route (checked against the route table of
//!   `jobs_core::wire`) is tried with a token of another app (404 for
//!   everything of the app, as if it did not exist), with a `read` token
//!   (every change refused with 403, every read allowed) and with a `run`
//!   token (jobs yes, apps and tokens no);
//! - `jobs tokens create` prints the secret once, alone on stdout, and
//!   binds a token to an app only with its own `--app`.
//!
//! Synchronisation: each CLI and HTTP call runs to its end (bounded);
//! expiry is awaited by polling with a deadline, never a fixed sleep.

use std::time::Duration;

use jobs_e2e::env::job_id_from_detached_output;
use jobs_e2e::{DEMO_APP, TEST_IMAGE, TestEnv, http, wait_until};
use serde_json::Value;

/// The app the foreign tokens are bound to.
const OTHER_APP: &str = "other";
/// How long a 1-second token may take to be refused: its second, plus
/// generous slack for a loaded machine.
const EXPIRY_DEADLINE: Duration = Duration::from_secs(30);

/// A token as `POST /v1/tokens` made it.
struct Token {
    id: String,
    secret: String,
}

/// Makes a token with the admin token, through the API.
#[track_caller]
fn make_token(env: &TestEnv, app: Option<&str>, role: &str) -> Token {
    let body = match app {
        Some(app) => format!(r#"{{"app":"{app}","role":"{role}"}}"#),
        None => format!(r#"{{"role":"{role}"}}"#),
    };
    let response = http::request(
        env.api_url(),
        "POST",
        "/v1/tokens",
        Some(&env.admin_token),
        Some(&body),
    );
    assert_eq!(response.status, 201, "{response:?}");
    let json = response.json();
    assert_eq!(json["token"]["role"], role, "{json}");
    Token {
        id: json["token"]["id"].as_str().expect("an id").to_owned(),
        secret: json["secret"].as_str().expect("a secret").to_owned(),
    }
}

/// `jobs ARGS` with `JOBS_TOKEN=token` instead of the admin token.
#[track_caller]
fn jobs_with_token(env: &TestEnv, token: &str, args: &[&str]) -> jobs_e2e::CliOutput {
    let mut command = env.jobs_command(args);
    command.env("JOBS_TOKEN", token);
    jobs_e2e::cli::run_bounded(command, None, jobs_e2e::cli::DEFAULT_CLI_TIMEOUT)
}

/// The role a route needs, and what it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Needs {
    Read,
    Run,
    Admin,
}

/// What a route names, which decides its answer to a foreign token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Names {
    /// The app `demo`, by name (path or body).
    App,
    /// A job of `demo`.
    Job,
    /// A group of `demo`.
    Group,
    /// A token bound to `demo`.
    Token,
    /// Nothing in particular: a listing, or a new app.
    Nothing,
}

struct Route {
    method: &'static str,
    /// The path as the route table writes it, e.g. `/v1/jobs/{id}`.
    template: &'static str,
    path: String,
    body: Option<String>,
    needs: Needs,
    names: Names,
}

/// Every route under `/v1`, aimed at the app `demo`, its job `job_id`, its
/// group `group_id` and its token `token_id`.
fn every_route(job_id: &str, group_id: &str, token_id: &str) -> Vec<Route> {
    let route = |method, template, path: String, body: Option<&str>, needs, names| Route {
        method,
        template,
        path,
        body: body.map(str::to_owned),
        needs,
        names,
    };
    let app = format!("/v1/apps/{DEMO_APP}");
    let job = format!("/v1/jobs/{job_id}");
    let new_app = format!(r#"{{"name":"third","image":"{TEST_IMAGE}"}}"#);
    let app_change = format!(r#"{{"image":"{TEST_IMAGE}"}}"#);
    let demo_token = format!(r#"{{"app":"{DEMO_APP}","role":"read"}}"#);
    use Names as N;
    use Needs::*;
    vec![
        route("GET", "/v1/apps", "/v1/apps".into(), None, Read, N::Nothing),
        route(
            "POST",
            "/v1/apps",
            "/v1/apps".into(),
            Some(&new_app),
            Admin,
            N::Nothing,
        ),
        route("GET", "/v1/apps/{app}", app.clone(), None, Read, N::App),
        route(
            "PATCH",
            "/v1/apps/{app}",
            app.clone(),
            Some(&app_change),
            Admin,
            N::App,
        ),
        route(
            "GET",
            "/v1/apps/{app}/jobs",
            format!("{app}/jobs"),
            None,
            Read,
            N::App,
        ),
        route(
            "POST",
            "/v1/apps/{app}/jobs",
            format!("{app}/jobs"),
            Some(r#"{"command":["true"]}"#),
            Run,
            N::App,
        ),
        route(
            "POST",
            "/v1/apps/{app}/groups",
            format!("{app}/groups"),
            Some(r#"{"command":["true"],"tasks":1}"#),
            Run,
            N::App,
        ),
        route(
            "GET",
            "/v1/groups/{id}",
            format!("/v1/groups/{group_id}"),
            None,
            Read,
            N::Group,
        ),
        route(
            "POST",
            "/v1/groups/{id}/cancel",
            format!("/v1/groups/{group_id}/cancel"),
            None,
            Run,
            N::Group,
        ),
        route("GET", "/v1/jobs/{id}", job.clone(), None, Read, N::Job),
        route(
            "POST",
            "/v1/jobs/{id}/cancel",
            format!("{job}/cancel"),
            None,
            Run,
            N::Job,
        ),
        route(
            "POST",
            "/v1/apps/{app}/uploads",
            format!("{app}/uploads?name=data.txt"),
            Some("some bytes"),
            Run,
            N::App,
        ),
        route(
            "GET",
            "/v1/jobs/{id}/artifacts/{index}",
            format!("{job}/artifacts/0"),
            None,
            Read,
            N::Job,
        ),
        route(
            "GET",
            "/v1/jobs/{id}/logs",
            format!("{job}/logs"),
            None,
            Read,
            N::Job,
        ),
        route(
            "GET",
            "/v1/jobs/{id}/logs/stream",
            format!("{job}/logs/stream"),
            None,
            Read,
            N::Job,
        ),
        // A plain GET, not an upgrade: with the role it needs, the answer
        // is 409, since the ended job is not interactive.
        route(
            "GET",
            "/v1/jobs/{id}/attach",
            format!("{job}/attach"),
            None,
            Run,
            N::Job,
        ),
        route(
            "GET",
            "/v1/tokens",
            "/v1/tokens".into(),
            None,
            Admin,
            N::Nothing,
        ),
        route(
            "POST",
            "/v1/tokens",
            "/v1/tokens".into(),
            Some(&demo_token),
            Admin,
            N::App,
        ),
        route(
            "DELETE",
            "/v1/tokens/{id}",
            format!("/v1/tokens/{token_id}"),
            None,
            Admin,
            N::Token,
        ),
        route(
            "GET",
            "/v1/whoami",
            "/v1/whoami".into(),
            None,
            Read,
            N::Nothing,
        ),
        // Workers serve every app: only an admin token of every app lists them.
        route(
            "GET",
            "/v1/workers",
            "/v1/workers".into(),
            None,
            Admin,
            N::Nothing,
        ),
        // Draining a worker: refused by role or binding before the worker
        // is looked up, so that any id will do.
        route(
            "POST",
            "/v1/workers/{id}/drain",
            "/v1/workers/any/drain".into(),
            None,
            Admin,
            N::Nothing,
        ),
        route(
            "DELETE",
            "/v1/workers/{id}/drain",
            "/v1/workers/any/drain".into(),
            None,
            Admin,
            N::Nothing,
        ),
        // Last: with a token that may, it deletes the app.
        route("DELETE", "/v1/apps/{app}", app, None, Admin, N::App),
    ]
}

/// The `/v1` routes of the route table in `jobs_core::wire`'s docs, as
/// `METHOD /path` with the query string left off.
fn documented_routes() -> Vec<String> {
    let wire = include_str!("../../crates/core/src/wire.rs");
    let mut routes = Vec::new();
    for line in wire.lines().filter(|line| line.starts_with("//! | `")) {
        let cell = line
            .trim_start_matches("//! | ")
            .split(" |")
            .next()
            .unwrap_or("");
        for entry in cell.split(", ") {
            let entry = entry.trim_matches('`');
            let entry = entry.split('?').next().unwrap_or(entry);
            // The OpenAPI document needs no token, like the probes; the
            // worker's attach route takes a job's attach secret instead
            // (the_worker_attach_route_refuses_every_api_token).
            if entry.contains(" /v1/")
                && entry != "GET /v1/openapi.json"
                && entry != "GET /v1/jobs/{id}/attach/worker"
            {
                routes.push(entry.to_owned());
            }
        }
    }
    routes
}

#[test]
fn the_route_table_of_these_tests_is_every_route() {
    let mut tested: Vec<String> = every_route("J", "G", "T")
        .iter()
        .map(|route| format!("{} {}", route.method, route.template))
        .collect();
    let mut documented = documented_routes();
    tested.sort();
    documented.sort();
    assert!(documented.len() >= 14, "the table parsed: {documented:?}");
    assert_eq!(
        tested, documented,
        "a /v1 route is missing from these tests"
    );
}

#[track_caller]
fn call(env: &TestEnv, token: &str, route: &Route) -> http::HttpResponse {
    http::request(
        env.api_url(),
        route.method,
        &route.path,
        Some(token),
        route.body.as_deref(),
    )
}

#[track_caller]
fn error_message(response: &http::HttpResponse) -> String {
    response.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// A job of `demo` that has ended and has logs and an artifact.
fn ended_job(env: &TestEnv) -> String {
    let id = env.run_detached(&[
        "--artifact",
        "/out/a.txt",
        "--",
        "sh",
        "-c",
        "mkdir -p /out && echo art > /out/a.txt && echo hello",
    ]);
    env.jobs(&["wait", &id]).assert_success();
    id
}

/// A group of `demo` whose one task has ended.
fn ended_group(env: &TestEnv) -> String {
    let output = env.jobs(&["run", "-d", "--tasks", "1", "--", "true"]);
    output.assert_success();
    let id = job_id_from_detached_output(&output);
    env.jobs(&["wait", &id]).assert_success();
    id
}

/// `bytes` random bytes from the operating system, in hex.
fn random_hex(bytes: usize) -> String {
    use std::io::Read;
    let mut buffer = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut file| file.read_exact(&mut buffer))
        .expect("read /dev/urandom");
    buffer.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn names(list: &Value, key: &str, field: &str) -> Vec<String> {
    list[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} is a list: {list}"))
        .iter()
        .map(|item| item[field].as_str().unwrap_or("").to_owned())
        .collect()
}

#[test]
fn forged_expired_and_revoked_tokens_are_refused_with_125() {
    let mut env = TestEnv::start(1);

    // Forged: the right shape, 256 random bits, never issued.
    let forged = format!("jobs_{}", random_hex(32));
    jobs_with_token(&env, &forged, &["apps", "list"]).assert_cli_error(125, "invalid API token");

    // Revoked: works, then is refused on the very next request.
    let created = env.jobs(&["tokens", "create", "--role", "read", "--json"]);
    created.assert_success();
    let created: Value = serde_json::from_slice(&created.stdout).expect("JSON");
    let secret = created["secret"].as_str().expect("a secret").to_owned();
    let id = created["token"]["id"].as_str().expect("an id").to_owned();
    jobs_with_token(&env, &secret, &["apps", "list"]).assert_success();
    env.jobs(&["tokens", "revoke", &id])
        .assert_success()
        .assert_stdout(format!("revoked token {id}\n").as_bytes());
    jobs_with_token(&env, &secret, &["apps", "list"]).assert_cli_error(125, "invalid API token");
    jobs_with_token(&env, &secret, &["run", "--", "true"])
        .assert_cli_error(125, "invalid API token");

    // Expired: a one-second token is refused once its second is over.
    let created = env.jobs(&["tokens", "create", "--role", "run", "--expires-in", "1s"]);
    created.assert_success();
    let short = created.stdout_text().trim_end().to_owned();
    let refused = wait_until("the 1s token to expire", EXPIRY_DEADLINE, || {
        let output = jobs_with_token(&env, &short, &["apps", "list"]);
        (output.code() != 0).then_some(output)
    });
    refused.assert_cli_error(125, "invalid API token");

    // The three are told apart by nothing: one message for all.
    let message = |token: &str| jobs_with_token(&env, token, &["list"]).stderr_text();
    assert_eq!(message(&forged), message(&secret));
    assert_eq!(message(&secret), message(&short));
    env.finish();
}

#[test]
fn a_token_of_another_app_gets_404_for_everything_of_the_app() {
    let mut env = TestEnv::start(1);
    env.jobs(&["apps", "create", OTHER_APP, "--image", TEST_IMAGE])
        .assert_success();
    let job_id = ended_job(&env);
    let group_id = ended_group(&env);
    let demo_token = make_token(&env, Some(DEMO_APP), "read");
    let other_token = make_token(&env, Some(OTHER_APP), "read");
    let jobs_before = env.db_count_jobs();

    // Even an admin of the other app learns nothing: 404 comes before 403.
    for role in ["admin", "read"] {
        let foreign = make_token(&env, Some(OTHER_APP), role);
        for route in every_route(&job_id, &group_id, &demo_token.id) {
            let response = call(&env, &foreign.secret, &route);
            let what = format!(
                "{role} token of {OTHER_APP}: {} {}",
                route.method, route.path
            );
            let expected_404 = match route.names {
                Names::App => Some(format!(r#"app "{DEMO_APP}" not found"#)),
                Names::Job => Some(format!(r#"job "{job_id}" not found"#)),
                Names::Group => Some(format!(r#"group "{group_id}" not found"#)),
                Names::Token => Some(format!(r#"token "{}" not found"#, demo_token.id)),
                Names::Nothing => None,
            };
            match expected_404 {
                Some(message) => {
                    assert_eq!(response.status, 404, "{what}: {response:?}");
                    assert_eq!(error_message(&response), message, "{what}");
                }
                None => match (route.method, route.template) {
                    ("GET", "/v1/apps") => {
                        assert_eq!(response.status, 200, "{what}: {response:?}");
                        assert_eq!(names(&response.json(), "apps", "name"), [OTHER_APP]);
                    }
                    // The token's own role and app, and nothing of `demo`.
                    ("GET", "/v1/whoami") => {
                        assert_eq!(response.status, 200, "{what}: {response:?}");
                        assert_eq!(response.json()["app"], OTHER_APP, "{what}");
                        assert_eq!(response.json()["role"], role, "{what}");
                    }
                    ("GET", "/v1/tokens") if role == "admin" => {
                        assert_eq!(response.status, 200, "{what}: {response:?}");
                        let listed = response.json();
                        for token in listed["tokens"].as_array().unwrap() {
                            assert_eq!(token["app"], OTHER_APP, "{what}: {listed}");
                        }
                        assert!(!names(&listed, "tokens", "id").contains(&demo_token.id));
                        assert!(names(&listed, "tokens", "id").contains(&other_token.id));
                    }
                    // Creating an app (or, for a read token, listing tokens)
                    // names nothing of the app: refused by role or binding.
                    _ => assert_eq!(response.status, 403, "{what}: {response:?}"),
                },
            }
        }
    }

    // And nothing changed: the app, its job and its token are as they were.
    env.jobs(&["apps", "show", DEMO_APP]).assert_success();
    assert_eq!(env.status(&job_id)["state"], "succeeded");
    assert_eq!(env.db_count_jobs(), jobs_before);
    jobs_with_token(&env, &demo_token.secret, &["status", &job_id]).assert_success();
    // A truly missing job gets the very same answer as a foreign one.
    let missing = http::request(
        env.api_url(),
        "GET",
        "/v1/jobs/nope",
        Some(&other_token.secret),
        None,
    );
    assert_eq!(missing.status, 404);
    assert_eq!(error_message(&missing), r#"job "nope" not found"#);
    // Through the CLI too: 125, not found.
    jobs_with_token(&env, &other_token.secret, &["logs", &job_id])
        .assert_cli_error(125, "not found");
    env.finish();
}

#[test]
fn a_read_token_reads_everything_and_changes_nothing() {
    let mut env = TestEnv::start(1);
    let job_id = ended_job(&env);
    let group_id = ended_group(&env);
    let victim = make_token(&env, Some(DEMO_APP), "read");
    let read = make_token(&env, Some(DEMO_APP), "read");
    let jobs_before = env.db_count_jobs();

    for route in every_route(&job_id, &group_id, &victim.id) {
        let response = call(&env, &read.secret, &route);
        let what = format!("read token: {} {}", route.method, route.path);
        if route.needs == Needs::Read {
            assert_eq!(response.status, 200, "{what}: {response:?}");
        } else {
            assert_eq!(response.status, 403, "{what}: {response:?}");
            let message = error_message(&response);
            assert!(
                message.starts_with("this token's role is read: ")
                    && message.ends_with(if route.needs == Needs::Run {
                        "needs run"
                    } else {
                        "needs admin"
                    }),
                "{what}: {message}"
            );
        }
    }

    // Nothing changed.
    assert_eq!(env.db_count_jobs(), jobs_before);
    env.jobs(&["apps", "show", DEMO_APP]).assert_success();
    jobs_with_token(&env, &victim.secret, &["apps", "list"]).assert_success();
    // The CLI says why: the role, and the role needed.
    jobs_with_token(&env, &read.secret, &["run", "--", "true"])
        .assert_cli_error(125, "this token's role is read: creating jobs needs run");
    jobs_with_token(&env, &read.secret, &["logs", &job_id])
        .assert_success()
        .assert_stdout(b"hello\n");
    assert_eq!(env.db_count_jobs(), jobs_before);
    env.finish();
}

#[test]
fn a_run_token_runs_and_cancels_jobs_but_manages_nothing() {
    let mut env = TestEnv::start(1);
    let job_id = ended_job(&env);
    let group_id = ended_group(&env);
    let victim = make_token(&env, Some(DEMO_APP), "read");
    let run = make_token(&env, Some(DEMO_APP), "run");

    for route in every_route(&job_id, &group_id, &victim.id) {
        let response = call(&env, &run.secret, &route);
        let what = format!("run token: {} {}", route.method, route.path);
        if route.template == "/v1/jobs/{id}/attach" {
            assert_eq!(response.status, 409, "{what}: {response:?}");
            assert_eq!(
                error_message(&response),
                format!(
                    "job {job_id} is not interactive: follow its output with `jobs follow {job_id}`"
                ),
                "{what}"
            );
        } else if route.needs <= Needs::Run {
            assert!(
                (200..300).contains(&response.status),
                "{what}: {response:?}"
            );
        } else {
            assert_eq!(response.status, 403, "{what}: {response:?}");
            assert!(
                error_message(&response).contains("role is run"),
                "{what}: {response:?}"
            );
        }
    }

    // It runs a job to its end through the CLI, and cancels a running one.
    jobs_with_token(&env, &run.secret, &["run", "--", "echo", "ran"])
        .assert_success()
        .assert_stdout(b"ran\n");
    let sleeper = {
        let mut command = env.jobs_command(&["run", "-d", "--", "sleep", "300"]);
        command.env("JOBS_TOKEN", &run.secret);
        let output = jobs_e2e::cli::run_bounded(command, None, jobs_e2e::cli::DEFAULT_CLI_TIMEOUT);
        output.assert_success();
        jobs_e2e::env::job_id_from_detached_output(&output)
    };
    jobs_with_token(&env, &run.secret, &["cancel", &sleeper]).assert_success();
    env.wait_for_state(&sleeper, "canceled", Duration::from_secs(60));
    // The job names the token that started it; the admin token's ran too.
    let status = env.status(&sleeper);
    assert_eq!(
        status["created_by"],
        format!("token {}", run.id),
        "{status}"
    );
    let human = jobs_with_token(&env, &run.secret, &["status", &sleeper]);
    assert_eq!(
        human.field_line("created by"),
        Some(format!("created by: token {}", run.id)),
        "{}",
        human.stdout_text()
    );
    assert_eq!(env.status(&job_id)["created_by"], "the admin token");
    // Apps and tokens stay out of reach.
    jobs_with_token(&env, &run.secret, &["apps", "delete", DEMO_APP])
        .assert_cli_error(125, "role is run");
    jobs_with_token(&env, &run.secret, &["tokens", "list"]).assert_cli_error(125, "role is run");
    env.finish();
}

#[test]
fn tokens_create_shows_the_secret_once_and_binds_only_with_its_own_app_option() {
    let mut env = TestEnv::start(1);

    // JOBS_APP=demo is set by the harness: it must not bind the token.
    let created = env.jobs(&["tokens", "create", "--role", "admin", "--description", "ci"]);
    created
        .assert_success()
        .assert_stderr_contains("shown only this once");
    let secret = created.stdout_text();
    assert!(
        secret.starts_with("jobs_") && secret.ends_with('\n') && secret.lines().count() == 1,
        "the secret alone on one line: {created:?}"
    );
    let secret = secret.trim_end().to_owned();

    let bound = env.jobs(&[
        "tokens", "create", "--app", DEMO_APP, "--role", "read", "--json",
    ]);
    bound.assert_success();
    let bound: Value = serde_json::from_slice(&bound.stdout).expect("JSON");
    assert_eq!(bound["token"]["app"], DEMO_APP, "{bound}");

    let listed = env.jobs(&["tokens", "list", "--json"]);
    listed.assert_success();
    let listed: Value = serde_json::from_slice(&listed.stdout).expect("JSON");
    let tokens = listed["tokens"].as_array().expect("a list");
    assert_eq!(tokens.len(), 2, "{listed}");
    assert_eq!(
        tokens[0]["app"],
        Value::Null,
        "no --app: every app: {listed}"
    );
    assert_eq!(tokens[0]["description"], "ci");
    assert!(!listed.to_string().contains(&secret), "a secret was listed");
    assert!(!listed.to_string().contains("secret"), "{listed}");

    let table = env.jobs(&["tokens", "list"]);
    table.assert_success();
    let text = table.stdout_text();
    for header in ["ID", "APP", "ROLE", "CREATED", "EXPIRES", "REVOKED"] {
        assert!(text.contains(header), "{table:?}");
    }
    assert!(
        text.contains(bound["token"]["id"].as_str().unwrap()),
        "{table:?}"
    );
    assert!(!text.contains(&secret), "{table:?}");

    // The new admin token works, for every app.
    jobs_with_token(&env, &secret, &["apps", "list"]).assert_success();

    // Bad input: named, exit 2 before anything is sent, or 125 from the API.
    env.jobs(&["tokens", "create", "--role", "owner"])
        .assert_usage_error("read, run, admin");
    env.jobs(&["tokens", "create", "--role", "read", "--expires-in", "soon"])
        .assert_usage_error("soon");
    env.jobs(&["tokens", "create", "--role", "read", "--expires-in", "11y"])
        .assert_usage_error("10 years");
    env.jobs(&["tokens", "create", "--app", "nope", "--role", "read"])
        .assert_cli_error(125, r#"app "nope" not found"#);
    env.jobs(&["tokens", "revoke", "tok_nope"])
        .assert_cli_error(125, r#"token "tok_nope" not found"#);
    let response = http::request(
        env.api_url(),
        "POST",
        "/v1/tokens",
        Some(&env.admin_token),
        Some(r#"{"role":"owner"}"#),
    );
    assert_eq!(response.status, 422, "{response:?}");
    assert_eq!(response.json()["error"]["field"], "role");
    env.finish();
}

#[test]
fn the_worker_attach_route_refuses_every_api_token() {
    let mut env = TestEnv::start(1);
    let job_id = ended_job(&env);
    let admin = make_token(&env, None, "admin");
    let path = format!("/v1/jobs/{job_id}/attach/worker?attempt=1");
    for token in [Some(admin.secret.as_str()), Some("jobs_forged"), None] {
        let response = http::request(env.api_url(), "GET", &path, token, None);
        assert_eq!(response.status, 401, "{token:?}: {response:?}");
        assert_eq!(error_message(&response), "invalid API token");
    }
    env.finish();
}
