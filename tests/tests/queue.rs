//! Queue transparency: a queued job says where it stands and why it waits,
//! and `--queue-timeout` gives up on a job no worker starts.
//!
//! Synchronisation: states are bounded polls of the stored job; "the
//! worker is gone" is its graceful exit (it forgets its registry row before
//! it exits), "the worker is back" is its ready line.

use std::time::Duration;

use jobs_e2e::TestEnv;

const STATE_DEADLINE: Duration = Duration::from_secs(60);
const DRAIN_DEADLINE: Duration = Duration::from_secs(30);

#[test]
fn a_queued_job_shows_its_place_and_why_it_waits() {
    let mut env = TestEnv::start(1);
    let blocker = env.run_detached(&["--", "sleep", "60"]);
    env.wait_for_state(&blocker, "running", STATE_DEADLINE);
    let first = env.run_detached(&["--", "echo", "one"]);
    let second = env.run_detached(&["--", "echo", "two"]);

    let status = env.status(&second);
    assert_eq!(status["state"], "queued", "{status}");
    assert_eq!(status["queue"]["position"], 2, "{status}");
    assert_eq!(
        status["queue"]["waiting_for"],
        "every worker slot is busy (1 slot on 1 worker); 1 job of the app goes first",
        "{status}"
    );
    let human = env.jobs(&["status", &first]);
    human.assert_success();
    assert_eq!(
        human.field_line("queue").as_deref(),
        Some("queue: position 1: every worker slot is busy (1 slot on 1 worker)"),
        "{}",
        human.stdout_text()
    );
    // A running job has no place in the queue.
    assert!(env.status(&blocker).get("queue").is_none());
    // The list gives each queued job its place too (the console's runs).
    let list = env.jobs(&["list", "--json"]);
    list.assert_success();
    let listed: serde_json::Value = serde_json::from_slice(&list.stdout).expect("JSON");
    let places: Vec<(String, serde_json::Value)> = listed["jobs"]
        .as_array()
        .expect("a list of jobs")
        .iter()
        .map(|job| {
            (
                job["id"].as_str().unwrap().to_owned(),
                job["queue"]["position"].clone(),
            )
        })
        .collect();
    assert_eq!(
        places,
        vec![
            (second.clone(), serde_json::json!(2)),
            (first.clone(), serde_json::json!(1)),
            (blocker.clone(), serde_json::Value::Null),
        ],
        "{listed}"
    );

    env.jobs(&["cancel", &blocker]).assert_success();
    env.wait_for_state(&first, "succeeded", STATE_DEADLINE);
    env.wait_for_state(&second, "succeeded", STATE_DEADLINE);
    assert!(env.status(&second).get("queue").is_none());
    env.finish();
}

#[test]
fn a_job_no_worker_starts_gives_up_after_its_queue_timeout() {
    let mut env = TestEnv::start(1);
    // A worker that shuts down forgets its registry row: none is alive.
    let exit = env.terminate_worker(DRAIN_DEADLINE);
    assert!(exit.success(), "{exit:?}");

    let detached = env.run_detached(&["--queue-timeout", "3s", "--", "echo", "never"]);
    let status = env.status(&detached);
    assert_eq!(status["state"], "queued", "{status}");
    assert_eq!(status["queue"]["position"], 1, "{status}");
    assert_eq!(
        status["queue"]["waiting_for"], "no worker is alive",
        "{status}"
    );

    // The CLI following a job that never starts exits 125 with the reason.
    let followed = env.jobs(&["run", "--queue-timeout", "2s", "--", "echo", "never"]);
    assert_eq!(followed.code(), 125, "{followed:?}");
    assert_eq!(followed.stdout_text(), "");
    assert!(
        followed
            .stderr_text()
            .contains("not started within its queue timeout of 2s"),
        "{followed:?}"
    );

    let ended = env.wait_for_state(&detached, "canceled", STATE_DEADLINE);
    assert_eq!(
        ended.reason.as_deref(),
        Some("not started within its queue timeout of 3s"),
        "{ended:?}"
    );
    let waited = env.jobs(&["wait", &detached]);
    assert_eq!(waited.code(), 125, "{waited:?}");

    // A patient job waits for the worker and runs once it is back.
    let patient = env.run_detached(&["--", "echo", "later"]);
    env.restart_worker();
    let done = env.wait_for_state(&patient, "succeeded", STATE_DEADLINE);
    assert_eq!(done.exit_code, Some(0), "{done:?}");
    env.finish();
}

#[test]
fn a_bad_queue_timeout_is_refused_before_any_job_exists() {
    let mut env = TestEnv::start(1);
    for bad in ["0s", "8d", "soon"] {
        let refused = env.jobs(&["run", "--queue-timeout", bad, "--", "true"]);
        assert_eq!(refused.code(), 2, "{bad}: {refused:?}");
        assert!(
            refused.stderr_text().contains(&format!(
                "invalid value '{bad}' for '--queue-timeout <DUR>'"
            )),
            "{bad}: {refused:?}"
        );
    }
    assert_eq!(env.db_count_jobs(), 0);
    env.finish();
}
