//! `jobs dev`: the whole system in one process, with no setup for the CLI.
//!
//! Synchronisation: `jobs dev` is ready once it prints `listening on ADDR`;
//! job states are read through the CLI (`jobs status --json`, `jobs wait`),
//! since the database is inside `jobs dev`; container states are bounded
//! polls of Docker.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use jobs_e2e::DevEnv;
use jobs_e2e::docker::{containers_with_label, docker};
use jobs_e2e::poll::wait_until;

const STATE_DEADLINE: Duration = Duration::from_secs(60);

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|error| panic!("cannot stat {}: {error}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn container_status(container: &str) -> String {
    docker(&["inspect", "-f", "{{.State.Status}}", container])
        .trim()
        .to_owned()
}

fn container_of(job_id: &str) -> String {
    wait_until("the job's container", STATE_DEADLINE, || {
        containers_with_label(&format!("jobs.job_id={job_id}"))
            .into_iter()
            .next()
    })
}

#[test]
fn with_no_setup_a_run_prints_its_output_and_exits_with_its_code() {
    let mut env = DevEnv::in_default_data_dir();
    let ready_after = env.start(&[]);
    // Reported, not asserted: `bench/run.py --dev` measures readiness.
    eprintln!("jobs dev printed its ready line {ready_after:?} after spawn");

    let data_dir = env.data_dir();
    assert_eq!(mode(&data_dir), 0o700, "the data dir is private");
    assert_eq!(
        mode(&data_dir.join("token")),
        0o600,
        "only its user may read the token"
    );
    assert_eq!(mode(&data_dir.join("jobs.db")), 0o600);

    // No JOBS_TOKEN and no JOBS_APP: the token comes from the file, and the
    // only app is the one meant.
    env.create_app("demo");
    env.jobs(&["run", "--", "sh", "-c", "echo hi; exit 4"])
        .assert_code(4)
        .assert_stdout(b"hi\n");

    env.finish();
}

#[test]
fn a_restart_keeps_logs_runs_queued_jobs_and_reconciles_running_ones() {
    let mut env = DevEnv::in_explicit_data_dir();
    env.start(&["--slots", "1"]);
    env.create_app("demo");

    let finished = env.run_detached(&["--", "sh", "-c", "echo finished before the restart"]);
    env.jobs(&["wait", &finished]).assert_code(0);

    // One slot: `long` holds it, `queued` waits behind it.
    let long = env.run_detached(&["--", "sh", "-c", "echo long; sleep 5; exit 2"]);
    wait_until("the long job's first output", STATE_DEADLINE, || {
        (env.jobs(&["logs", &long]).stdout == b"long\n").then_some(())
    });
    let queued = env.run_detached(&["--", "sh", "-c", "echo queued; exit 3"]);
    assert_eq!(env.status(&queued)["state"], "queued");
    let long_container = container_of(&long);

    env.kill();
    assert_eq!(
        container_status(&long_container),
        "running",
        "the long job must outlive jobs dev for this test to mean anything"
    );
    env.start(&["--slots", "1"]);

    // The restarted worker takes the container over: the job ends with its
    // own exit code, run once.
    env.jobs(&["wait", &long]).assert_code(2);
    let status = env.status(&long);
    assert_eq!(status["state"], "failed", "{status}");
    assert_eq!(status["exit_code"], 2, "{status}");
    assert_eq!(status["attempt"], 1, "the job ran once: {status}");

    // The queued job is dispatched again by the new process.
    env.jobs(&["wait", &queued]).assert_code(3);
    env.jobs(&["logs", &queued])
        .assert_success()
        .assert_stdout(b"queued\n");
    let status = env.status(&queued);
    assert_eq!(status["attempt"], 1, "{status}");

    // What finished before the restart is still there.
    env.jobs(&["logs", &finished])
        .assert_success()
        .assert_stdout(b"finished before the restart\n");
    env.jobs(&["logs", &long])
        .assert_success()
        .assert_stdout(b"long\n");

    env.finish();
}

#[test]
fn a_job_that_ends_while_jobs_dev_is_down_keeps_its_exit_code() {
    let mut env = DevEnv::in_default_data_dir();
    env.start(&[]);
    env.create_app("demo");
    let job = env.run_detached(&["--", "sh", "-c", "echo before; sleep 1; exit 9"]);
    wait_until("the job's first output", STATE_DEADLINE, || {
        (env.jobs(&["logs", &job]).stdout == b"before\n").then_some(())
    });
    let container = container_of(&job);

    env.kill();
    wait_until("the container to exit", STATE_DEADLINE, || {
        (container_status(&container) == "exited").then_some(())
    });
    env.start(&[]);

    env.jobs(&["wait", &job]).assert_code(9);
    let status = env.status(&job);
    assert_eq!(status["state"], "failed", "{status}");
    assert_eq!(status["exit_code"], 9, "{status}");
    assert_eq!(status["attempt"], 1, "{status}");
    env.jobs(&["logs", &job])
        .assert_success()
        .assert_stdout(b"before\n");

    env.finish();
}

/// The lease of `jobs dev`'s worker.
const LEASE: Duration = Duration::from_secs(30);

#[test]
fn a_downtime_longer_than_the_lease_still_gives_the_job_its_own_exit_code() {
    let mut env = DevEnv::in_default_data_dir();
    env.start(&[]);
    env.create_app("demo");
    let job = env.run_detached(&["--", "sh", "-c", "echo before; sleep 1; exit 7"]);
    wait_until("the job's first output", STATE_DEADLINE, || {
        (env.jobs(&["logs", &job]).stdout == b"before\n").then_some(())
    });

    env.kill();
    let killed = Instant::now();
    // The downtime itself is the condition: the lease must run out, so that
    // the reaper, which starts with the API, could take the job.
    wait_until("the lease to run out", LEASE * 2, || {
        (killed.elapsed() > LEASE + Duration::from_secs(2)).then_some(())
    });
    env.start(&[]);

    env.jobs(&["wait", &job]).assert_code(7);
    let status = env.status(&job);
    assert_eq!(status["state"], "failed", "{status}");
    assert_eq!(status["exit_code"], 7, "{status}");

    env.finish();
}

#[test]
fn a_second_jobs_dev_on_the_same_data_dir_refuses_to_start() {
    let mut env = DevEnv::in_explicit_data_dir();
    env.start(&[]);
    let second = env.jobs(&[
        "dev",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        env.data_dir().to_str().expect("a UTF-8 path"),
    ]);
    second
        .assert_code(125)
        .assert_stderr_contains("another jobs dev is running on");

    let stopped = env.terminate();
    stopped.assert_success();
    env.finish();
}

#[test]
fn an_interactive_run_works_in_jobs_dev_with_no_broker_and_no_setup() {
    let mut env = DevEnv::in_explicit_data_dir();
    env.start(&[]);
    env.create_app("demo");
    let input: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    let output = jobs_e2e::cli::run_bounded(
        env.jobs_command(&["run", "-i", "--", "sh", "-c", "wc -c; echo err >&2; exit 5"]),
        Some(&input),
        jobs_e2e::cli::DEFAULT_CLI_TIMEOUT,
    );
    output.assert_code(5);
    assert_eq!(output.stdout_text().trim(), "300000", "{output:?}");
    assert_eq!(output.stderr_text(), "err\n", "{output:?}");
    // Its transcript is stored like any job's logs, streams apart.
    let listed = env.jobs(&["list", "--json"]).stdout_text();
    let listed: serde_json::Value = serde_json::from_str(&listed).expect("JSON");
    let id = listed["jobs"][0]["id"].as_str().expect("an id").to_owned();
    let logs = env.jobs(&["logs", &id]);
    logs.assert_success().assert_stdout(&output.stdout);
    assert_eq!(logs.stderr_text(), "err\n");
    env.finish();
}

#[test]
fn uploads_and_artifacts_live_in_the_data_dir_with_no_setup() {
    let mut env = DevEnv::in_explicit_data_dir();
    env.start(&[]);
    env.create_app("demo");
    let local = env.data_dir().join("local-files");
    std::fs::create_dir_all(&local).unwrap();
    let input = local.join("input.bin");
    let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(&input, &bytes).unwrap();
    let input = input.display().to_string();

    env.jobs(&[
        "run",
        "-f",
        &input,
        "--artifact",
        "/out/copy.bin",
        "--",
        "sh",
        "-c",
        "mkdir /out && cp /tmp/uploads/input.bin /out/copy.bin && wc -c < /tmp/uploads/input.bin",
    ])
    .assert_success()
    .assert_stdout(b"100000\n");
    let listed = env.jobs(&["list", "--json"]);
    listed.assert_success();
    let jobs: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let job_id = jobs["jobs"][0]["id"].as_str().unwrap().to_owned();
    let status = env.status(&job_id);
    assert!(
        status["artifacts"][0]["size"].as_i64().unwrap() > 100_000,
        "{status}"
    );

    // The objects are in the data dir: no object store to configure.
    let objects = env.data_dir().join("objects");
    assert_eq!(mode(&objects), 0o700, "uploads are private");
    assert!(objects.join("uploads").is_dir() && objects.join("artifacts").is_dir());

    let out = local.join("out");
    let out_text = out.display().to_string();
    env.jobs(&["artifacts", &job_id, "-o", &out_text])
        .assert_success();
    assert_eq!(std::fs::read(out.join("copy.bin")).unwrap(), bytes);
    env.finish();
}

/// The scheduler's semantics on SQLite: an app's cap holds (counted from
/// Docker), another app's run passes the capped backlog, and a high
/// priority goes first in its app's line.
#[test]
fn jobs_dev_schedules_with_caps_and_priorities_as_the_servers_do() {
    let mut env = DevEnv::in_default_data_dir();
    env.start(&["--slots", "4"]);
    env.create_app("capped");
    env.create_app("other");
    env.jobs(&["apps", "set", "capped", "--max-running", "1"])
        .assert_success();
    let watcher = jobs_e2e::docker::EventWatcher::start(
        std::time::SystemTime::now() - Duration::from_secs(1),
        &[
            format!("label={}", env.worker_label()),
            "event=start".into(),
            "event=die".into(),
        ],
    );
    let backlog: Vec<String> = (0..4)
        .map(|_| env.run_detached(&["-a", "capped", "--", "sleep", "0.5"]))
        .collect();
    let urgent = env.run_detached(&["-a", "capped", "--priority", "high", "--", "true"]);
    let other = env.run_detached(&["-a", "other", "--", "true"]);
    // `other` is not held behind the capped app's line.
    env.jobs(&["wait", &other]).assert_success();
    assert!(
        backlog
            .iter()
            .filter(|id| env.status(id)["state"] == "succeeded")
            .count()
            < backlog.len(),
        "the other app's run waited for the whole capped backlog"
    );
    for id in backlog.iter().chain([&urgent]) {
        env.jobs(&["wait", id]).assert_success();
    }
    let events = watcher.wait_for("six containers to die", STATE_DEADLINE, |events| {
        events.iter().filter(|event| event.action == "die").count() >= 6
    });
    let capped: Vec<_> = events
        .iter()
        .filter(|event| {
            event
                .job_id
                .as_ref()
                .is_some_and(|job| backlog.contains(job) || *job == urgent)
        })
        .cloned()
        .collect();
    assert_eq!(
        jobs_e2e::docker::max_concurrently_running(&capped),
        1,
        "{capped:?}"
    );
    // The high-priority job started before all of the backlog but the
    // first, which was claimed before it was created.
    let started = |id: &str| {
        let status = env.status(id);
        sqlx::types::chrono::DateTime::parse_from_rfc3339(status["started_at"].as_str().unwrap())
            .unwrap()
    };
    for id in &backlog[1..] {
        assert!(started(&urgent) < started(id), "{urgent} after {id}");
    }

    // Fan-out on the embedded store: each task once, with its index, and
    // the lowest failure's code.
    let group = env.jobs(&[
        "run",
        "-a",
        "other",
        "--tasks",
        "3",
        "--parallelism",
        "1",
        "--",
        "sh",
        "-c",
        "echo task $JOBS_TASK_INDEX; exit $((JOBS_TASK_INDEX * 2))",
    ]);
    group.assert_code(2);
    let mut lines: Vec<String> = group.stdout_text().lines().map(str::to_owned).collect();
    lines.sort();
    assert_eq!(
        lines,
        ["[0] task 0", "[1] task 1", "[2] task 2"],
        "{group:?}"
    );
    env.finish();
}
