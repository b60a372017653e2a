//! The shim that runs each queued job's command (crates/worker/shim):
//! the job sees what it would without it.
//!
//! Synchronisation: the CLI's own exit.

use jobs_e2e::TestEnv;

#[test]
fn a_command_the_shim_cannot_execute_gets_the_reason_docker_would_give() {
    let mut env = TestEnv::start(1);
    env.jobs(&["run", "--", "no-such-command", "--flag"])
        .assert_code(127)
        .assert_stdout(b"");
    let status = env.status(&env.db_last_job_id());
    assert_eq!(status["state"], "failed", "{status}");
    assert_eq!(
        status["reason"], "command not found: no-such-command",
        "{status}"
    );

    env.jobs(&["run", "--", "/etc", "x"]).assert_code(126);
    let status = env.status(&env.db_last_job_id());
    assert_eq!(status["reason"], "command not executable: /etc", "{status}");
    env.finish();
}

#[test]
fn signals_reach_the_command_and_its_status_passes_through() {
    let mut env = TestEnv::start(1);
    // The command's own pid and parent: it is not PID 1, but sees a
    // SIGTERM sent to the container; `kill -9 $$` ends it as signal 9.
    env.jobs(&["run", "--", "sh", "-c", "kill -9 $$"])
        .assert_code(137);
    env.jobs(&["run", "--", "sh", "-c", "printf '%s' \"$0 $1\"", "a", "b"])
        .assert_success()
        .assert_stdout(b"a b");
    env.finish();
}

#[test]
fn a_pruned_image_with_the_shim_is_made_again_by_the_next_job() {
    let mut env = TestEnv::start(1);
    env.jobs(&["run", "--", "echo", "first"])
        .assert_code(0)
        .assert_stdout(b"first\n");
    // What an operator's `docker image rm jobs-shim:…` does (docs/operations.md:
    // always safe); `-f` untags it even while another test's container uses it.
    let tags = jobs_e2e::docker::docker(&[
        "images",
        "--format",
        "{{.Repository}}:{{.Tag}}",
        "jobs-shim",
    ]);
    assert!(!tags.trim().is_empty(), "no image with the shim was made");
    for tag in tags.split_whitespace() {
        jobs_e2e::docker::docker(&["rmi", "-f", tag]);
    }
    env.jobs(&["run", "--", "sh", "-c", "echo again; exit 3"])
        .assert_code(3)
        .assert_stdout(b"again\n");
    env.finish();
}
