//! Batch scheduling against the real services: a batch of any size
//! queues, an app's `--max-running` caps its containers (counted from
//! Docker), free slots go to the app with the fewest running jobs per
//! weight, and `--priority high` goes before the app's own backlog.

use std::collections::BTreeMap;
use std::time::Duration;

use jobs_e2e::docker::max_concurrently_running;
use jobs_e2e::env::job_id_from_detached_output;
use jobs_e2e::{TEST_IMAGE, TestEnv};

const DEADLINE: Duration = Duration::from_secs(180);

#[test]
fn forty_detached_submissions_of_one_app_are_all_accepted_and_end_with_their_own_codes() {
    let mut env = TestEnv::start(4);
    let jobs: BTreeMap<String, i32> = (0..40)
        .map(|code| {
            let script = format!("exit {code}");
            let output = env.jobs(&["run", "-d", "--", "sh", "-c", &script]);
            output.assert_success();
            (job_id_from_detached_output(&output), code)
        })
        .collect();
    assert_eq!(jobs.len(), 40);
    for (id, &code) in &jobs {
        env.jobs_with_timeout(&["wait", id], DEADLINE)
            .assert_code(code);
    }
    env.finish();
}

#[test]
fn max_running_1_never_runs_two_of_the_app_s_containers_at_once() {
    let mut env = TestEnv::start(4);
    env.jobs(&["apps", "set", "demo", "--max-running", "1"])
        .assert_success();
    let shown = env.jobs(&["apps", "show", "demo"]);
    assert_eq!(
        shown.field_line("max running").as_deref(),
        Some("max running: 1"),
        "{}",
        shown.stdout_text()
    );
    let watcher = env.watch_container_starts_and_dies();
    let jobs: Vec<String> = (0..6)
        .map(|_| env.run_detached(&["--", "sh", "-c", "sleep 0.3"]))
        .collect();
    // The ones behind the cap say so.
    let waiting = env.status(&jobs[5]);
    if waiting["state"] == "queued" {
        let reason = waiting["queue"]["waiting_for"].as_str().unwrap();
        assert!(
            reason.starts_with("the app's cap: 1 of its jobs run, its max-running is 1")
                || reason.starts_with("waiting for a worker"),
            "{waiting}"
        );
    }
    for id in &jobs {
        env.jobs_with_timeout(&["wait", id], DEADLINE)
            .assert_success();
    }
    let events = watcher.wait_for("six containers to die", DEADLINE, |events| {
        events.iter().filter(|event| event.action == "die").count() >= jobs.len()
    });
    assert_eq!(
        events
            .iter()
            .filter(|event| event.action == "start")
            .count(),
        6,
        "{events:?}"
    );
    assert_eq!(max_concurrently_running(&events), 1, "{events:?}");
    env.finish();
}

#[test]
fn another_app_s_run_starts_within_one_slot_turnover_of_a_backlog() {
    let mut env = TestEnv::start(2);
    // App `demo` holds a backlog of 200 jobs on the 2 slots (about 100 s
    // of work, far more than the submissions take).
    let backlog: Vec<String> = (0..200)
        .map(|_| env.run_detached(&["--", "sleep", "1"]))
        .collect();
    let queued = env.db_query_one("select count(*) from jobs where state = 'queued'");
    assert!(queued > 100, "the backlog is there: {queued} queued");
    env.jobs(&["apps", "create", "other", "--image", TEST_IMAGE])
        .assert_success();
    let other = env.run_detached(&["-a", "other", "--", "sh", "-c", "echo mine"]);
    env.wait_for_state(&other, "succeeded", DEADLINE);

    // Backlog jobs that started after `other` was queued and before it
    // started: the slot that freed first went to `other`, so at most one
    // (a claim already under way when it was queued).
    let passed: i64 = env.db_query_one(&format!(
        "select count(*) from jobs where app = 'demo' \
           and started_at > (select created_at from jobs where id = '{other}') \
           and started_at < (select started_at from jobs where id = '{other}')"
    ));
    assert!(passed <= 1, "{passed} backlog jobs started first");
    env.jobs(&["logs", &other])
        .assert_success()
        .assert_stdout(b"mine\n");

    // Teardown: the rest of the backlog is not run.
    for id in &backlog {
        env.jobs(&["cancel", id]).assert_success();
    }
    env.finish();
}

#[test]
fn a_high_priority_run_starts_before_the_app_s_earlier_backlog() {
    let mut env = TestEnv::start(1);
    let blocker = env.run_detached(&["--", "sleep", "300"]);
    env.wait_for_state(&blocker, "running", DEADLINE);
    let backlog: Vec<String> = (0..4).map(|_| env.run_detached(&["--", "true"])).collect();
    let low = env.run_detached(&["--priority", "low", "--", "true"]);
    let urgent = env.run_detached(&["--priority", "high", "--", "true"]);
    let status = env.status(&urgent);
    assert_eq!(status["priority"], "high", "{status}");
    assert_eq!(status["queue"]["position"], 1, "{status}");
    assert_eq!(env.status(&low)["queue"]["position"], 6);
    let human = env.jobs(&["status", &urgent]);
    assert_eq!(
        human.field_line("priority").as_deref(),
        Some("priority: high")
    );

    // The queue's metrics, by app and priority.
    let metrics = jobs_e2e::http::request(env.api_url(), "GET", "/metrics", None, None);
    assert_eq!(metrics.status, 200);
    for line in [
        "jobs_queued{app=\"demo\",priority=\"normal\"} 4",
        "jobs_queued{app=\"demo\",priority=\"high\"} 1",
        "jobs_queued{app=\"demo\",priority=\"low\"} 1",
    ] {
        assert!(
            metrics.body.lines().any(|l| l == line),
            "no {line}: {}",
            metrics.body
        );
    }
    assert!(
        metrics
            .body
            .contains("jobs_queued_oldest_seconds{app=\"demo\",priority=\"normal\"}"),
        "{}",
        metrics.body
    );

    env.jobs(&["cancel", &blocker]).assert_success();
    for id in backlog.iter().chain([&urgent, &low]) {
        env.wait_for_state(id, "succeeded", DEADLINE);
    }
    let order: Vec<String> = env
        .db_query_strings("select id from jobs where state = 'succeeded' order by started_at, id");
    let mut expected = vec![urgent.clone()];
    expected.extend(backlog.iter().cloned());
    expected.push(low.clone());
    assert_eq!(order, expected);
    env.finish();
}

#[test]
fn bad_scheduling_values_are_refused_naming_the_field_and_limit() {
    let env = TestEnv::start(1);
    env.jobs(&["apps", "set", "demo", "--weight", "0"])
        .assert_usage_error("must be 1 to 1000 (got 0)");
    env.jobs(&["apps", "set", "demo", "--max-running", "0"])
        .assert_usage_error("must be 1 to 100000 (got 0)");
    env.jobs(&["run", "--priority", "urgent", "--", "true"])
        .assert_usage_error("must be low, normal or high (got \"urgent\")");
    for (path, method, body, field, message) in [
        (
            "/v1/apps/demo",
            "PATCH",
            r#"{"weight":0}"#,
            "weight",
            "must be 1 to 1000 (got 0)",
        ),
        (
            "/v1/apps/demo",
            "PATCH",
            r#"{"max_running":100001}"#,
            "max_running",
            "must be 1 to 100000 (got 100001); leave it out for no cap",
        ),
        (
            "/v1/apps/demo/jobs",
            "POST",
            r#"{"command":["true"],"priority":"urgent"}"#,
            "priority",
            "must be low, normal or high (got \"urgent\")",
        ),
    ] {
        let raw = jobs_e2e::http::request(
            env.api_url(),
            method,
            path,
            Some(&env.admin_token),
            Some(body),
        );
        assert_eq!(raw.status, 422, "{raw:?}");
        assert_eq!(raw.json()["error"]["field"], field, "{raw:?}");
        assert_eq!(raw.json()["error"]["message"], message, "{raw:?}");
    }
    assert_eq!(env.db_count_jobs(), 0, "nothing was created");
}
