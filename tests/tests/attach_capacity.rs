//! Interactive runs and worker capacity, against the real binaries:
//! - with every slot taken, `jobs run -i` says so, shows its place in line,
//!   and runs (in order) once a slot frees;
//! - a run whose client vanishes is stopped after the grace period, and
//!   only then; one nobody ever attaches to does not wait forever.

use std::time::Duration;

use jobs_e2e::{TestEnv, http, wait_until};

const START: Duration = Duration::from_secs(60);

fn waiting_line(position: u32) -> String {
    format!("jobs: every worker is busy; waiting for a free slot (position {position})")
}

#[test]
fn a_full_worker_puts_interactive_runs_in_line_and_runs_them_in_order() {
    let mut env = TestEnv::start(1);
    let blocker = env.run_detached(&["--", "sleep", "300"]);
    env.wait_for_state(&blocker, "running", START);

    let first = env.spawn_jobs(&["run", "-i", "--", "echo", "first"]);
    wait_until("the first run's place in line", START, || {
        String::from_utf8_lossy(&first.stderr_so_far())
            .contains(&waiting_line(1))
            .then_some(())
    });
    let second = env.spawn_jobs(&["run", "-i", "--", "echo", "second"]);
    wait_until("the second run's place in line", START, || {
        String::from_utf8_lossy(&second.stderr_so_far())
            .contains(&waiting_line(2))
            .then_some(())
    });

    // Operators see the line too.
    let metrics = http::request(env.api_url(), "GET", "/metrics", None, None);
    assert_eq!(metrics.status, 200);
    for line in ["jobs_attach_waiting 2", "jobs_attach_clients 2"] {
        assert!(
            metrics.body.lines().any(|l| l == line),
            "{line} in {}",
            metrics.body
        );
    }

    env.jobs(&["cancel", &blocker]).assert_success();
    let first = first.wait(START);
    first.assert_success().assert_stdout(b"first\n");
    let second = second.wait(START);
    second.assert_success().assert_stdout(b"second\n");
    // The second moved up to first place before it ran.
    assert!(
        second.stderr_text().contains(&waiting_line(1)),
        "{:?}",
        second.stderr_text()
    );
    env.finish();
}

#[test]
fn a_vanished_client_gets_the_grace_period_then_its_run_stops() {
    let mut env = TestEnv::start_with_api_env(1, &[("JOBS_ATTACH_GRACE", "3s")], &[]);
    let client = env.spawn_jobs(&["run", "-i", "--", "sh", "-c", "echo up; sleep 300"]);
    let job_id = wait_until("the run's job row", START, || {
        (env.db_count_jobs() == 1).then(|| env.db_last_job_id())
    });
    env.wait_for_state(&job_id, "running", START);
    let killed_at = std::time::Instant::now();
    client.kill();

    // The run goes on for the grace period, and is stopped after it.
    let ended = env.wait_for_job(&job_id, "canceled", START, |job| job.is_terminal());
    assert!(
        killed_at.elapsed() >= Duration::from_secs(3),
        "stopped {:?} after its client vanished, within the grace period",
        killed_at.elapsed()
    );
    assert_eq!(ended.state, "canceled", "{ended:?}");
    assert_eq!(
        ended.reason.as_deref(),
        Some("no client attached within the grace period"),
        "{ended:?}"
    );
    env.finish();
}

#[test]
fn a_run_nobody_attaches_to_ends_after_the_grace_period() {
    let mut env = TestEnv::start_with_api_env(1, &[("JOBS_ATTACH_GRACE", "2s")], &[]);
    let created = http::request(
        env.api_url(),
        "POST",
        "/v1/apps/demo/jobs",
        Some(&env.admin_token),
        Some(r#"{"command":["sleep","300"],"interactive":{"tty":false}}"#),
    );
    assert_eq!(created.status, 201, "{created:?}");
    let job_id = created.json()["id"].as_str().expect("an id").to_owned();
    let ended = env.wait_for_job(&job_id, "canceled", START, |job| job.is_terminal());
    assert_eq!(ended.state, "canceled", "{ended:?}");
    env.finish();
}
