//! Bad input: every mistake of PRODUCT.md's "Bad input" list gets a clear
//! error that names the thing and the limit, exit code 2 (the command line
//! is wrong) or 125 (the API refused), an HTTP 4xx with a JSON error body,
//! and never a half-created job.
//!
//! One table holds every case, each checked through the real CLI (exact
//! exit code and exact first line of stderr) and through raw HTTP (exact
//! status, `error.code` and `error.field`). A second test sends a bounded
//! stream of random bodies and checks that every answer is a JSON 4xx (or a
//! success for a body that happens to be valid), never a 5xx or a dropped
//! connection.
//!
//! Synchronisation: none is needed beyond each CLI call or HTTP request
//! running to its end (bounded); the job count is read from the database
//! before and after.

use std::process::Command;

use jobs_e2e::cli::{CliOutput, DEFAULT_CLI_TIMEOUT, run_bounded};
use jobs_e2e::{TestEnv, http};

/// The largest body the API reads, `jobs_api::extract::MAX_BODY_BYTES`.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// The longest command, `jobs_core::spec::MAX_COMMAND_BYTES`.
const MAX_COMMAND_BYTES: usize = 64 * 1024;

/// Which token a request carries.
#[derive(Debug, Clone, Copy)]
enum Token {
    Admin,
    Missing,
    /// A string that is no token at all.
    Wrong,
    /// A valid `run` token bound to another app.
    Foreign,
}

/// What the CLI must do: exit `code` with `line` as the first line of
/// stderr, and print nothing on stdout.
struct CliCase {
    args: Vec<String>,
    token: Token,
    /// Set as `JOBS_APP` instead of `demo`.
    app: Option<&'static str>,
    code: i32,
    line: String,
}

/// What the API must answer to one raw request.
struct HttpCase {
    method: &'static str,
    path: String,
    token: Token,
    body: Option<String>,
    status: u16,
    code: &'static str,
    field: Option<&'static str>,
}

struct Case {
    what: &'static str,
    cli: Option<CliCase>,
    http: Option<HttpCase>,
}

fn cli(args: &[&str], code: i32, line: impl Into<String>) -> Option<CliCase> {
    Some(CliCase {
        args: args.iter().map(|arg| (*arg).to_owned()).collect(),
        token: Token::Admin,
        app: None,
        code,
        line: line.into(),
    })
}

fn post_job(body: &str, status: u16, field: Option<&'static str>) -> Option<HttpCase> {
    Some(HttpCase {
        method: "POST",
        path: "/v1/apps/demo/jobs".into(),
        token: Token::Admin,
        body: Some(body.to_owned()),
        status,
        code: "invalid_input",
        field,
    })
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

/// The per-file upload limit the test's API gets (JOBS_MAX_UPLOAD_BYTES).
const MAX_UPLOAD_BYTES: u64 = 1024 * 1024;

/// Local files for the `-f` cases.
struct UploadFiles {
    /// Two files of the same base name in different directories.
    first: String,
    second: String,
    /// One byte over [`MAX_UPLOAD_BYTES`].
    oversize: String,
    missing: String,
}

impl UploadFiles {
    fn create(dir: &std::path::Path) -> Self {
        std::fs::create_dir_all(dir.join("a")).unwrap();
        std::fs::create_dir_all(dir.join("b")).unwrap();
        let first = dir.join("a/data.csv");
        let second = dir.join("b/data.csv");
        let oversize = dir.join("big.bin");
        std::fs::write(&first, b"1\n").unwrap();
        std::fs::write(&second, b"2\n").unwrap();
        std::fs::write(&oversize, vec![7u8; MAX_UPLOAD_BYTES as usize + 1]).unwrap();
        let text = |path: std::path::PathBuf| path.display().to_string();
        UploadFiles {
            first: text(first),
            second: text(second),
            oversize: text(oversize),
            missing: text(dir.join("missing.csv")),
        }
    }
}

fn post_upload(query: &str, status: u16, field: Option<&'static str>) -> Option<HttpCase> {
    Some(HttpCase {
        method: "POST",
        path: format!("/v1/apps/demo/uploads?{query}"),
        token: Token::Admin,
        body: None,
        status,
        code: "invalid_input",
        field,
    })
}

/// Every bad input of PRODUCT.md, in its order.
fn cases(missing_job: &str, files: &UploadFiles) -> Vec<Case> {
    let long_arg = "x".repeat(70_000);
    // `echo` + NUL + the argument, as the limit counts them.
    let long_bytes = "echo".len() + 1 + long_arg.len() + 1;
    let long_body = format!(r#"{{"command":["echo","{long_arg}"]}}"#);
    let never = r#"{"command":["echo","never"]}"#;
    let mut cases = vec![
        Case {
            what: "an unknown app",
            cli: Some(CliCase {
                app: Some("nope"),
                ..cli(&["run", "--", "echo", "never"], 125, r#"jobs: app "nope" not found"#)
                    .unwrap()
            }),
            http: Some(HttpCase {
                path: "/v1/apps/nope/jobs".into(),
                code: "not_found",
                ..post_job(never, 404, None).unwrap()
            }),
        },
        Case {
            what: "a malformed K=V",
            cli: cli(
                &["run", "-e", "FOO", "--", "echo", "never"],
                2,
                r#"error: invalid value 'FOO' for '--env <K=V>': env "FOO" is malformed: expected K=V"#,
            ),
            // JSON has no K=V: the nearest is env given as a list of strings.
            http: post_job(r#"{"command":["true"],"env":["FOO"]}"#, 422, Some("env")),
        },
        Case {
            what: "an env name that is not [A-Za-z_][A-Za-z0-9_]*",
            cli: cli(
                &["run", "-e", "1FOO=x", "--", "echo", "never"],
                2,
                r#"error: invalid value '1FOO=x' for '--env <K=V>': env name "1FOO" is invalid: must match [A-Za-z_][A-Za-z0-9_]*"#,
            ),
            http: post_job(r#"{"command":["true"],"env":{"1FOO":"x"}}"#, 422, Some("env")),
        },
        Case {
            what: "an env name that is not [A-Za-z_][A-Za-z0-9_]*, in apps set",
            cli: cli(
                &["apps", "set", "demo", "-e", "A-B=x"],
                2,
                r#"error: invalid value 'A-B=x' for '--env <K=V>': env name "A-B" is invalid: must match [A-Za-z_][A-Za-z0-9_]*"#,
            ),
            http: None,
        },
        Case {
            // The JSON body limit of ordinary requests; `-f` uploads have
            // their own limits (the cases below).
            what: "an oversized request body (the body limit)",
            cli: None,
            // Exactly one byte over, so that the API reads all of it before
            // it answers and the socket is not reset under the answer.
            http: post_job(&"x".repeat(MAX_BODY_BYTES + 1), 413, Some("body")),
        },
        Case {
            what: "an oversized upload (-f over the per-file limit)",
            cli: cli(
                &["run", "-f", &files.oversize, "--", "echo", "never"],
                125,
                format!(
                    "jobs: upload big.bin is {} bytes: the limit is 1048576 bytes (1 MiB) per file",
                    MAX_UPLOAD_BYTES + 1
                ),
            ),
            http: post_upload(
                &format!("name=big.bin&size={}", MAX_UPLOAD_BYTES + 1),
                413,
                Some("size"),
            ),
        },
        Case {
            what: "uploads over the per-job total",
            cli: None,
            http: post_upload("name=a.bin&size=10&total=99999999999999", 413, Some("total")),
        },
        Case {
            what: "the same upload name twice",
            cli: cli(
                &["run", "-f", &files.first, "-f", &files.second, "--", "echo", "never"],
                2,
                format!(
                    "error: invalid value '{}' for '--file <PATH>': it lands in /tmp/uploads/data.csv, as '{}' does: rename one",
                    files.second, files.first
                ),
            ),
            http: None,
        },
        Case {
            what: "a missing local path",
            cli: cli(
                &["run", "-f", &files.missing, "--", "echo", "never"],
                2,
                format!(
                    "error: invalid value '{}' for '--file <PATH>': No such file or directory (os error 2)",
                    files.missing
                ),
            ),
            http: None,
        },
        Case {
            what: "an upload name with a separator or ..",
            cli: None,
            http: post_upload("name=..", 422, Some("name")),
        },
        Case {
            what: "a job naming an upload that does not exist",
            cli: None,
            http: post_job(
                &format!(
                    r#"{{"command":["true"],"uploads":[{{"id":"upl_nope","sha256":"{}"}}]}}"#,
                    "0".repeat(64)
                ),
                422,
                Some("uploads"),
            ),
        },
        Case {
            what: "a relative artifact path",
            cli: cli(
                &["run", "--artifact", "out.txt", "--", "echo", "never"],
                2,
                r#"error: invalid value for '--artifact <PATH>': artifact path "out.txt" is not absolute: give a path such as /app/out.txt"#,
            ),
            http: post_job(r#"{"command":["true"],"artifacts":["out.txt"]}"#, 422, Some("artifacts")),
        },
        Case {
            what: "a too-long command",
            cli: Some(CliCase {
                args: vec!["run".into(), "--".into(), "echo".into(), long_arg.clone()],
                ..cli(
                    &[],
                    2,
                    format!(
                        "error: command is {long_bytes} bytes long: the limit is {MAX_COMMAND_BYTES} bytes"
                    ),
                )
                .unwrap()
            }),
            http: post_job(&long_body, 422, Some("command")),
        },
        Case {
            what: "an unknown size",
            cli: cli(
                &["run", "-s", "XXL", "--", "echo", "never"],
                2,
                r#"error: invalid value 'XXL' for '--size <S>': size "XXL" is unknown: must be one of S, M, L, XL"#,
            ),
            http: post_job(r#"{"command":["true"],"size":"XXL"}"#, 422, Some("size")),
        },
        Case {
            what: "a bad duration",
            cli: cli(
                &["run", "--timeout", "5parsecs", "--", "echo", "never"],
                2,
                r#"error: invalid value '5parsecs' for '--timeout <DUR>': duration "5parsecs" is invalid: use a number and a unit, such as 90s, 30m or 2h"#,
            ),
            http: post_job(
                r#"{"command":["true"],"timeout_seconds":0}"#,
                422,
                Some("timeout_seconds"),
            ),
        },
        Case {
            what: "a zero duration",
            cli: cli(
                &["run", "--timeout", "0s", "--", "echo", "never"],
                2,
                r#"error: invalid value '0s' for '--timeout <DUR>': duration "0s" is invalid: must be more than zero"#,
            ),
            http: None,
        },
        Case {
            what: "a missing token",
            cli: Some(CliCase {
                token: Token::Missing,
                ..cli(
                    &["run", "--", "echo", "never"],
                    125,
                    "jobs: missing API token: pass --token, set JOBS_TOKEN, or start `jobsctl dev` \
                     on this machine, which writes one for the CLI",
                )
                .unwrap()
            }),
            http: Some(HttpCase {
                token: Token::Missing,
                code: "unauthorized",
                ..post_job(never, 401, None).unwrap()
            }),
        },
        Case {
            what: "a wrong token",
            cli: Some(CliCase {
                token: Token::Wrong,
                ..cli(&["list"], 125, "jobs: invalid API token").unwrap()
            }),
            http: Some(HttpCase {
                token: Token::Wrong,
                code: "unauthorized",
                ..post_job(never, 401, None).unwrap()
            }),
        },
        Case {
            // A token bound to another app does not even learn that
            // `demo` exists.
            what: "a foreign token",
            cli: Some(CliCase {
                token: Token::Foreign,
                ..cli(&["run", "--", "echo", "never"], 125, r#"jobs: app "demo" not found"#)
                    .unwrap()
            }),
            http: Some(HttpCase {
                token: Token::Foreign,
                code: "not_found",
                ..post_job(never, 404, None).unwrap()
            }),
        },
    ];
    for command in ["status", "follow", "wait", "logs", "cancel"] {
        cases.push(Case {
            what: "an id that does not exist",
            cli: cli(
                &[command, missing_job],
                125,
                format!(r#"jobs: job "{missing_job}" not found"#),
            ),
            http: None,
        });
    }
    cases.push(Case {
        what: "an id that does not exist, over HTTP",
        cli: None,
        http: Some(HttpCase {
            method: "GET",
            path: format!("/v1/jobs/{missing_job}"),
            token: Token::Admin,
            body: None,
            status: 404,
            code: "not_found",
            field: None,
        }),
    });
    cases
}

#[test]
fn every_bad_input_gets_its_exact_error_and_creates_nothing() {
    let limit = MAX_UPLOAD_BYTES.to_string();
    let mut env = TestEnv::start_with_api_env(1, &[("JOBS_MAX_UPLOAD_BYTES", &limit)], &[]);
    let files = UploadFiles::create(&env.log_dir.join("files"));
    let real = env.run_detached(&["--", "echo", "real"]);
    env.jobs(&["wait", &real]).assert_success();
    let missing_job = sibling_id(&real);

    // A `run` token of another app: valid, but not for `demo`.
    env.jobs(&["apps", "create", "other", "--image", jobs_e2e::TEST_IMAGE])
        .assert_success();
    let created = env.jobs(&["tokens", "create", "--app", "other", "--role", "run"]);
    created.assert_success();
    let foreign = created.stdout_text().trim_end().to_owned();

    let token_of = |token: Token| match token {
        Token::Admin => Some(env.admin_token.clone()),
        Token::Missing => None,
        Token::Wrong => Some("not-the-token".to_owned()),
        Token::Foreign => Some(foreign.clone()),
    };
    let url = env.api_url().to_owned();
    let before = env.db_count_jobs();
    let objects_before = env.objects.keys();
    for case in cases(&missing_job, &files) {
        let what = case.what;
        if let Some(expected) = &case.cli {
            let args: Vec<&str> = expected.args.iter().map(String::as_str).collect();
            let mut command: Command = env.jobs_command(&args);
            match token_of(expected.token) {
                Some(token) => command.env("JOBS_TOKEN", token),
                None => command.env_remove("JOBS_TOKEN"),
            };
            if let Some(app) = expected.app {
                command.env("JOBS_APP", app);
            }
            let output: CliOutput = run_bounded(command, None, DEFAULT_CLI_TIMEOUT);
            output.assert_code(expected.code);
            let stderr = output.stderr_text();
            assert_eq!(
                stderr.lines().next().unwrap_or_default(),
                expected.line,
                "{what}: the first line of stderr: {output:?}"
            );
            assert!(output.stdout.is_empty(), "{what}: {output:?}");
        }
        if let Some(expected) = &case.http {
            let token = token_of(expected.token);
            let response = http::request(
                &url,
                expected.method,
                &expected.path,
                token.as_deref(),
                expected.body.as_deref(),
            );
            let shown = abbreviated(&response);
            assert_eq!(response.status, expected.status, "{what}: {shown}");
            let body = response.json();
            assert_eq!(body["error"]["code"], expected.code, "{what}: {shown}");
            assert_eq!(
                body["error"]["field"].as_str(),
                expected.field,
                "{what}: {shown}"
            );
            assert!(
                !body["error"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .is_empty(),
                "{what}: the error has a message: {shown}"
            );
        }
        assert_eq!(
            env.db_count_jobs(),
            before,
            "{what}: a refused request stored a job"
        );
        assert_eq!(
            env.objects.keys(),
            objects_before,
            "{what}: a refused request stored an object"
        );
    }
    env.finish();
}

fn abbreviated(response: &http::HttpResponse) -> String {
    let body: String = response.body.chars().take(500).collect();
    format!("{} {body}", response.status)
}

/// A small deterministic generator (xorshift64*), so that the e2e crate
/// needs no random-number dependency and a failure names its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// Pieces that reach the odd corners of the decoders: wrong types, huge and
/// negative numbers, escapes (NUL, lone surrogates), deep nesting, names
/// that are nearly valid.
const ATOMS: &[&str] = &[
    "null",
    "true",
    "0",
    "-1",
    "1e999",
    "18446744073709551616",
    "-9223372036854775809",
    "0.5",
    r#""""#,
    r#""S""#,
    r#""xl""#,
    r#""XXL""#,
    r#""\u0000""#,
    r#""\ud800""#,
    r#""é☃""#,
    r#""1FOO""#,
    r#""-demo-""#,
    "[]",
    "{}",
    r#"["true"]"#,
    r#"[1,2]"#,
    r#"{"A":1}"#,
    r#"{"1FOO":"x"}"#,
    r#"{"A\u0000":"x"}"#,
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
];
const KEYS: &[&str] = &[
    "command",
    "env",
    "size",
    "timeout_seconds",
    "idempotency_key",
    "name",
    "image",
    "role",
    "app",
    "expires_in_seconds",
    "description",
    "",
    "COMMAND",
];

/// One random body: mostly JSON objects of known and unknown keys with odd
/// values, some cut short, some not JSON at all.
fn random_body(rng: &mut Rng) -> String {
    match rng.below(10) {
        0 => {
            // Random printable and non-ASCII characters.
            let length = rng.below(64);
            (0..length)
                .map(|_| {
                    let alphabet = "{}[]\":,\\ azAZ09-_=é☃\t\n";
                    alphabet
                        .chars()
                        .nth(rng.below(alphabet.chars().count()))
                        .expect("in range")
                })
                .collect()
        }
        1 => rng.pick(ATOMS).to_owned(),
        _ => {
            let fields = rng.below(5);
            let members: Vec<String> = (0..fields)
                .map(|_| {
                    let key = rng.pick(KEYS);
                    // A command whose program does not exist, so that a body
                    // that happens to be valid runs nothing of consequence.
                    let value = if key == "command" && rng.below(3) == 0 {
                        r#"["/nonexistent/fuzz"]"#
                    } else {
                        rng.pick(ATOMS)
                    };
                    format!("\"{key}\":{value}")
                })
                .collect();
            let mut body = format!("{{{}}}", members.join(","));
            if rng.below(6) == 0 {
                let cut = rng.below(body.len() + 1);
                // Cut on a character boundary.
                let cut = (0..=cut)
                    .rev()
                    .find(|&i| body.is_char_boundary(i))
                    .unwrap_or(0);
                body.truncate(cut);
            }
            body
        }
    }
}

#[test]
fn random_bodies_get_json_4xx_answers_and_never_a_5xx() {
    // A rate limit far above what the loop sends: every answer must come
    // from parsing and validation, not from the token's request budget.
    let mut env = TestEnv::start_with_api_env(
        1,
        &[
            ("JOBS_RATE_LIMIT_PER_SECOND", "100000"),
            ("JOBS_RATE_LIMIT_BURST", "100000"),
        ],
        &[],
    );
    let url = env.api_url().to_owned();
    let token = env.admin_token.clone();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |elapsed| elapsed.as_nanos() as u64)
        | 1;
    eprintln!("random body seed: {seed}");
    let mut rng = Rng(seed);
    let routes = [
        ("POST", "/v1/apps/demo/jobs"),
        ("POST", "/v1/apps"),
        ("POST", "/v1/tokens"),
    ];
    for round in 0..200 {
        let (method, path) = routes[round % routes.len()];
        let body = random_body(&mut rng);
        let response = http::request(&url, method, path, Some(&token), Some(&body));
        let context = format!("seed {seed}, round {round}: {method} {path} {body:?}");
        assert!(
            response.status < 500,
            "{context}: a 5xx: {}",
            abbreviated(&response)
        );
        if response.status >= 400 {
            let answer: serde_json::Value = serde_json::from_str(&response.body)
                .unwrap_or_else(|error| panic!("{context}: not JSON ({error}): {response:?}"));
            assert!(
                answer["error"]["code"].is_string() && answer["error"]["message"].is_string(),
                "{context}: not an API error: {response:?}"
            );
        }
    }
    // The API is still there and well after all that.
    env.jobs(&["apps", "show", "demo"]).assert_success();
    env.finish();
}
