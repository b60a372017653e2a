//! Fault: the API is killed with SIGKILL in the middle of a job and started
//! again on the same address; or the client's own connection is cut.
//!
//! `jobs run`, `jobs follow` and `jobs wait` ride it out on their own: they
//! reconnect, print every byte once, and exit with the job's exit code.

use std::time::Duration;

use jobs_e2e::TestEnv;
use jobs_e2e::executions::{container_of, container_status, wait_for_logs};
use jobs_e2e::poll::wait_until;
use jobs_e2e::proxy::CutProxy;

const DEADLINE: Duration = Duration::from_secs(90);

/// Waits until the API has answered the first look at the job of `count`
/// clients (`jobs wait` and `jobs follow` each make one): a first request
/// that is refused fails at once by design (a wrong address must not be
/// retried for ever), so the fault must come after them.
/// How many `GET /v1/jobs/{id}` the API has answered so far.
fn first_looks(env: &TestEnv) -> usize {
    let log = env.log_dir.join("api.stderr.log");
    std::fs::read_to_string(&log)
        .unwrap_or_default()
        .matches(r#"method="GET" route="/v1/jobs/{id}" status=200"#)
        .count()
}

fn wait_for_first_looks(env: &TestEnv, count: usize) {
    wait_until(
        "the API to answer the clients' first look",
        DEADLINE,
        || (first_looks(env) >= count).then_some(()),
    );
}

fn lines(range: std::ops::Range<usize>) -> Vec<u8> {
    range
        .map(|i| format!("line {i}\n"))
        .collect::<String>()
        .into_bytes()
}

/// Prints `line 0` … `line N-1`, one every 50 ms, then exits 6.
fn lines_job(count: usize) -> String {
    format!("i=0; while [ $i -lt {count} ]; do echo line $i; i=$((i+1)); sleep 0.05; done; exit 6")
}

#[test]
fn run_follow_and_wait_survive_an_api_killed_and_restarted_mid_job() {
    let mut env = TestEnv::start(1);
    let script = format!("echo first; sleep 1; {}", lines_job(60));
    let mut run = env.spawn_jobs(&["run", "--", "sh", "-c", &script]);
    run.wait_for_stdout("the first line", DEADLINE, |out| {
        out.starts_with(b"first\n")
    });
    let job = env.db_last_job_id();
    let mut follow = env.spawn_jobs(&["follow", &job]);
    let wait = env.spawn_jobs(&["wait", &job]);
    follow.wait_for_stdout("the first line", DEADLINE, |out| {
        out.starts_with(b"first\n")
    });

    wait_for_first_looks(&env, 2);
    env.kill_api();
    env.restart_api();

    let expected = [b"first\n".as_slice(), &lines(0..60)].concat();
    run.wait(DEADLINE).assert_code(6).assert_stdout(&expected);
    follow
        .wait(DEADLINE)
        .assert_code(6)
        .assert_stdout(&expected);
    wait.wait(DEADLINE).assert_code(6);
    env.finish();
}

#[test]
fn run_follow_and_wait_get_the_exit_code_of_a_job_that_ended_while_the_api_was_down() {
    let mut env = TestEnv::start(1);
    let mut run = env.spawn_jobs(&[
        "run",
        "--",
        "sh",
        "-c",
        &format!("echo first; sleep 1; {}", lines_job(20)),
    ]);
    run.wait_for_stdout("the first line", DEADLINE, |out| {
        out.starts_with(b"first\n")
    });
    let job = env.db_last_job_id();
    // `jobs run` may look at the job too: wait for one look more than now.
    let looks_before = first_looks(&env);
    let wait = env.spawn_jobs(&["wait", &job]);
    let container = container_of(&job, DEADLINE);
    wait_for_first_looks(&env, looks_before + 1);

    env.kill_api();
    // The worker records the end in the database without the API.
    wait_until("the job to end while the API is down", DEADLINE, || {
        env.db_job(&job)
            .filter(|stored| stored.is_terminal())
            .map(|_| ())
    });
    assert_ne!(container_status(&container), "running");
    env.restart_api();

    let expected = [b"first\n".as_slice(), &lines(0..20)].concat();
    run.wait(DEADLINE).assert_code(6).assert_stdout(&expected);
    wait.wait(DEADLINE).assert_code(6);
    env.jobs(&["follow", &job])
        .assert_code(6)
        .assert_stdout(&expected);
    env.finish();
}

#[test]
fn cutting_the_clients_connection_mid_job_loses_and_repeats_no_byte() {
    let mut env = TestEnv::start(1);
    let proxy = CutProxy::start(env.api_url().trim_start_matches("http://"));
    let mut command = env.jobs_command(&["run", "--", "sh", "-c", &lines_job(80)]);
    command.env("JOBS_API_URL", proxy.url());
    let mut run = jobs_e2e::BackgroundCli::spawn(command);
    run.wait_for_stdout("the first lines", DEADLINE, |out| {
        out.starts_with(b"line 0\n")
    });
    let job = env.db_last_job_id();
    // Cut it three times while the job prints.
    for cut in 1..=3 {
        let before = run.stdout_so_far().len();
        proxy.cut();
        // Output the CLI had already received may still print after the
        // cut: the reconnection is waited for, not assumed.
        wait_until("the CLI to reconnect through the proxy", DEADLINE, || {
            (proxy.accepted() > cut).then_some(())
        });
        run.wait_for_stdout("output after the cut", DEADLINE, |out| out.len() > before);
    }
    run.wait(DEADLINE)
        .assert_code(6)
        .assert_stdout(&lines(0..80));
    wait_for_logs(&env, &job, &lines(0..80), DEADLINE);
    env.finish();
}
