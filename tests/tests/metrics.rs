//! Prometheus metrics of the API and of a worker: a test scrapes both
//! before and after a few runs and checks that each counter and histogram
//! moved by exactly what those runs did.
//!
//! Synchronisation: the CLI's own exit, then the worker's count of ended
//! attempts (it counts an end once it is recorded, so just after a client
//! may see it), polled; everything else is counted before the end.

use std::collections::HashMap;

use std::time::Duration;

use jobs_e2e::http;
use jobs_e2e::poll::wait_until;
use jobs_e2e::{TestEnv, TestEnvOptions};

const DEADLINE: Duration = Duration::from_secs(30);

/// One scrape: every sample by its name and labels, as the text format
/// prints them (`jobs_worker_jobs_ended_total{state="failed"}`).
struct Scrape(HashMap<String, f64>);

impl Scrape {
    fn of(base_url: &str) -> Scrape {
        let response = http::request(base_url, "GET", "/metrics", None, None);
        assert_eq!(response.status, 200, "{}", response.body);
        Scrape(
            response
                .body
                .lines()
                .filter(|line| !line.starts_with('#') && !line.is_empty())
                .filter_map(|line| {
                    let (key, value) = line.rsplit_once(' ')?;
                    Some((key.to_owned(), value.parse().ok()?))
                })
                .collect(),
        )
    }

    fn get(&self, key: &str) -> f64 {
        self.0.get(key).copied().unwrap_or(0.0)
    }
}

/// `after - before` of one sample.
fn grew(before: &Scrape, after: &Scrape, key: &str) -> f64 {
    after.get(key) - before.get(key)
}

#[test]
fn the_api_and_the_worker_count_what_runs_did() {
    let port = jobs_e2e::services::free_port();
    let worker_url = format!("http://127.0.0.1:{port}");
    let mut env = TestEnv::start_with(
        TestEnvOptions::new(2).worker_env("JOBS_METRICS_LISTEN", &format!("127.0.0.1:{port}")),
    );
    env.jobs(&[
        "apps",
        "create",
        "broken",
        "--image",
        "jobs-test/no-such-image:1",
    ])
    .assert_success();
    let worker_before = Scrape::of(&worker_url);
    let api_before = Scrape::of(env.api_url());

    env.jobs(&["run", "--", "sh", "-c", "printf hello"])
        .assert_success()
        .assert_stdout(b"hello");
    env.jobs(&["run", "--", "sh", "-c", "printf abc >&2; exit 3"])
        .assert_code(3);
    env.jobs(&["run", "-a", "broken", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains("image not found");

    let worker = wait_until("the worker to count three ends", DEADLINE, || {
        let scrape = Scrape::of(&worker_url);
        let ended = |state: &str| {
            grew(
                &worker_before,
                &scrape,
                &format!("jobs_worker_jobs_ended_total{{state=\"{state}\"}}"),
            )
        };
        (ended("succeeded") + ended("failed") >= 3.0).then_some(scrape)
    });
    let api = Scrape::of(env.api_url());
    let worker_grew = |key: &str| grew(&worker_before, &worker, key);
    let api_grew = |key: &str| grew(&api_before, &api, key);

    // The worker: ends by state, and the run durations of the two that ran.
    assert_eq!(
        worker_grew("jobs_worker_jobs_ended_total{state=\"succeeded\"}"),
        1.0
    );
    assert_eq!(
        worker_grew("jobs_worker_jobs_ended_total{state=\"failed\"}"),
        2.0
    );
    assert_eq!(
        worker_grew("jobs_run_duration_seconds_count{state=\"succeeded\"}"),
        1.0
    );
    assert_eq!(
        worker_grew("jobs_run_duration_seconds_count{state=\"failed\"}"),
        1.0
    );
    assert!(worker_grew("jobs_run_duration_seconds_sum{state=\"succeeded\"}") > 0.0);
    // Three claims, two containers started, one that could not be.
    assert_eq!(
        worker_grew("jobs_time_in_queue_seconds_count{priority=\"normal\"}"),
        3.0
    );
    assert_eq!(worker_grew("jobs_start_latency_seconds_count"), 2.0);
    assert!(worker_grew("jobs_start_latency_seconds_sum") > 0.0);
    assert_eq!(worker_grew("jobs_container_start_failures_total"), 1.0);
    // `hello` and `abc`: eight bytes of output stored.
    assert_eq!(worker_grew("jobs_log_bytes_total"), 8.0);
    assert_eq!(worker_grew("jobs_leases_lost_total"), 0.0);
    assert_eq!(worker.get("jobs_worker_slots"), 2.0);
    assert_eq!(worker.get("jobs_worker_slots_used"), 0.0);

    // The API: three jobs created by three POSTs, and the stored states.
    assert_eq!(api_grew("jobs_jobs_created_total"), 3.0);
    assert_eq!(
        api_grew(
            "jobs_api_requests_total{method=\"POST\",route=\"/v1/apps/{app}/jobs\",status=\"201\"}"
        ),
        3.0
    );
    assert_eq!(api_grew("jobs_jobs{state=\"succeeded\"}"), 1.0);
    assert_eq!(api_grew("jobs_jobs{state=\"failed\"}"), 2.0);
    assert_eq!(api.get("jobs_queue_depth"), 0.0);
    env.finish();
}
