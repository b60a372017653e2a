//! Interactive runs: `jobs run` at a terminal and `jobs run -i`, attached
//! directly to the container over the API's WebSocket, and `jobs attach`.
//!
//! - At a real pseudo-terminal ([`PtyProcess`]): the shell's prompt, typed
//!   commands, the window size and its changes, Ctrl-C reaching the
//!   container, the exit code, and the terminal's settings put back;
//!   Ctrl-P Ctrl-Q detaches and `jobs attach` comes back.
//! - Without a terminal (`-i`): 10 MiB of stdin back byte for byte, EOF,
//!   separate stdout and stderr, exit codes.
//! - Interactive runs never touch the queue.
//! - A connection cut between the CLI and the API ([`CutProxy`]) loses and
//!   repeats no output.
//! - `jobs attach` refuses what it cannot attach to, in the API's words.
//!
//! Synchronisation: the terminal's output and the CLI's captured stdout are
//! polled with deadlines ("the prompt is there", "`42` came back"). Where
//! the container may not have acted on a keystroke yet (a resize, a Ctrl-C
//! racing the start of `sleep`), the test repeats the harmless probe until
//! its answer shows, within a deadline. Nothing sleeps for a fixed time.

use std::time::{Duration, Instant};

use jobs_e2e::expect::{numbered_lines, numbered_lines_script};
use jobs_e2e::proxy::CutProxy;
use jobs_e2e::pty::{PtyProcess, ends_with_prompt};
use jobs_e2e::{CliOutput, TestEnv, assert_bytes_eq, cli, http, wait_until};

/// The first prompt needs a container start, maybe an image check.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// One typed command's answer.
const ANSWER_DEADLINE: Duration = Duration::from_secs(20);
const CLI_DEADLINE: Duration = Duration::from_secs(120);

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// Types `line` and waits until `answer` shows in what the terminal
/// printed after it.
#[track_caller]
fn type_and_expect(pty: &mut PtyProcess, line: &[u8], answer: &[u8]) {
    let mark = pty.output_so_far().len();
    pty.type_bytes(line);
    let what = format!("{:?}", String::from_utf8_lossy(answer));
    pty.wait_for_output(&what, ANSWER_DEADLINE, |out| contains(&out[mark..], answer));
}

/// Types `line` until `answer` shows after one of the tries: for effects
/// that reach the container a moment after the keystroke that caused them.
#[track_caller]
fn retype_until(pty: &mut PtyProcess, line: &[u8], answer: &[u8], what: &str) {
    let deadline = Instant::now() + ANSWER_DEADLINE;
    loop {
        let mark = pty.output_so_far().len();
        pty.type_bytes(line);
        let seen = jobs_e2e::poll::poll_until(Duration::from_secs(2), || {
            let out = pty.output_so_far();
            (contains(&out[mark..], answer) && ends_with_prompt(&out)).then_some(())
        });
        if seen.is_some() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {:?} never came back; the terminal shows: {:?}",
            String::from_utf8_lossy(answer),
            String::from_utf8_lossy(&pty.output_so_far())
        );
    }
}

#[test]
fn a_shell_at_a_terminal_gets_keys_sizes_and_ctrl_c_and_gives_back_the_terminal() {
    let mut env = TestEnv::start(2);
    let mut pty = PtyProcess::spawn(env.jobs_command(&["run", "--", "sh"]), 24, 80);
    let before = pty.initial_settings;
    assert!(before.canonical() && before.echo(), "{before:?}");

    pty.wait_for_output("the shell's prompt", START_DEADLINE, ends_with_prompt);
    let raw = pty.settings();
    assert!(
        !raw.canonical() && !raw.echo() && !raw.signals(),
        "the CLI puts the terminal in raw mode during the session: {raw:?}"
    );

    // The container's terminal echoes the line; the answer is on its own.
    type_and_expect(&mut pty, b"echo $((6*7))\r", b"\r\n42\r\n");

    type_and_expect(&mut pty, b"stty size\r", b"\r\n24 80\r\n");
    pty.resize(30, 100);
    retype_until(&mut pty, b"stty size\r", b"\r\n30 100\r\n", "the new size");

    // Ctrl-C is a byte for the container, whose terminal interrupts the
    // foreground `sleep`; the CLI itself goes on. A Ctrl-C that beats the
    // start of `sleep` only gives a fresh prompt, so it is sent again
    // until the prompt is back.
    let started = Instant::now();
    type_and_expect(&mut pty, b"sleep 100\r", b"sleep 100\r\n");
    let mark = pty.output_so_far().len();
    wait_until("the prompt after Ctrl-C", ANSWER_DEADLINE, || {
        pty.type_bytes(b"\x03");
        jobs_e2e::poll::poll_until(Duration::from_millis(500), || {
            ends_with_prompt(&pty.output_so_far()[mark..]).then_some(())
        })
    });
    type_and_expect(&mut pty, b"echo in''terrupted\r", b"\r\ninterrupted\r\n");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the sleep was interrupted, not waited out"
    );

    pty.type_bytes(b"exit 3\r");
    let (status, output) = pty.wait(CLI_DEADLINE);
    assert_eq!(
        status.code(),
        Some(3),
        "the shell's exit code; the terminal showed {:?}",
        String::from_utf8_lossy(&output)
    );
    let after = pty.settings();
    assert_eq!(after, before, "the terminal's settings are put back");
    env.finish();
}

#[test]
fn ctrl_p_ctrl_q_detaches_and_jobs_attach_comes_back() {
    let mut env = TestEnv::start(2);
    let mut pty = PtyProcess::spawn(env.jobs_command(&["run", "--", "sh"]), 24, 80);
    let before = pty.initial_settings;
    pty.wait_for_output("the shell's prompt", START_DEADLINE, ends_with_prompt);
    type_and_expect(&mut pty, b"echo $((6*7))\r", b"\r\n42\r\n");
    let id = env.db_last_job_id();

    pty.type_bytes(b"\x10\x11");
    let (status, output) = pty.wait(CLI_DEADLINE);
    let text = String::from_utf8_lossy(&output);
    assert_eq!(status.code(), Some(130), "{text:?}");
    assert!(
        text.contains(&format!("detached from job {id}"))
            && text.contains(&format!("jobsctl attach {id}")),
        "the CLI says how to come back: {text:?}"
    );
    assert_eq!(
        pty.settings(),
        before,
        "the terminal's settings are put back"
    );
    let job = env.db_job(&id).expect("the job exists");
    assert!(
        !job.is_terminal(),
        "a detach leaves the job running: {job:?}"
    );

    let mut pty = PtyProcess::spawn(env.jobs_command(&["attach", &id]), 24, 80);
    // The shell is where it was; anything typed now reaches it.
    retype_until(
        &mut pty,
        b"echo $((6*7))\r",
        b"\r\n42\r\n",
        "the shell after attach",
    );
    pty.type_bytes(b"exit 5\r");
    let (status, output) = pty.wait(CLI_DEADLINE);
    assert_eq!(
        status.code(),
        Some(5),
        "{:?}",
        String::from_utf8_lossy(&output)
    );
    let job = env.wait_for_state(&id, "failed", ANSWER_DEADLINE);
    assert_eq!(job.exit_code, Some(5), "{job:?}");
    env.finish();
}

#[test]
fn a_second_client_takes_the_session_over_and_the_first_one_leaves() {
    let mut env = TestEnv::start(2);
    let mut first = PtyProcess::spawn(env.jobs_command(&["run", "--", "sh"]), 24, 80);
    let before = first.initial_settings;
    first.wait_for_output("the shell's prompt", START_DEADLINE, ends_with_prompt);
    let id = env.db_last_job_id();

    let mut second = PtyProcess::spawn(env.jobs_command(&["attach", &id]), 24, 80);
    retype_until(
        &mut second,
        b"echo $((6*7))\r",
        b"\r\n42\r\n",
        "the shell after attach",
    );

    // Only the newest client is served: the first one leaves for good
    // rather than reconnect and take the session back.
    let (status, output) = first.wait(CLI_DEADLINE);
    let text = String::from_utf8_lossy(&output);
    assert_eq!(status.code(), Some(130), "{text:?}");
    assert!(
        text.contains(&format!("another client attached to job {id}")),
        "{text:?}"
    );
    assert_eq!(
        first.settings(),
        before,
        "the terminal's settings are put back"
    );

    type_and_expect(&mut second, b"echo still$((1+1))\r", b"\r\nstill2\r\n");
    second.type_bytes(b"exit\r");
    let (status, output) = second.wait(CLI_DEADLINE);
    assert_eq!(
        status.code(),
        Some(0),
        "{:?}",
        String::from_utf8_lossy(&output)
    );
    env.finish();
}

/// Two APIs behind a balancer: the run lives on the API that created it,
/// and a client that reaches the other one is relayed to it, close codes
/// and exit code included.
#[test]
fn a_client_that_reaches_another_api_is_relayed_to_the_one_holding_its_run() {
    let mut env = TestEnv::start(2);
    let other_api = env.start_second_api();
    let mut first = PtyProcess::spawn(env.jobs_command(&["run", "--", "sh"]), 24, 80);
    first.wait_for_output("the shell's prompt", START_DEADLINE, ends_with_prompt);
    let id = env.db_last_job_id();

    let mut second = PtyProcess::spawn(env.jobs_command_via(&other_api, &["attach", &id]), 24, 80);
    retype_until(
        &mut second,
        b"echo $((6*7))\r",
        b"\r\n42\r\n",
        "the shell through the other API",
    );
    // The holder's close of the replaced client went through as it is.
    let (status, output) = first.wait(CLI_DEADLINE);
    let text = String::from_utf8_lossy(&output);
    assert_eq!(status.code(), Some(130), "{text:?}");
    assert!(
        text.contains(&format!("another client attached to job {id}")),
        "{text:?}"
    );

    type_and_expect(&mut second, b"echo via$((1+1))\r", b"\r\nvia2\r\n");
    second.type_bytes(b"exit 5\r");
    let (status, output) = second.wait(CLI_DEADLINE);
    assert_eq!(
        status.code(),
        Some(5),
        "{:?}",
        String::from_utf8_lossy(&output)
    );
    let job = env.wait_for_state(&id, "failed", ANSWER_DEADLINE);
    assert_eq!(job.exit_code, Some(5), "{job:?}");
    env.finish();
}

#[test]
fn a_run_waits_for_a_free_slot_and_says_so() {
    // One slot, taken by a shell at a terminal.
    let mut env = TestEnv::start(1);
    let mut shell = PtyProcess::spawn(env.jobs_command(&["run", "--", "sh"]), 24, 80);
    shell.wait_for_output("the shell's prompt", START_DEADLINE, ends_with_prompt);

    let mut waiting =
        jobs_e2e::BackgroundCli::spawn(env.jobs_command(&["run", "-i", "--", "echo", "my turn"]));
    wait_until("the waiting notice", ANSWER_DEADLINE, || {
        let stderr = String::from_utf8_lossy(&waiting.stderr_so_far()).into_owned();
        stderr
            .contains("jobs: every worker is busy; waiting for a free slot (position 1)")
            .then_some(())
    });
    assert!(waiting.is_running(), "it waits while the slot is taken");

    shell.type_bytes(b"exit\r");
    let (status, _) = shell.wait(CLI_DEADLINE);
    assert_eq!(status.code(), Some(0));
    let output = waiting.wait(CLI_DEADLINE);
    output.assert_success().assert_stdout(b"my turn\n");
    env.finish();
}

/// 10 MiB of bytes that are the same on every run, every value included.
fn random_bytes(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            // xorshift64
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

const TEN_MIB: usize = 10 * 1024 * 1024;

#[test]
fn stdin_goes_in_byte_for_byte_and_its_end_arrives() {
    let mut env = TestEnv::start(2);
    let data = random_bytes(TEN_MIB);

    let echoed = cli::run_bounded(
        env.jobs_command(&["run", "-i", "--", "cat"]),
        Some(&data),
        CLI_DEADLINE,
    );
    echoed.assert_success();
    assert_bytes_eq(&echoed.stdout, &data, "cat's stdout");
    assert!(echoed.stderr.is_empty(), "{echoed:?}");

    // `wc` only prints once its stdin has ended: the EOF got through.
    let counted = cli::run_bounded(
        env.jobs_command(&["run", "-i", "--", "sh", "-c", "wc -c"]),
        Some(&data),
        CLI_DEADLINE,
    );
    counted
        .assert_success()
        .assert_stdout(format!("{TEN_MIB}\n").as_bytes());
    env.finish();
}

#[test]
fn a_failing_interactive_command_keeps_its_streams_apart_and_its_exit_code() {
    let mut env = TestEnv::start(2);
    let output = cli::run_bounded(
        env.jobs_command(&[
            "run",
            "-i",
            "--",
            "sh",
            "-c",
            "read line; echo \"out $line\"; echo err >&2; exit 7",
        ]),
        Some(b"typed\n"),
        CLI_DEADLINE,
    );
    output.assert_code(7).assert_stdout(b"out typed\n");
    assert_eq!(
        output.stderr, b"err\n",
        "stderr of the job, alone: {output:?}"
    );
    let id = env.db_last_job_id();
    let job = env.wait_for_state(&id, "failed", ANSWER_DEADLINE);
    assert_eq!(job.exit_code, Some(7), "{job:?}");

    // A command that is not there: the contract's 127.
    env.jobs(&["run", "-i", "--", "no-such-command"])
        .assert_code(127);
    env.finish();
}

#[test]
fn interactive_with_detached_is_a_usage_error_naming_both() {
    let mut env = TestEnv::start(1);
    env.jobs(&["run", "-i", "-d", "--", "true"])
        .assert_usage_error("-i/--interactive cannot be used with -d/--detached");
    assert_eq!(env.db_count_jobs(), 0, "nothing was created");
    env.finish();
}

/// Ready messages in `queue`, read with a passive declare (which creates
/// nothing). The API declares its queue when it first publishes, so a
/// queue that does not exist holds nothing because nothing was published.
fn messages_in_queue(env: &TestEnv, queue: &str) -> u32 {
    use lapin::options::QueueDeclareOptions;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let connection =
            lapin::Connection::connect(&env.amqp_url, lapin::ConnectionProperties::default())
                .await
                .expect("connect to RabbitMQ");
        let channel = connection.create_channel().await.expect("a channel");
        let declared = channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                Default::default(),
            )
            .await;
        let count = match declared {
            Ok(queue) => queue.message_count(),
            Err(error) if error.to_string().contains("NOT_FOUND") => 0,
            Err(error) => panic!("cannot count the messages in {queue}: {error}"),
        };
        let _ = connection.close(200, "counted".into()).await;
        count
    })
}

fn delete_queue(env: &TestEnv, queue: &str) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(jobs_e2e::env::delete_queue(&env.amqp_url, queue));
}

/// Deletes the API's own queue however the test ends.
struct QueueCleanup<'a> {
    env: &'a TestEnv,
    queue: String,
}

impl Drop for QueueCleanup<'_> {
    fn drop(&mut self) {
        delete_queue(self.env, &self.queue);
    }
}

#[test]
fn interactive_runs_never_go_through_the_queue() {
    // The API publishes to a queue no worker reads, so every publish stays
    // there to be counted; the worker still takes interactive runs, which
    // come to it directly.
    let api_queue = format!("jobs.e2e.api-only.{}", uuid_suffix());
    let mut env = TestEnv::start_with_api_env(1, &[("JOBS_AMQP_QUEUE", &api_queue)], &[]);
    let cleanup = QueueCleanup {
        env: &env,
        queue: api_queue.clone(),
    };

    cli::run_bounded(
        env.jobs_command(&["run", "-i", "--", "sh", "-c", "cat; echo done"]),
        Some(b"hello\n"),
        CLI_DEADLINE,
    )
    .assert_success()
    .assert_stdout(b"hello\ndone\n");
    assert_eq!(
        messages_in_queue(&env, &api_queue),
        0,
        "an interactive run published a message"
    );

    // The control: a queued run's publish does show up in that queue.
    let id = env.run_detached(&["--", "true"]);
    let count = wait_until("the queued run's message", ANSWER_DEADLINE, || {
        let count = messages_in_queue(&env, &api_queue);
        (count > 0).then_some(count)
    });
    assert_eq!(count, 1, "exactly the queued run's message");
    drop(cleanup);
    // Nobody will ever take that job: cancel it, and leave nothing behind.
    env.jobs(&["cancel", &id]).assert_success();
    env.finish();
}

fn uuid_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos();
    format!("{}-{nanos}", std::process::id())
}

#[test]
fn a_cut_connection_is_resumed_with_no_gap_and_no_duplicate() {
    let mut env = TestEnv::start(2);
    let proxy = CutProxy::start(env.api_url().trim_start_matches("http://"));
    let count = 50;
    let mut command = env.jobs_command(&[
        "run",
        "-i",
        "--",
        "sh",
        "-c",
        &format!("{}; exit 4", numbered_lines_script("line ", count, "0.1")),
    ]);
    command.env("JOBS_API_URL", proxy.url());
    let mut run = jobs_e2e::BackgroundCli::spawn(command);

    run.wait_for_stdout("ten lines", START_DEADLINE, |out| {
        out.iter().filter(|&&byte| byte == b'\n').count() >= 10
    });
    let id = env.db_last_job_id();
    let job = env.db_job(&id).expect("the job exists");
    assert!(!job.is_terminal(), "the cut must come mid-run: {job:?}");
    assert!(
        proxy.cut() >= 1,
        "the CLI's connection went through the proxy"
    );

    let output: CliOutput = run.wait(CLI_DEADLINE);
    output.assert_code(4);
    assert_bytes_eq(
        &output.stdout,
        &numbered_lines("line ", count),
        "stdout across the cut",
    );
    output
        .assert_stderr_contains(&format!("lost the connection to job {id}"))
        .assert_stderr_contains(&format!("reconnected to job {id}"));
    assert!(proxy.accepted() >= 2, "the CLI came back through the proxy");
    env.finish();
}

/// The API's error sentence with the job id taken out, to compare the
/// words of two refusals.
fn words_without(output: &CliOutput, id: &str) -> String {
    output.stderr_text().replace(id, "ID")
}

#[test]
fn attach_refuses_what_it_cannot_attach_to_in_the_apis_words() {
    let mut env = TestEnv::start(2);

    let missing = env.jobs(&["attach", "job-that-does-not-exist"]);
    missing.assert_cli_error(125, "not found");

    // Another app's job, under a token bound to that other app: the same
    // words as for a job that does not exist.
    let ended = {
        env.jobs(&["run", "-i", "--", "sh", "-c", "exit 4"])
            .assert_code(4);
        env.db_last_job_id()
    };
    env.jobs(&["apps", "create", "other", "--image", jobs_e2e::TEST_IMAGE])
        .assert_success();
    let response = http::request(
        env.api_url(),
        "POST",
        "/v1/tokens",
        Some(&env.admin_token),
        Some(r#"{"app":"other","role":"run"}"#),
    );
    assert_eq!(response.status, 201, "{response:?}");
    let other_token = response.json()["secret"]
        .as_str()
        .expect("a secret")
        .to_owned();
    let mut command = env.jobs_command(&["attach", &ended]);
    command.env("JOBS_TOKEN", &other_token);
    let foreign = cli::run_bounded(command, None, CLI_DEADLINE);
    foreign.assert_cli_error(125, "not found");
    assert_eq!(
        words_without(&foreign, &ended),
        words_without(&missing, "job-that-does-not-exist"),
        "a foreign job reads as a missing one"
    );

    env.jobs(&["attach", &ended])
        .assert_cli_error(125, "has already ended (failed, exit code 4)");

    let queued = env.run_detached(&["--", "true"]);
    env.jobs(&["attach", &queued])
        .assert_cli_error(125, &format!("`jobsctl follow {queued}`"));
    env.jobs(&["wait", &queued]).assert_success();
    env.finish();
}
