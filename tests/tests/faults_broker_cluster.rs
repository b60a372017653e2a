//! Fault: on a 3-node RabbitMQ cluster of the test's own, the node that
//! holds the leader of the wake-up queue (a quorum queue) dies mid-load.
//!
//! The API and the worker are given every node's URL. Both prefer
//! the first node, where the queue was declared and so where its leader
//! is: the crash takes the publisher's and the consumers' connections
//! with it, and they must find another node by themselves. Executions are
//! counted by Docker's container `start` events.

use std::time::Duration;

use jobs_e2e::executions::starts_per_job;
use jobs_e2e::{TestEnv, TestEnvOptions, wait_until};

const JOBS: usize = 60;
/// The node dies after this many submissions, with jobs queued, running
/// and still to come.
const KILL_AFTER: usize = 20;
const DEADLINE: Duration = Duration::from_secs(120);

#[test]
fn losing_the_node_of_the_queue_leader_mid_load_loses_no_job_and_runs_none_twice() {
    let mut env = TestEnv::start_with(
        TestEnvOptions::new(6)
            .private_rabbit_cluster(3)
            .api_env("JOBS_MAX_QUEUED_JOBS_PER_APP", "100"),
    );
    let starts = env.watch_container_starts_and_dies();
    let queue = env.queue.clone();
    let leader = env.rabbit_cluster().queue_leader(&queue);

    let mut jobs = Vec::new();
    for i in 0..JOBS {
        if i == KILL_AFTER {
            env.rabbit_cluster().nodes[leader].kill();
        }
        let code = i % 4;
        let script = format!("echo job {i}; sleep 0.3; echo done {i}; exit {code}");
        jobs.push((env.run_detached(&["--", "sh", "-c", &script]), i, code));
    }
    let new_leader = env.rabbit_cluster().queue_leader(&queue);
    assert_ne!(
        new_leader, leader,
        "the queue's leader moved to a live node"
    );

    for (job, i, code) in &jobs {
        env.jobs_with_timeout(&["wait", job], DEADLINE)
            .assert_code(*code as i32);
        env.jobs(&["logs", job])
            .assert_success()
            .assert_stdout(format!("job {i}\ndone {i}\n").as_bytes());
    }
    let starts = starts_per_job(&starts);
    for (job, i, _) in &jobs {
        assert_eq!(starts.get(job), Some(&1), "job {i} ({job}) ran once");
    }
    // Every wake-up was acked: nothing is left for a later consumer.
    wait_until("an empty queue", DEADLINE, || {
        (env.rabbit_cluster().queue_depth(&queue) == (0, 0)).then_some(())
    });
    env.finish();
}
