//! SIGINT and SIGTERM while the CLI watches a job, as a CI runner sends
//! them when a pipeline is canceled: by default the CLI detaches and says
//! how to get back to the job, which goes on; with `--on-interrupt cancel`
//! it cancels the job, follows it to its end and exits with its code.

use std::time::Duration;

use jobs_e2e::{BackgroundCli, TestEnv};

const DEADLINE: Duration = Duration::from_secs(120);

/// Prints `started`, then on SIGTERM `stopping` and exits 7.
const STOPPABLE: &str =
    "trap 'echo stopping; exit 7' TERM; echo started; while :; do sleep 0.2; done";

#[test]
fn sigterm_detaches_by_default_and_the_job_goes_on() {
    let mut env = TestEnv::start(1);
    let mut run = env.spawn_jobs(&["run", "--", "sh", "-c", STOPPABLE]);
    run.wait_for_stdout("the job's first line", DEADLINE, |out| out == b"started\n");
    run.signal(libc::SIGTERM);
    let detached = run.wait(DEADLINE);
    let id = env.db_last_job_id();
    detached
        .assert_code(143)
        .assert_stdout(b"started\n")
        .assert_stderr_contains(&format!("detached from job {id}; it is still running"))
        .assert_stderr_contains(&format!("follow it: jobsctl follow {id}"))
        .assert_stderr_contains(&format!("cancel it: jobsctl cancel {id}"));
    let status = env.status(&id);
    assert_eq!(status["state"], "running", "{status}");

    env.jobs(&["cancel", &id]).assert_success();
    env.jobs_with_timeout(&["wait", &id], DEADLINE)
        .assert_code(125);
    env.finish();
}

#[test]
fn sigterm_with_on_interrupt_cancel_cancels_the_job_and_exits_with_its_end() {
    sigterm_cancels_the_run(&[]);
}

#[test]
fn sigterm_on_an_interactive_run_with_on_interrupt_cancel_cancels_it() {
    sigterm_cancels_the_run(&["-i"]);
}

/// `jobs run RUN_ARGS --on-interrupt cancel` of a job that prints a line
/// as it stops: SIGTERM cancels it, and the CLI ends with the job.
fn sigterm_cancels_the_run(run_args: &[&str]) {
    let mut env = TestEnv::start(1);
    let mut args = vec!["run"];
    args.extend_from_slice(run_args);
    args.extend_from_slice(&["--on-interrupt", "cancel", "--", "sh", "-c", STOPPABLE]);
    let mut run = env.spawn_jobs(&args);
    run.wait_for_stdout("the job's first line", DEADLINE, |out| out == b"started\n");
    run.signal(libc::SIGTERM);
    let ended = run.wait(DEADLINE);
    let id = env.db_last_job_id();
    // The output the job printed while it stopped reaches the CLI too.
    ended
        .assert_code(125)
        .assert_stdout(b"started\nstopping\n")
        .assert_stderr_contains(&format!("jobs: SIGTERM: canceling job {id}"))
        .assert_stderr_contains(&format!("jobs: job {id} canceled"));
    let status = env.status(&id);
    assert_eq!(status["state"], "canceled", "{status}");
    assert_eq!(status["attempt"], 1, "{status}");
    env.finish();
}

#[test]
fn ctrl_c_on_wait_with_jobs_on_interrupt_cancel_cancels_the_job() {
    let mut env = TestEnv::start(1);
    let id = env.run_detached(&["--", "sh", "-c", STOPPABLE]);
    env.wait_for_state(&id, "running", DEADLINE);
    let mut command = env.jobs_command(&["wait", &id]);
    command.env("JOBS_ON_INTERRUPT", "cancel");
    let waiting = BackgroundCli::spawn(command);
    // `wait` prints nothing until the end: send Ctrl-C once it handles it.
    waiting.wait_for_signal_handler(libc::SIGINT, DEADLINE);
    waiting.signal(libc::SIGINT);
    waiting
        .wait(DEADLINE)
        .assert_code(125)
        .assert_stderr_contains(&format!("jobs: SIGINT: canceling job {id}"))
        .assert_stderr_contains(&format!("jobs: job {id} canceled"));
    assert_eq!(env.status(&id)["state"], "canceled");
    env.jobs(&["logs", &id])
        .assert_success()
        .assert_stdout(b"started\nstopping\n");
    env.finish();
}

#[test]
fn a_second_signal_stops_waiting_for_the_canceled_job_and_the_cancel_goes_on() {
    let mut env = TestEnv::start(1);
    // Deaf to SIGTERM: it stops only at the grace period's SIGKILL.
    let mut run = env.spawn_jobs(&[
        "run",
        "--on-interrupt",
        "cancel",
        "--",
        "sh",
        "-c",
        "trap '' TERM; echo started; while :; do sleep 0.2; done",
    ]);
    run.wait_for_stdout("the job's first line", DEADLINE, |out| out == b"started\n");
    run.signal(libc::SIGTERM);
    let id = env.db_last_job_id();
    jobs_e2e::wait_until("the cancel to be asked", DEADLINE, || {
        (env.status(&id)["cancel_requested"] == true).then_some(())
    });
    run.signal(libc::SIGINT);
    run.wait(DEADLINE)
        .assert_code(130)
        .assert_stderr_contains(&format!(
            "jobs: stopped waiting for job {id}, which is being canceled; see: jobsctl status {id}"
        ));
    env.wait_for_state(&id, "canceled", DEADLINE);
    env.finish();
}
