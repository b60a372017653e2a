//! `jobs workers` and `jobs workers drain`, through the real binaries.
//!
//! - `jobs workers` lists the test's worker (each TestEnv has a database of
//!   its own, so only its worker) with its version, slots in use and the id
//!   of the job it runs;
//! - a drained worker takes no job created after the drain, `jobs status`
//!   says why, its running job ends with its own exit code, and `--undo`
//!   lets the queued job run to its own exit code; the drain outlives a
//!   restart of the worker;
//! - a worker killed without a goodbye is forgotten once silent for
//!   `JOBS_FORGET_WORKERS_AFTER`;
//! - tokens that are not admin of every app get the 403 text, an unknown
//!   worker the 404 text, both with exit code 125.
//!
//! Synchronisation: a job's container is told to end by a file the test
//! creates in it; "the worker has seen its drain" is the line it logs then;
//! states are bounded polls, never fixed sleeps.

use std::{path::Path, time::Duration};

use jobs_e2e::{
    CliOutput, DEMO_APP, TestEnv,
    docker::{containers_with_label, docker},
    wait_until,
};
use serde_json::Value;

const STATE_DEADLINE: Duration = Duration::from_secs(60);
/// A worker is told of its drain by a notification, and reads it back with
/// its heartbeat every 5 seconds should that be missed.
const DRAIN_SEEN_DEADLINE: Duration = Duration::from_secs(30);
const DRAINING_LINE: &str = "draining: no new job is taken";
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A job that runs until the test creates /tmp/go in its container, then
/// exits 3.
const GATED: &str = "while [ ! -f /tmp/go ]; do sleep 0.1; done; exit 3";

fn container_of(job_id: &str) -> String {
    wait_until("the job's container", STATE_DEADLINE, || {
        containers_with_label(&format!("jobs.job_id={job_id}"))
            .into_iter()
            .next()
    })
}

fn json(output: &CliOutput) -> Value {
    output.assert_success();
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

/// The table's rows as words, the age (`3s ago`) checked and left out.
#[track_caller]
fn table_rows(output: &CliOutput) -> Vec<Vec<String>> {
    output.assert_success();
    let text = output.stdout_text();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    assert_eq!(
        header,
        [
            "ID",
            "VERSION",
            "SLOTS",
            "RUNNING",
            "LAST",
            "HEARTBEAT",
            "STATE"
        ],
        "{text}"
    );
    lines
        .map(|line| {
            let mut words: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
            assert_eq!(words.len(), 7, "{text}");
            let age = words.remove(4);
            assert!(
                age.ends_with('s') && age[..age.len() - 1].parse::<u32>().is_ok(),
                "{text}"
            );
            assert_eq!(words.remove(4), "ago", "{text}");
            words
        })
        .collect()
}

/// How many times the worker's logs (first run and restarts) say it drains.
fn drain_lines(log_dir: &Path) -> usize {
    ["worker", "worker-restarted"]
        .iter()
        .filter_map(|role| std::fs::read_to_string(log_dir.join(format!("{role}.stderr.log"))).ok())
        .map(|log| log.matches(DRAINING_LINE).count())
        .sum()
}

#[track_caller]
fn wait_for_drain_seen(env: &TestEnv, times: usize) {
    wait_until("the worker to see its drain", DRAIN_SEEN_DEADLINE, || {
        (drain_lines(&env.log_dir) >= times).then_some(())
    });
}

#[track_caller]
fn assert_waits_because_all_drain(env: &TestEnv, job: &str) {
    let status = env.status(job);
    assert_eq!(status["state"], "queued", "{status}");
    assert_eq!(
        status["queue"]["waiting_for"], "every worker is draining (1 worker)",
        "{status}"
    );
}

#[test]
fn a_drained_worker_takes_no_new_job_until_the_drain_is_undone() {
    let mut env = TestEnv::start(2);
    let worker = env.worker_id.clone();
    let running = env.run_detached(&["--", "sh", "-c", GATED]);
    env.wait_for_state(&running, "running", STATE_DEADLINE);

    // Listed with its version, a slot in use and the job's id.
    assert_eq!(
        table_rows(&env.jobs(&["workers"])),
        [[&worker, VERSION, "1/2", &running, "active"]]
    );
    assert_eq!(
        table_rows(&env.jobs(&["workers", "list"])),
        table_rows(&env.jobs(&["workers"]))
    );
    let listed = json(&env.jobs(&["workers", "--json"]));
    let listed = &listed["workers"][0];
    assert_eq!(
        (
            &listed["id"],
            &listed["version"],
            &listed["slots"],
            &listed["free_slots"]
        ),
        (
            &Value::from(worker.as_str()),
            &Value::from(VERSION),
            &Value::from(2),
            &Value::from(1)
        ),
        "{listed}"
    );
    assert_eq!(
        listed["running_jobs"],
        serde_json::json!([running]),
        "{listed}"
    );
    assert_eq!(listed["draining_since"], Value::Null, "{listed}");

    // Drained: it says what happens, twice alike.
    let drained_text = format!(
        "worker {worker} is draining: it takes no new job, even after a restart, until \
         `jobsctl workers drain --undo {worker}`; 1 running job goes on to its end\n"
    );
    for _ in 0..2 {
        env.jobs(&["workers", "drain", &worker])
            .assert_success()
            .assert_stdout(drained_text.as_bytes());
    }
    let queued = env.run_detached(&["--", "sh", "-c", "echo later; exit 5"]);
    wait_for_drain_seen(&env, 1);
    assert_waits_because_all_drain(&env, &queued);
    let human = env.jobs(&["status", &queued]);
    human.assert_success();
    assert_eq!(
        human.field_line("queue").as_deref(),
        Some("queue: position 1: every worker is draining (1 worker)"),
        "{}",
        human.stdout_text()
    );

    // The running job goes on to its own end; the free slot takes nothing.
    docker(&["exec", &container_of(&running), "touch", "/tmp/go"]);
    env.jobs(&["wait", &running]).assert_code(3);
    assert_eq!(
        table_rows(&env.jobs(&["workers"])),
        [[&worker, VERSION, "0/2", "-", "draining"]]
    );
    assert_waits_because_all_drain(&env, &queued);

    // Undone: the queued job runs, to its own exit code.
    for _ in 0..2 {
        env.jobs(&["workers", "drain", "--undo", &worker])
            .assert_success()
            .assert_stdout(format!("worker {worker} takes jobs again\n").as_bytes());
    }
    env.jobs(&["wait", &queued]).assert_code(5);
    env.jobs(&["logs", &queued]).assert_stdout(b"later\n");
    assert_eq!(table_rows(&env.jobs(&["workers"]))[0][4], "active");
    env.finish();
}

#[test]
fn a_drain_outlives_a_restart_of_the_worker() {
    let mut env = TestEnv::start(1);
    let worker = env.worker_id.clone();
    env.jobs(&["workers", "drain", &worker]).assert_success();
    wait_for_drain_seen(&env, 1);
    let exit = env.terminate_worker(STATE_DEADLINE);
    assert!(exit.success(), "{exit:?}");
    // Its row stays while it is drained.
    let listed = json(&env.jobs(&["workers", "--json"]));
    assert_eq!(listed["workers"][0]["id"], worker.as_str(), "{listed}");
    assert!(
        listed["workers"][0]["draining_since"].is_string(),
        "{listed}"
    );

    env.restart_worker();
    wait_for_drain_seen(&env, 2);
    let queued = env.run_detached(&["--", "sh", "-c", "exit 6"]);
    assert_waits_because_all_drain(&env, &queued);
    env.jobs(&["workers", "drain", "--undo", &worker])
        .assert_success();
    env.jobs(&["wait", &queued]).assert_code(6);
    env.finish();
}

#[test]
fn a_killed_worker_is_forgotten_once_silent_for_the_configured_time() {
    let mut env = TestEnv::start_with_api_env(1, &[("JOBS_FORGET_WORKERS_AFTER", "15s")], &[]);
    let worker = env.worker_id.clone();
    let listed = json(&env.jobs(&["workers", "--json"]));
    assert_eq!(listed["workers"][0]["id"], worker.as_str(), "{listed}");
    env.kill_worker();
    // No goodbye: the row stays until the purge (every 5 s) finds it
    // silent for the configured 15 s.
    wait_until(
        "the killed worker forgotten",
        Duration::from_secs(60),
        || {
            let listed = json(&env.jobs(&["workers", "--json"]));
            (listed["workers"].as_array()?.is_empty()).then_some(())
        },
    );
    env.restart_worker();
    wait_until("the restarted worker listed again", STATE_DEADLINE, || {
        let listed = json(&env.jobs(&["workers", "--json"]));
        (listed["workers"][0]["id"] == worker.as_str()).then_some(())
    });
    env.finish();
}

#[test]
fn only_an_admin_of_every_app_sees_or_drains_workers() {
    let mut env = TestEnv::start(1);
    let worker = env.worker_id.clone();
    let token = |args: &[&str]| {
        let created = env.jobs(&[&["tokens", "create"][..], args].concat());
        created.assert_success();
        created.stdout_text().trim_end().to_owned()
    };
    let run = token(&["--app", DEMO_APP, "--role", "run"]);
    let bound_admin = token(&["--app", DEMO_APP, "--role", "admin"]);
    let with = |secret: &str, args: &[&str]| {
        let mut command = env.jobs_command(args);
        command.env("JOBS_TOKEN", secret);
        jobs_e2e::cli::run_bounded(command, None, jobs_e2e::cli::DEFAULT_CLI_TIMEOUT)
    };

    with(&run, &["workers"])
        .assert_cli_error(125, "this token's role is run: listing workers needs admin");
    with(&run, &["workers", "drain", &worker]).assert_cli_error(
        125,
        "this token's role is run: draining workers needs admin",
    );
    let bound = format!("this token is bound to app \"{DEMO_APP}\"");
    with(&bound_admin, &["workers"]).assert_cli_error(
        125,
        &format!("{bound}: listing workers needs a token of every app"),
    );
    with(&bound_admin, &["workers", "drain", &worker]).assert_cli_error(
        125,
        &format!("{bound}: draining workers needs a token of every app"),
    );
    with(&bound_admin, &["workers", "drain", "--undo", &worker]).assert_cli_error(
        125,
        &format!("{bound}: undoing a worker's drain needs a token of every app"),
    );

    // An unknown worker, either way.
    for args in [
        &["workers", "drain", "nope"][..],
        &["workers", "drain", "--undo", "nope"],
    ] {
        env.jobs(args)
            .assert_cli_error(125, "worker \"nope\" not found");
    }
    // A wrong command line is a usage error.
    env.jobs(&["workers", "drain"])
        .assert_usage_error("required arguments were not provided");

    // None of it drained the worker: it still takes jobs.
    let listed = json(&env.jobs(&["workers", "--json"]));
    assert_eq!(
        listed["workers"][0]["draining_since"],
        Value::Null,
        "{listed}"
    );
    env.jobs(&["run", "--", "sh", "-c", "exit 4"])
        .assert_code(4);
    env.finish();
}
