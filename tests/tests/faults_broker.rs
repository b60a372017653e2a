//! Fault: RabbitMQ stops and starts, and misbehaves within its contract
//! (duplicate wake-ups, its consumer timeout). Each test runs its own
//! RabbitMQ node (`jobs_e2e::services::PrivateRabbit`) where it stops it;
//! the shared broker is never touched.
//!
//! Executions are counted by Docker's container `start` events.

use std::time::Duration;

use jobs_e2e::docker::{containers_with_label, docker};
use jobs_e2e::executions::{starts_of, wait_for_logs};
use jobs_e2e::poll::wait_until;
use jobs_e2e::{TestEnv, TestEnvOptions};
use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Connection, ConnectionProperties};

const DEADLINE: Duration = Duration::from_secs(90);

#[test]
fn a_job_accepted_while_the_broker_is_down_is_dispatched_when_it_returns() {
    let mut env = TestEnv::start_with(TestEnvOptions::new(1).private_rabbit(&[]));
    let starts = env.watch_container_starts_and_dies();
    env.rabbit().stop();

    let job = env.run_detached(&["--", "sh", "-c", "echo dispatched; exit 4"]);
    let stored = env.db_job(&job).expect("the job was accepted and stored");
    assert_eq!(stored.state, "queued", "{stored:?}");

    env.rabbit().start_again();
    env.jobs_with_timeout(&["wait", &job], DEADLINE)
        .assert_code(4);
    env.jobs(&["logs", &job])
        .assert_success()
        .assert_stdout(b"dispatched\n");
    assert_eq!(starts_of(&starts, &job), 1);
    env.finish();
}

#[test]
fn a_broker_restart_leaves_running_jobs_alone_and_the_api_and_worker_reconnect() {
    let mut env = TestEnv::start_with(TestEnvOptions::new(2).private_rabbit(&[]));
    let starts = env.watch_container_starts_and_dies();
    // The job goes on while the broker is away; it ends after the broker
    // is back only if the restart is quick, which does not matter.
    let running = env.run_detached(&[
        "--",
        "sh",
        "-c",
        "echo before; i=0; while [ $i -lt 40 ]; do sleep 0.25; i=$((i+1)); done; echo after; exit 5",
    ]);
    env.wait_for_state(&running, "running", DEADLINE);
    wait_for_logs(&env, &running, b"before\n", DEADLINE);

    env.rabbit().stop();
    env.rabbit().start_again();

    // A job created after the restart reaches the worker: the API's
    // publisher and the worker's consumer both found the new broker.
    let after_restart = env.run_detached(&["--", "sh", "-c", "echo second; exit 0"]);
    env.jobs_with_timeout(&["wait", &after_restart], DEADLINE)
        .assert_code(0);
    env.jobs_with_timeout(&["wait", &running], DEADLINE)
        .assert_code(5);
    env.jobs(&["logs", &running])
        .assert_success()
        .assert_stdout(b"before\nafter\n");
    assert_eq!(starts_of(&starts, &running), 1);
    assert_eq!(starts_of(&starts, &after_restart), 1);
    let stored = env.db_job(&running).expect("stored");
    assert_eq!(stored.attempt, 1, "{stored:?}");
    env.finish();
}

#[test]
fn a_cancel_while_the_broker_is_down_still_stops_the_running_job() {
    // The cancel's signal to the worker goes through the broker; with the
    // broker down it is lost, and the worker finds the cancel in the
    // database at its next lease renewal (a third of the 6 s lease).
    let mut env = TestEnv::start_with(
        TestEnvOptions::new(1)
            .private_rabbit(&[])
            .worker_env("JOBS_LEASE", "6s"),
    );
    let starts = env.watch_container_starts_and_dies();
    let job = env.run_detached(&[
        "--",
        "sh",
        "-c",
        "trap 'echo stopped; exit 143' TERM; echo started; while :; do sleep 0.2; done",
    ]);
    env.wait_for_state(&job, "running", DEADLINE);
    wait_for_logs(&env, &job, b"started\n", DEADLINE);

    env.rabbit().stop();
    env.jobs(&["cancel", &job]).assert_success();
    env.jobs_with_timeout(&["wait", &job], DEADLINE)
        .assert_code(125);
    let status = env.status(&job);
    assert_eq!(status["state"], "canceled", "{status}");
    env.jobs(&["logs", &job])
        .assert_success()
        .assert_stdout(b"started\nstopped\n");
    assert_eq!(starts_of(&starts, &job), 1);

    // Back with the broker, a cancel reaches the worker through it again.
    env.rabbit().start_again();
    let next = env.run_detached(&[
        "--",
        "sh",
        "-c",
        "trap 'exit 143' TERM; echo next; while :; do sleep 0.2; done",
    ]);
    wait_for_logs(&env, &next, b"next\n", DEADLINE);
    env.jobs(&["cancel", &next]).assert_success();
    env.jobs_with_timeout(&["wait", &next], DEADLINE)
        .assert_code(125);
    env.finish();
}

#[test]
fn a_worker_full_across_a_broker_restart_takes_the_waiting_job_once_a_slot_frees() {
    // One slot, taken by a gated job; a second job waits in the queue. The
    // worker closed its consumer when it filled (handing the wake-up back)
    // and keeps its broker connection for the next one; the restart kills
    // that connection, so the consumer it opens when the slot frees must
    // come from a new one.
    let mut env = TestEnv::start_with(TestEnvOptions::new(1).private_rabbit(&[]));
    let starts = env.watch_container_starts_and_dies();
    let gated = env.run_detached(&[
        "--",
        "sh",
        "-c",
        "echo gated; while [ ! -f /tmp/go ]; do sleep 0.1; done; exit 3",
    ]);
    wait_for_logs(&env, &gated, b"gated\n", DEADLINE);
    let waiting = env.run_detached(&["--", "sh", "-c", "echo waited; exit 4"]);
    assert_eq!(env.status(&waiting)["state"], "queued");

    env.rabbit().stop();
    env.rabbit().start_again();
    let container = wait_until("the gated job's container", DEADLINE, || {
        containers_with_label(&format!("jobs.job_id={gated}"))
            .into_iter()
            .next()
    });
    docker(&["exec", &container, "touch", "/tmp/go"]);

    env.jobs_with_timeout(&["wait", &gated], DEADLINE)
        .assert_code(3);
    env.jobs_with_timeout(&["wait", &waiting], DEADLINE)
        .assert_code(4);
    env.jobs(&["logs", &waiting])
        .assert_success()
        .assert_stdout(b"waited\n");
    assert_eq!(starts_of(&starts, &gated), 1);
    assert_eq!(starts_of(&starts, &waiting), 1);
    env.finish();
}

/// Publishes `job_id` `times` times on the env's queue, as a buggy or
/// replaying publisher would.
fn publish_duplicates(env: &TestEnv, job_id: &str, times: usize) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let connection = Connection::connect(&env.amqp_url, ConnectionProperties::default())
            .await
            .expect("connect to the broker");
        let channel = connection.create_channel().await.expect("a channel");
        channel
            .confirm_select(Default::default())
            .await
            .expect("confirms");
        for _ in 0..times {
            let confirm = channel
                .basic_publish(
                    "".into(),
                    env.queue.as_str().into(),
                    BasicPublishOptions::default(),
                    job_id.as_bytes(),
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await
                .expect("publish")
                .await
                .expect("confirm");
            assert!(confirm.is_ack(), "the broker took the duplicate");
        }
        connection.close(200, "done".into()).await.expect("close");
    });
}

#[test]
fn duplicate_publishes_of_one_job_id_never_run_it_twice() {
    let mut env = TestEnv::start(1);
    let starts = env.watch_container_starts_and_dies();
    let ended = env.run_detached(&["--", "sh", "-c", "echo once; exit 3"]);
    env.jobs(&["wait", &ended]).assert_code(3);
    let running = env.run_detached(&["--", "sh", "-c", "echo running; sleep 2; exit 4"]);
    env.wait_for_state(&running, "running", DEADLINE);

    publish_duplicates(&env, &ended, 3);
    publish_duplicates(&env, &running, 3);
    // One slot, one consumer, one FIFO queue: once a job published after
    // the duplicates has run, every duplicate was delivered and dropped.
    env.jobs_with_timeout(&["wait", &running], DEADLINE)
        .assert_code(4);
    let sentinel = env.run_detached(&["--", "true"]);
    env.jobs_with_timeout(&["wait", &sentinel], DEADLINE)
        .assert_code(0);

    assert_eq!(starts_of(&starts, &ended), 1, "the ended job ran again");
    assert_eq!(starts_of(&starts, &running), 1, "the running job ran again");
    for job in [&ended, &running] {
        let stored = env.db_job(job).expect("stored");
        assert_eq!(stored.attempt, 1, "{stored:?}");
    }
    env.jobs(&["logs", &ended]).assert_stdout(b"once\n");
    env.finish();
}

#[test]
fn a_job_running_far_past_the_consumer_timeout_is_never_redelivered_into_a_second_run() {
    // RabbitMQ closes a channel whose delivery stays unacked past
    // `consumer_timeout` and redelivers it. The worker acks right after its
    // claim, so a job that runs three times the timeout is never seen again.
    let mut env =
        TestEnv::start_with(TestEnvOptions::new(1).private_rabbit(&["consumer_timeout = 5000"]));
    let starts = env.watch_container_starts_and_dies();
    let long = env.run_detached(&[
        "--",
        "sh",
        "-c",
        "echo long; i=0; while [ $i -lt 60 ]; do sleep 0.25; i=$((i+1)); done; exit 9",
    ]);
    env.wait_for_state(&long, "running", DEADLINE);
    // Queued behind it: its wake-up waits in the broker while the slot is busy.
    let queued = env.run_detached(&["--", "sh", "-c", "echo next; exit 1"]);

    env.jobs_with_timeout(&["wait", &long], DEADLINE)
        .assert_code(9);
    env.jobs_with_timeout(&["wait", &queued], DEADLINE)
        .assert_code(1);
    assert_eq!(
        starts_of(&starts, &long),
        1,
        "redelivered into a second run"
    );
    assert_eq!(starts_of(&starts, &queued), 1);
    let stored = env.db_job(&long).expect("stored");
    assert_eq!(
        (stored.attempt, stored.exit_code),
        (1, Some(9)),
        "{stored:?}"
    );
    env.jobs(&["logs", &long]).assert_stdout(b"long\n");
    env.finish();
}
