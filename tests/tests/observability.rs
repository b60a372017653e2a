//! What an operator sees of the servers: JSON logs that carry the request
//! id and the job id on both sides.
//!
//! Synchronisation: the job's end is a bounded poll of its stored state;
//! the worker writes "job ended" before the terminal state is visible, and
//! the API writes its request line before its answer is sent, so both log
//! files are complete when the reads below happen.

use std::path::Path;
use std::time::Duration;

use jobs_e2e::{TestEnv, http};

const JOB_DEADLINE: Duration = Duration::from_secs(60);

/// Every line of a server's stderr, each parsed as JSON (panics on one
/// that is not).
fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|error| panic!("not JSON ({error}): {line:?}"))
        })
        .collect()
}

fn message(line: &serde_json::Value) -> &str {
    line["fields"]["message"].as_str().unwrap_or("")
}

#[test]
fn json_logs_carry_the_request_id_and_the_job_id_on_both_sides() {
    let json = [("JOBS_LOG_FORMAT", "json")];
    let mut env = TestEnv::start_with_api_env(1, &json, &[]);
    env.kill_worker();
    env.restart_worker_with(&json);

    // A caller's own request id is kept and sent back.
    let created = http::request_with_headers(
        env.api_url(),
        "POST",
        "/v1/apps/demo/jobs",
        Some(&env.admin_token),
        Some(r#"{"command":["sh","-c","echo observed"]}"#),
        &[("x-request-id", "e2e-create-1")],
    );
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.header("x-request-id"), Some("e2e-create-1"));
    let job_id = created.json()["id"].as_str().expect("an id").to_owned();
    let ended = env.wait_for_job(&job_id, "succeeded", JOB_DEADLINE, |job| job.is_terminal());
    assert_eq!(ended.state, "succeeded", "{ended:?}");

    // Without one, the API makes one up and sends it back.
    let read = http::request(
        env.api_url(),
        "GET",
        &format!("/v1/jobs/{job_id}"),
        Some(&env.admin_token),
        None,
    );
    assert_eq!(read.status, 200, "{read:?}");
    let made_up = read
        .header("x-request-id")
        .expect("an x-request-id")
        .to_owned();
    assert_eq!(made_up.len(), 36, "a UUID: {made_up}");

    let api = json_lines(&env.log_dir.join("api.stderr.log"));
    let queued = api
        .iter()
        .find(|line| message(line) == "job queued")
        .expect("the API logged the queued job");
    assert_eq!(queued["span"]["request_id"], "e2e-create-1", "{queued}");
    assert_eq!(queued["span"]["job_id"], job_id.as_str(), "{queued}");
    assert_eq!(queued["fields"]["job_id"], job_id.as_str(), "{queued}");
    let request_line = |request_id: &str| {
        api.iter()
            .find(|line| message(line) == "request" && line["span"]["request_id"] == request_id)
            .unwrap_or_else(|| panic!("no request line with request id {request_id}"))
            .clone()
    };
    let create_line = request_line("e2e-create-1");
    assert_eq!(create_line["fields"]["status"], 201, "{create_line}");
    assert_eq!(create_line["span"]["job_id"], job_id.as_str());
    let read_line = request_line(&made_up);
    assert_eq!(read_line["fields"]["route"], "/v1/jobs/{id}", "{read_line}");
    assert_eq!(read_line["span"]["job_id"], job_id.as_str(), "{read_line}");

    let worker = json_lines(&env.log_dir.join("worker-restarted.stderr.log"));
    let job_ended = worker
        .iter()
        .find(|line| message(line) == "job ended")
        .expect("the worker logged the job's end");
    assert_eq!(job_ended["span"]["job_id"], job_id.as_str(), "{job_ended}");
    assert_eq!(job_ended["span"]["attempt"], 1, "{job_ended}");
    assert_eq!(job_ended["fields"]["state"], "succeeded", "{job_ended}");
    env.finish();
}
