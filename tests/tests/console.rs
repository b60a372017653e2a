//! The web console in a real browser: Debian's chromium driven by
//! Playwright (`tests/browser/console.mjs`, playwright-core from
//! `tests/browser/package-lock.json`, both installed by `deploy/setup.sh`)
//! against the real stack: API, worker, PostgreSQL, RabbitMQ and Docker.
//!
//! The browser reaches the API through a [`CutProxy`], so that the test can
//! cut the page's connections mid-run the way a network would. The script
//! asks this test, over its stdin and stdout, for what only the test does:
//! start runs with the CLI, cut the connections, read a job's status. It
//! prints what it saw last; every assertion is here.
//!
//! One chromium at a time, one script for every check: a browser's start
//! costs more than most checks. Screenshots go to the test's log directory
//! (`target/e2e-logs/the_console_in_a_real_browser/`).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use jobs_e2e::env::job_id_from_detached_output;
use jobs_e2e::proxy::CutProxy;
use jobs_e2e::{TEST_IMAGE, TestEnv};
use serde_json::{Value, json};

/// The whole browser script: eleven checks, about a minute when warm.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(300);
const OTHER_APP: &str = "other";
/// How long `jobs wait GROUP` may take for the group page's three tasks.
const GROUP_DEADLINE: Duration = Duration::from_secs(120);

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

fn create_token(env: &TestEnv, args: &[&str]) -> String {
    let mut all = vec!["tokens", "create"];
    all.extend_from_slice(args);
    let output = env.jobs(&all);
    output.assert_success();
    output.stdout_text().trim_end().to_owned()
}

/// The browser script, running, and what it has asked so far.
struct Browser {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    stderr_path: PathBuf,
}

impl Browser {
    fn start(
        env: &TestEnv,
        console_url: &str,
        tokens: &[(&str, String)],
        other_job: &str,
    ) -> Browser {
        let dir = browser_dir();
        assert!(
            dir.join("node_modules/playwright-core").is_dir(),
            "{} has no node_modules/playwright-core: run deploy/setup.sh (npm ci there)",
            dir.display()
        );
        assert!(
            Path::new("/usr/bin/chromium").exists(),
            "no /usr/bin/chromium: run deploy/setup.sh (apt-get install chromium)"
        );
        let stderr_path = env.log_dir.join("browser.stderr");
        let stderr = std::fs::File::create(&stderr_path).expect("create the browser's log");
        let mut command = Command::new("node");
        command
            .arg(dir.join("console.mjs"))
            .current_dir(&dir)
            .env("CONSOLE_URL", console_url)
            .env("OUT_DIR", &env.log_dir)
            .env("OTHER_APP", OTHER_APP)
            .env("OTHER_JOB", other_job)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr);
        for (name, value) in tokens {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("start node (Node 20 is needed)");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Browser {
            child,
            stdin,
            lines,
            stderr_path,
        }
    }

    fn reply(&mut self, reply: Value) {
        writeln!(self.stdin, "{reply}").expect("answer the browser script");
        self.stdin.flush().expect("flush the answer");
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    /// Answers the script's asks until it prints its results.
    fn run(mut self, env: &TestEnv, proxy: &CutProxy) -> Value {
        let deadline = Instant::now() + SCRIPT_DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.lines.recv_timeout(left) {
                Ok(line) => line,
                Err(error) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!(
                        "the browser script ended or hung ({error:?}) before its results; its log {}:\n{}",
                        self.stderr_path.display(),
                        self.log_tail()
                    );
                }
            };
            if let Some(results) = line.strip_prefix("result ") {
                let status = self.child.wait().expect("wait for node");
                assert!(status.success(), "node: {status}\n{}", self.log_tail());
                return serde_json::from_str(results).expect("the results are JSON");
            }
            let Some(asked) = line.strip_prefix("ask ") else {
                panic!("the browser script printed {line:?} on stdout");
            };
            let asked: Value = serde_json::from_str(asked).expect("an ask is JSON");
            let id = asked["id"].clone();
            let reply = match asked["do"].as_str() {
                Some("run_detached") => {
                    let args = strings(&asked["args"]);
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    json!({"id": id, "job": env.run_detached(&args)})
                }
                Some("run_group") => {
                    let group = run_group(env, &strings(&asked["args"]));
                    // `jobs wait GROUP` exits with the group's code; the
                    // script hands it back and the test asserts on it.
                    let wait_code = asked["wait"].as_bool().unwrap_or(false).then(|| {
                        env.jobs_with_timeout(&["wait", &group], GROUP_DEADLINE)
                            .code()
                    });
                    json!({"id": id, "group": group, "wait_code": wait_code})
                }
                Some("cut") => json!({"id": id, "cut": proxy.cut()}),
                Some("status") => {
                    let job = asked["job"].as_str().expect("a job id");
                    json!({"id": id, "status": env.status(job)})
                }
                other => panic!("the browser script asked for {other:?}"),
            };
            self.reply(reply);
        }
    }
}

/// The strings of a JSON array the script sent.
fn strings(array: &Value) -> Vec<String> {
    array
        .as_array()
        .expect("an array")
        .iter()
        .map(|arg| arg.as_str().expect("a string").to_owned())
        .collect()
}

/// `jobs run -d RUN_ARGS...` of a group (`--tasks N` among them): the group
/// id, which the CLI prints alone on stdout.
fn run_group(env: &TestEnv, run_args: &[String]) -> String {
    let mut args = vec!["run", "-d"];
    args.extend(run_args.iter().map(String::as_str));
    let output = env.jobs(&args);
    output.assert_success();
    let group = job_id_from_detached_output(&output);
    assert!(group.starts_with("grp_"), "{output:?}");
    group
}

#[track_caller]
fn check<'a>(results: &'a Value, name: &str) -> &'a Value {
    let check = &results[name];
    assert!(
        check.is_object() && check.get("error").is_none(),
        "the browser check {name} failed: {}",
        check
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("no result")
    );
    check
}

fn texts(rows: &Value) -> Vec<String> {
    rows.as_array()
        .expect("rows")
        .iter()
        .map(|row| row["text"].as_str().expect("text").to_owned())
        .collect()
}

#[test]
fn the_console_in_a_real_browser() {
    let env = TestEnv::start(4);
    let upstream = env.api_url().trim_start_matches("http://").to_owned();
    let proxy = CutProxy::start(&upstream);

    env.jobs(&["apps", "create", OTHER_APP, "--image", TEST_IMAGE])
        .assert_success();
    let other_job = env.run_detached(&["-a", OTHER_APP, "--", "echo", "secret-of-other"]);
    let read = create_token(&env, &["--role", "read"]);
    let bound = create_token(&env, &["--app", "demo", "--role", "run"]);
    let tokens = [
        ("ADMIN_TOKEN", env.admin_token.clone()),
        ("READ_TOKEN", read),
        ("BOUND_TOKEN", bound),
    ];

    let started = Instant::now();
    let results = Browser::start(&env, &proxy.url(), &tokens, &other_job).run(&env, &proxy);
    eprintln!("the browser script took {:?}", started.elapsed());

    // Sign in; the list shows the CLI's run and follows its state live.
    let list = check(&results, "runs_list");
    assert_eq!(list["sessionKeys"], json!(["jobs.console.token"]), "{list}");
    assert_eq!(list["localKeys"], json!([]), "{list}");
    assert!(
        !list["signedInUrl"]
            .as_str()
            .unwrap()
            .contains(&env.admin_token),
        "{list}"
    );
    let states: Vec<&str> = list["states"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(states.last(), Some(&"succeeded"), "{list}");
    assert_ne!(
        states[0], "succeeded",
        "the run had ended before the page saw it: {list}"
    );
    assert_eq!(list["exit"], "0");
    assert_eq!(list["command"], "sh -c 'sleep 3; echo done'");
    // The CLI ran it with the env's admin token (the API's configured one).
    assert_eq!(list["createdBy"], "the admin token", "{list}");
    assert_eq!(
        list["sameDocument"], "still here",
        "the page reloaded: {list}"
    );
    assert!(
        list["overflow"].as_i64().unwrap() <= 0,
        "wider than a phone: {list}"
    );

    // A run's page: live, in order, coloured, exit code; a cut loses nothing.
    let run = check(&results, "run_page");
    let mut expected: Vec<String> = (1..=40).map(|i| format!("line {i:02} red")).collect();
    expected.push("to-stderr".into());
    assert_eq!(texts(&run["rows"]), expected, "{run}");
    let streams: Vec<&str> = run["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["stream"].as_str().unwrap())
        .collect();
    assert!(
        streams[..40].iter().all(|s| *s == "stdout") && streams[40] == "stderr",
        "{streams:?}"
    );
    assert!(
        run["rowsBeforeCut"].as_u64().unwrap() < 40,
        "the output was not live: {run}"
    );
    assert!(run["rowsWhenOpened"].as_u64().unwrap() < 10, "{run}");
    assert!(run["cut"].as_u64().unwrap() >= 1, "nothing was cut: {run}");
    assert!(proxy.accepted() >= 2, "the page never reconnected");
    assert_eq!(run["red"]["text"], "red");
    assert_eq!(run["red"]["className"], "fg-1");
    assert_eq!(run["red"]["color"], "rgb(255, 123, 114)");
    assert_eq!(
        (
            run["state"].as_str(),
            run["exit"].as_str(),
            run["reason"].as_str()
        ),
        (Some("failed"), Some("5"), Some("exit status 5"))
    );
    let mut raw = Vec::new();
    for i in 1..=40 {
        raw.extend_from_slice(format!("line {i:02} \x1b[31mred\x1b[0m\n").as_bytes());
    }
    raw.extend_from_slice(b"to-stderr\n");
    let downloaded = std::fs::read(run["downloadPath"].as_str().unwrap()).expect("the download");
    jobs_e2e::assert_bytes_eq(&downloaded, &raw, "the downloaded log");
    assert_eq!(run["found"], "line 33");

    // Job output is never HTML.
    let xss = check(&results, "xss");
    assert_eq!(
        texts(&xss["rows"]),
        ["<script>alert(1)</script>", "<img src=x onerror=alert(2)>"],
        "{xss}"
    );
    assert_eq!(xss["dialogs"], json!([]), "a script ran: {xss}");
    assert_eq!(xss["injected"]["images"], 0, "{xss}");
    let scripts = xss["injected"]["scripts"].as_array().unwrap();
    assert!(
        scripts
            .iter()
            .all(|s| s.as_str().unwrap().contains("/console/")),
        "{xss}"
    );
    let csp = xss["csp"].as_str().unwrap();
    assert!(
        csp.contains("script-src 'self';") && !csp.contains("unsafe-eval"),
        "{csp}"
    );

    // A read token: no buttons, forged requests refused; admin cancels.
    let read = check(&results, "read_token");
    assert_eq!(read["startButtons"], 0, "{read}");
    assert_eq!(read["cancelButtons"], 0, "{read}");
    assert!(
        read["newRunPage"]
            .as_str()
            .unwrap()
            .contains("this token's role is read: starting runs needs run"),
        "{read}"
    );
    assert_eq!(read["forged"]["cancel"]["status"], 403, "{read}");
    assert_eq!(
        read["forged"]["cancel"]["body"]["error"]["message"],
        "this token's role is read: canceling jobs needs run"
    );
    assert_eq!(read["forged"]["create"]["status"], 403, "{read}");
    assert_eq!(
        read["forged"]["create"]["body"]["error"]["message"],
        "this token's role is read: creating jobs needs run"
    );
    assert_eq!(read["stateAfterForgery"], "running", "{read}");
    assert_eq!(read["cancelButtonsAfter"], 0, "{read}");
    let canceled = env.status(read["job"].as_str().unwrap());
    assert_eq!(canceled["state"], "canceled", "{canceled}");

    // A token bound to demo reaches nothing of other.
    let bound = check(&results, "bound_token");
    assert_eq!(bound["landing"], "/apps/demo", "{bound}");
    assert_eq!(bound["nav"], "Runs", "{bound}");
    assert!(
        bound["jobPage"]
            .as_str()
            .unwrap()
            .contains(&format!("job \"{other_job}\" not found")),
        "{bound}"
    );
    assert!(
        bound["appPage"]
            .as_str()
            .unwrap()
            .contains("app \"other\" not found"),
        "{bound}"
    );
    let apps_page = bound["appsPage"].as_str().unwrap();
    assert!(
        apps_page.contains("demo") && !apps_page.contains(OTHER_APP),
        "{bound}"
    );
    for page in ["jobPage", "appPage", "appsPage"] {
        assert!(
            !bound[page].as_str().unwrap().contains("secret-of-other"),
            "{bound}"
        );
    }

    // A run started from the page with an uploaded file sees it.
    let upload = check(&results, "upload");
    assert_eq!(
        texts(&upload["rows"]),
        [
            "hello from the browser".to_owned(),
            upload["bytes"].to_string()
        ],
        "{upload}"
    );
    assert_eq!(upload["exit"], "0");
    assert_eq!(upload["unlabelled"], json!([]), "fields without a label");
    let progress = upload["progress"].as_array().expect("progress values");
    assert_eq!(
        progress.last(),
        Some(&json!([upload["bytes"], upload["bytes"]])),
        "the progress bar did not reach the end: {progress:?}"
    );
    let job = upload["job"].as_str().unwrap();
    let status = env.status(job);
    assert_eq!(status["state"], "succeeded", "{status}");
    assert_eq!(status["env"]["GREETING"], "hi there", "{status}");

    // The terminal.
    let terminal = check(&results, "terminal");
    let lines: Vec<&str> = terminal["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(lines.contains(&"42"), "{lines:?}");
    assert!(
        !lines.contains(&"sleep-not-interrupted"),
        "Ctrl-C did not stop the sleep: {lines:?}"
    );
    assert!(
        lines.contains(&"after-ctrl-c") && lines.contains(&"back-after-cut"),
        "{lines:?}"
    );
    // Typed across the cut: the command line once, its output once.
    assert_eq!(
        lines.iter().filter(|l| **l == "typed-in-the-gap").count(),
        1,
        "{lines:?}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.ends_with("echo typed-in-the-gap"))
            .count(),
        1,
        "{lines:?}"
    );
    let (before, after) = (&terminal["sizeBefore"], &terminal["sizeAfter"]);
    assert!(
        after["cols"].as_u64() < before["cols"].as_u64(),
        "{terminal}"
    );
    let stty = format!("{} {}", after["rows"], after["cols"]);
    assert!(
        lines.contains(&stty.as_str()),
        "stty size {stty} not shown: {lines:?}"
    );
    assert!(terminal["cut"].as_u64().unwrap() >= 1, "{terminal}");
    assert_eq!(
        (terminal["state"].as_str(), terminal["exit"].as_str()),
        (Some("failed"), Some("3"))
    );
    let status = env.status(terminal["job"].as_str().unwrap());
    assert_eq!(
        (status["state"].as_str(), status["exit_code"].as_i64()),
        (Some("failed"), Some(3)),
        "{status}"
    );

    // A long log stays light: only the lines in sight are in the page.
    let long = check(&results, "long_log");
    assert!(long["inPage"].as_u64().unwrap() < 300, "{long}");
    assert_eq!(
        long["lastRows"],
        json!(["99998", "99999", "100000"]),
        "{long}"
    );
    assert_eq!(long["found"], "line 77777", "{long}");
    assert_eq!(long["afterJump"], json!(["100000"]), "{long}");

    // The admin's views; a read token gets the API's refusal.
    let admin = check(&results, "admin_views");
    let workers = admin["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 1, "{admin}");
    assert_eq!(workers[0][0], env.worker_id.as_str(), "{admin}");
    assert_eq!(workers[0][1], "4", "{admin}");
    assert_eq!(workers[0][5], env!("CARGO_PKG_VERSION"), "{admin}");
    assert_eq!(workers[0][6], "active", "{admin}");
    assert_eq!(admin["apps"], json!(["demo", OTHER_APP]), "{admin}");
    assert_eq!(admin["readerNav"], "Apps", "{admin}");
    assert_eq!(
        admin["readerWorkers"],
        "this token's role is read: listing workers needs admin"
    );

    // A group's page: a row per task, in index order, with its run's link;
    // the counts as `jobs status GROUP` gives them; no cancel once ended.
    let page = check(&results, "group_page");
    let group = page["group"].as_str().unwrap();
    assert!(group.starts_with("grp_"), "{page}");
    // Task 1 is the lowest index that failed: its code is the group's.
    assert_eq!(page["waitCode"], 1, "{page}");
    let tasks = env.jobs(&["status", group, "--json"]);
    tasks.assert_success();
    let tasks: Value = serde_json::from_slice(&tasks.stdout).expect("status --json is JSON");
    let job_ids: Vec<&str> = tasks["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|task| task["job_id"].as_str().unwrap())
        .collect();
    assert_eq!(job_ids.len(), 3, "{tasks}");
    let expected: Vec<Value> = [
        ("succeeded", "0", ""),
        ("failed", "1", "exit status 1"),
        ("failed", "2", "exit status 2"),
    ]
    .iter()
    .enumerate()
    .map(|(index, (state, exit, reason))| {
        json!({
            "index": index.to_string(),
            "job": job_ids[index],
            "href": format!("/jobs/{}", job_ids[index]),
            "state": state,
            "exit": exit,
            "reason": reason,
        })
    })
    .collect();
    assert_eq!(page["rows"], json!(expected), "{page}");
    assert_eq!(page["counts"], "3 tasks: 1 succeeded, 2 failed", "{page}");
    assert_eq!(page["heading"], format!("Group {group}"), "{page}");
    assert_eq!(page["app"], json!({"text": "demo", "href": "/apps/demo"}));
    assert_eq!(page["command"], "sh -c 'exit $JOBS_TASK_INDEX'", "{page}");
    assert_eq!(page["parallelism"], "no limit", "{page}");
    assert_eq!(page["priority"], "normal", "{page}");
    assert_eq!(page["cancelButtons"], 0, "an ended group: {page}");
    // Task 1's link leads to its run, whose page names the group.
    assert_eq!(page["taskUrl"], format!("/jobs/{}", job_ids[1]), "{page}");
    assert_eq!(
        page["taskLine"],
        format!("task 1 of group {group}"),
        "{page}"
    );
    assert_eq!(page["taskState"], "failed", "{page}");
    assert_eq!(page["backUrl"], format!("/groups/{group}"), "{page}");
    assert_eq!(
        page["sameDocument"], "still here",
        "a link reloaded: {page}"
    );
    assert_eq!(page["missing"], "group \"grp_nope\" not found", "{page}");

    // A running group changes on the page; a read token has no cancel
    // button; "Cancel every task" ends the queued task at once and the
    // running one after its stop.
    let cancel = check(&results, "group_cancel");
    assert_eq!(cancel["readerCancelButtons"], 0, "{cancel}");
    assert_eq!(cancel["parallelism"], "1", "{cancel}");
    // Parallelism 1: task 1 waits while task 0 runs.
    assert_eq!(
        cancel["countsRunning"], "2 tasks: 1 queued, 1 running",
        "{cancel}"
    );
    assert_eq!(cancel["button"], "Cancel every task", "{cancel}");
    assert_eq!(
        cancel["countsAfterClick"], "2 tasks: 1 running, 1 canceled",
        "{cancel}"
    );
    assert_eq!(
        cancel["buttonAfterClick"],
        json!({"text": "Canceling every task…", "disabled": true}),
        "{cancel}"
    );
    assert_eq!(cancel["counts"], "2 tasks: 2 canceled", "{cancel}");
    assert_eq!(
        cancel["states"],
        json!(["canceled", "canceled"]),
        "{cancel}"
    );
    assert_eq!(cancel["reasons"][1], "canceled while queued", "{cancel}");
    assert_eq!(cancel["cancelButtonsAfter"], 0, "{cancel}");
    let canceled = env.jobs(&["status", cancel["group"].as_str().unwrap(), "--json"]);
    canceled.assert_success();
    let canceled: Value = serde_json::from_slice(&canceled.stdout).expect("JSON");
    let states: Vec<&str> = canceled["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|task| task["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["canceled", "canceled"], "{canceled}");

    // No token in any URL the browser asked for, nor in the API's log.
    let api_log =
        std::fs::read_to_string(env.log_dir.join("api.stderr.log")).expect("the API's log");
    for (name, token) in &tokens {
        for url in results["request_urls"].as_array().unwrap() {
            assert!(
                !url.as_str().unwrap().contains(token.as_str()),
                "{name} in {url}"
            );
        }
        assert!(!api_log.contains(token.as_str()), "{name} in the API's log");
    }
    assert!(results["request_urls"].as_array().unwrap().len() > 50);

    assert_eq!(results["page_errors"], json!([]), "errors in the pages");
    assert_eq!(
        results["csp_violations"],
        json!([]),
        "the policy blocked something"
    );
    for name in [
        "runs-list.png",
        "run-page.png",
        "terminal.png",
        "runs-list-phone.png",
        "group-page.png",
    ] {
        let png = std::fs::read(env.log_dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 10_000,
            "{name}: {} bytes",
            png.len()
        );
    }
}

/// `jobs dev` serves the same console, from the same binary's assets.
#[test]
fn jobs_dev_serves_the_console_at_its_root() {
    let mut env = jobs_e2e::DevEnv::in_explicit_data_dir();
    env.start(&[]);
    let page = jobs_e2e::http::request(env.api_url(), "GET", "/", None, None);
    assert_eq!(page.status, 200, "{page:?}");
    assert_eq!(
        page.content_type.as_deref(),
        Some("text/html; charset=utf-8")
    );
    assert!(
        page.body
            .contains(r#"<script type="module" src="/console/app.js"></script>"#),
        "{}",
        page.body
    );
    let script = jobs_e2e::http::request(env.api_url(), "GET", "/console/app.js", None, None);
    assert_eq!(script.status, 200, "{script:?}");
    assert_eq!(
        script.content_type.as_deref(),
        Some("text/javascript; charset=utf-8")
    );
    assert!(script.body.contains("/v1/whoami"));
    // The pages hold no data: the API under them still wants the token.
    let apps = jobs_e2e::http::request(env.api_url(), "GET", "/v1/apps", None, None);
    assert_eq!(apps.status, 401, "{apps:?}");
    env.finish();
}
