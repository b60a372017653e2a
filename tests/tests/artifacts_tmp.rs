//! Artifacts written under `/tmp`, the capped tmpfs that goes with the
//! stopped container: collected on every end (success, failure, timeout,
//! cancel, OOM), with and without a read-only root.
//!
//! Synchronisation: the CLI's own exit, and bounded polls of job states
//! and logs.

use std::path::Path;
use std::time::Duration;

use jobs_e2e::{TestEnv, wait_until};

const RUN_TIMEOUT: Duration = Duration::from_secs(120);
const STATE_DEADLINE: Duration = Duration::from_secs(60);
/// What every job writes to its artifact before it ends its own way.
const WRITE: &str = "mkdir -p /tmp/out && printf 'id,n\\n1,2\\n' > /tmp/report.csv \
                     && echo nested > /tmp/out/n.txt && echo written";

/// Checks that `job_id` has `/tmp/report.csv` and `/tmp/out` collected,
/// byte for byte, and `/tmp/missing` noted as missing.
fn assert_collected(env: &TestEnv, job_id: &str, label: &str) {
    let status = env.status(job_id);
    let artifacts = status["artifacts"].as_array().expect("artifacts");
    assert_eq!(artifacts.len(), 3, "{label}: {status}");
    assert!(artifacts[0]["error"].is_null(), "{label}: {status}");
    assert!(artifacts[1]["error"].is_null(), "{label}: {status}");
    assert_eq!(
        artifacts[2]["error"], "no such file or directory",
        "{label}: {status}"
    );
    let out = env.log_dir.join(format!("artifacts-{label}"));
    let _ = std::fs::remove_dir_all(&out);
    env.jobs(&["artifacts", job_id, "-o", &out.display().to_string()])
        .assert_success();
    assert_eq!(
        std::fs::read(out.join("report.csv")).unwrap(),
        b"id,n\n1,2\n",
        "{label}"
    );
    assert_eq!(
        std::fs::read(Path::new(&out).join("out/n.txt")).unwrap(),
        b"nested\n",
        "{label}"
    );
}

fn run_args<'a>(extra: &[&'a str], script: &'a str) -> Vec<&'a str> {
    let mut args = vec![
        "run",
        "--artifact",
        "/tmp/report.csv",
        "--artifact",
        "/tmp/out",
        "--artifact",
        "/tmp/missing",
    ];
    args.extend_from_slice(extra);
    args.extend(["--", "sh", "-c", script]);
    args
}

#[test]
fn tmp_artifacts_are_collected_on_success_failure_timeout_and_oom() {
    let mut env = TestEnv::start(1);
    let ends = [
        ("succeeded", "", 0, vec![]),
        ("failed", "; exit 3", 3, vec![]),
        // SIGTERM is ignored: the shim's kill after the grace ends it.
        (
            "timed_out",
            "; trap '' TERM; sleep 300",
            124,
            vec!["--timeout", "3s"],
        ),
        (
            "oom",
            "; head -c 400m /dev/zero | tail -n 1 > /dev/null",
            137,
            vec!["-s", "S"],
        ),
    ];
    for (label, end, code, extra) in ends {
        let script = format!("{WRITE}{end}");
        env.jobs_with_timeout(&run_args(&extra, &script), RUN_TIMEOUT)
            .assert_code(code)
            .assert_stdout(b"written\n");
        let job_id = env.db_last_job_id();
        let status = env.status(&job_id);
        let state = if label == "oom" { "failed" } else { label };
        assert_eq!(status["state"], state, "{status}");
        if label == "oom" {
            assert_eq!(status["reason"], "oom killed", "{status}");
        }
        assert_collected(&env, &job_id, label);
    }
    env.finish();
}

#[test]
fn tmp_artifacts_are_collected_when_a_job_is_canceled() {
    let mut env = TestEnv::start(1);
    let script = format!("{WRITE}; sleep 300");
    let mut args = run_args(&[], &script);
    args.insert(1, "--detached");
    let output = env.jobs(&args);
    output.assert_success();
    let job_id = jobs_e2e::env::job_id_from_detached_output(&output);
    wait_until("the job to write its files", STATE_DEADLINE, || {
        (env.jobs(&["logs", &job_id]).stdout == b"written\n").then_some(())
    });
    env.jobs(&["cancel", &job_id]).assert_success();
    env.jobs_with_timeout(&["wait", &job_id], RUN_TIMEOUT)
        .assert_code(125);
    assert_eq!(env.status(&job_id)["state"], "canceled");
    assert_collected(&env, &job_id, "canceled");
    env.finish();
}

#[test]
fn tmp_artifacts_are_collected_under_a_read_only_root() {
    let mut env = TestEnv::start(1);
    env.jobs(&[
        "apps",
        "create",
        "ro",
        "--image",
        jobs_e2e::TEST_IMAGE,
        "--read-only-root",
        "--user",
        "65534",
    ])
    .assert_success();
    let mut args = vec!["-a", "ro"];
    let script = format!("{WRITE}; touch /root-file 2>/dev/null && echo root writable; exit 0");
    args.extend(run_args(&[], &script));
    env.jobs_with_timeout(&args, RUN_TIMEOUT)
        .assert_success()
        .assert_stdout(b"written\n");
    let job_id = env.db_last_job_id();
    assert_collected(&env, &job_id, "read-only");
    env.finish();
}
