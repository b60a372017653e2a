//! A job's life beyond a plain run: cancel while queued or running,
//! timeouts, and many jobs competing for a worker's slots.
//!
//! Synchronisation: "the job is running" is a bounded poll of its stored
//! state; "the run CLI has started streaming" is a bounded poll of its
//! captured stdout. Facts about containers come from Docker's event log:
//! either a `docker events` watcher started before the jobs (from a time in
//! the past, so Docker replays anything that happened before it was ready),
//! polled until every container has died, or a bounded `--since/--until`
//! query once everything has ended.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime};

use jobs_e2e::docker::{container_events_between, max_concurrently_running};
use jobs_e2e::env::job_id_from_detached_output;
use jobs_e2e::{BackgroundCli, TestEnv};

const CLI_DEADLINE: Duration = Duration::from_secs(120);
const STATE_DEADLINE: Duration = Duration::from_secs(60);

#[test]
fn a_canceled_queued_job_ends_canceled_without_ever_starting() {
    let mut env = TestEnv::start(1);
    let since = SystemTime::now() - Duration::from_secs(1);

    // Occupy the only slot, then queue a second job behind it.
    let blocker = env.run_detached(&["--", "sleep", "60"]);
    env.wait_for_state(&blocker, "running", STATE_DEADLINE);
    let queued = env.run_detached(&["--", "echo", "never"]);
    assert_eq!(env.status(&queued)["state"], "queued");

    env.jobs(&["cancel", &queued]).assert_success();
    let status = env.status(&queued);
    assert_eq!(status["state"], "canceled", "{status}");
    assert!(status["started_at"].is_null(), "never started: {status}");
    assert!(status["exit_code"].is_null(), "{status}");
    assert!(
        status["reason"]
            .as_str()
            .is_some_and(|reason| !reason.is_empty()),
        "a canceled job has a reason: {status}"
    );
    env.jobs(&["wait", &queued])
        .assert_code(125)
        .assert_stderr_contains("cancel");
    env.jobs(&["logs", &queued])
        .assert_success()
        .assert_stdout(b"");

    // Cancel the running blocker too: that frees the slot.
    env.jobs(&["cancel", &blocker]).assert_success();
    env.jobs(&["wait", &blocker]).assert_code(125);
    assert_eq!(env.status(&blocker)["state"], "canceled");

    // A job queued after the canceled one runs. Wake-ups are delivered in
    // order, so by the time it has run, the worker has seen the canceled
    // job's wake-up and must have dropped it.
    env.jobs(&["run", "--", "echo", "after"])
        .assert_success()
        .assert_stdout(b"after\n");
    let stored = env.db_job(&queued).expect("the canceled job is stored");
    assert_eq!(stored.state, "canceled", "{stored:?}");
    assert!(!stored.started, "never started: {stored:?}");
    assert_eq!(stored.attempt, 0, "never claimed: {stored:?}");
    let events = container_events_between(
        since,
        SystemTime::now(),
        &[format!("label=jobs.job_id={queued}")],
    );
    assert!(
        events.is_empty(),
        "no container was ever made for the canceled job: {events:?}"
    );

    env.finish();
}

#[test]
fn canceling_a_running_job_stops_it_and_run_wait_and_follow_exit_125() {
    let mut env = TestEnv::start(2);

    let mut run = env.spawn_jobs(&[
        "run",
        "--",
        "sh",
        "-c",
        "echo started; sleep 60; echo never",
    ]);
    run.wait_for_stdout("the first line", STATE_DEADLINE, |out| {
        out.starts_with(b"started\n")
    });
    let id = env.db_last_job_id();
    let waiter = env.spawn_jobs(&["wait", &id]);
    let mut follower = env.spawn_jobs(&["follow", &id]);
    follower.wait_for_stdout("the first line", STATE_DEADLINE, |out| {
        out.starts_with(b"started\n")
    });

    let canceled_at = Instant::now();
    env.jobs(&["cancel", &id]).assert_success();
    let run = run.wait(CLI_DEADLINE);
    run.assert_code(125)
        .assert_stdout(b"started\n")
        .assert_stderr_contains("cancel");
    waiter.wait(CLI_DEADLINE).assert_code(125);
    follower
        .wait(CLI_DEADLINE)
        .assert_code(125)
        .assert_stdout(b"started\n");
    assert!(
        canceled_at.elapsed() < Duration::from_secs(30),
        "a canceled job stops within its grace period, not at the end of its sleep: {:?}",
        canceled_at.elapsed()
    );

    let status = env.status(&id);
    assert_eq!(status["state"], "canceled", "{status}");
    assert!(
        status["reason"]
            .as_str()
            .is_some_and(|reason| !reason.is_empty()),
        "a canceled job has a reason: {status}"
    );

    env.finish();
}

#[test]
fn a_job_that_outlives_its_timeout_exits_124_and_ends_timed_out() {
    let mut env = TestEnv::start(2);

    let started = Instant::now();
    env.jobs(&["run", "--timeout", "2s", "--", "sleep", "60"])
        .assert_code(124)
        .assert_stdout(b"");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "a 2 s timeout ends the job long before its 60 s sleep: {:?}",
        started.elapsed()
    );
    let id = env.db_last_job_id();
    let status = env.status(&id);
    assert_eq!(status["state"], "timed_out", "{status}");
    assert_eq!(status["timeout_seconds"], 2, "{status}");
    assert!(
        status["reason"]
            .as_str()
            .is_some_and(|reason| !reason.is_empty()),
        "a timed-out job has a reason: {status}"
    );
    env.jobs(&["wait", &id]).assert_code(124);

    env.finish();
}

#[test]
fn twenty_jobs_on_four_slots_run_at_most_four_at_a_time_and_end_with_their_own_codes() {
    let slots = 4;
    let mut env = TestEnv::start(slots);
    let watcher = env.watch_container_starts_and_dies();

    // Submit all twenty at once, each from its own CLI process.
    let submitters: Vec<(i32, BackgroundCli)> = (0..20)
        .map(|code| {
            let script = format!("sleep 0.5; exit {code}");
            (
                code,
                env.spawn_jobs(&["run", "-d", "--", "sh", "-c", &script]),
            )
        })
        .collect();
    let jobs: BTreeMap<String, i32> = submitters
        .into_iter()
        .map(|(code, submitter)| {
            let output = submitter.wait(CLI_DEADLINE);
            output.assert_success();
            (job_id_from_detached_output(&output), code)
        })
        .collect();
    assert_eq!(jobs.len(), 20, "twenty distinct job ids: {jobs:?}");
    assert_eq!(env.db_count_jobs(), 20);

    for (id, &code) in &jobs {
        env.jobs(&["wait", id]).assert_code(code);
        let status = env.status(id);
        let state = if code == 0 { "succeeded" } else { "failed" };
        assert_eq!(status["state"], state, "{status}");
        assert_eq!(status["exit_code"], code, "{status}");
    }

    let events = watcher.wait_for("twenty containers to die", STATE_DEADLINE, |events| {
        events.iter().filter(|event| event.action == "die").count() >= jobs.len()
    });
    let started: BTreeSet<&str> = events
        .iter()
        .filter(|event| event.action == "start")
        .map(|event| event.container_id.as_str())
        .collect();
    assert_eq!(started.len(), 20, "one container per job: {events:?}");
    for event in events.iter().filter(|event| event.action == "die") {
        let job = event
            .job_id
            .as_deref()
            .expect("containers carry jobs.job_id");
        let code = jobs
            .get(job)
            .expect("the container belongs to one of the jobs");
        assert_eq!(
            event.exit_code.as_deref(),
            Some(code.to_string().as_str()),
            "exit code of the container of {job}: {event:?}"
        );
    }
    let max = max_concurrently_running(&events);
    assert!(
        max <= slots as usize,
        "at most {slots} containers ran at once, saw {max}"
    );
    assert!(
        max > 1,
        "the slots ran jobs side by side (saw at most {max} at once)"
    );

    let listed = env.jobs(&["list", "--limit", "50"]);
    listed.assert_success();
    for id in jobs.keys() {
        assert!(
            listed.stdout_text().contains(id.as_str()),
            "list shows {id}: {listed:?}"
        );
    }

    env.finish();
}
