//! Fan-out against the real services: `jobs run --tasks N --parallelism P`
//! makes one group of N jobs, each with its `JOBS_TASK_INDEX`, never more
//! than P at once (counted from Docker); the group id works with `status`,
//! `wait`, `follow`, `logs` and `cancel`, and the group exits with the code
//! of its lowest-index failed task.

use std::time::Duration;

use jobs_e2e::docker::max_concurrently_running;
use jobs_e2e::env::job_id_from_detached_output;
use jobs_e2e::executions::starts_of;
use jobs_e2e::{TestEnv, TestEnvOptions};

const DEADLINE: Duration = Duration::from_secs(180);

/// Each task says who it is, on both streams, and exits with a code of its
/// index: 7 for task 2, 3 for task 4, 0 for the others.
const TASK_SCRIPT: &str = "echo task $JOBS_TASK_INDEX of $JOBS_TASK_COUNT; \
     echo err $JOBS_TASK_INDEX >&2; sleep 0.5; \
     case $JOBS_TASK_INDEX in 2) exit 7;; 4) exit 3;; esac";

#[test]
fn six_tasks_with_parallelism_2_run_each_index_once_two_at_a_time_and_exit_as_task_2() {
    let mut env = TestEnv::start(4);
    let watcher = env.watch_container_starts_and_dies();
    let run = env.jobs_with_timeout(
        &[
            "run",
            "--tasks",
            "6",
            "--parallelism",
            "2",
            "--",
            "sh",
            "-c",
            TASK_SCRIPT,
        ],
        DEADLINE,
    );
    // Task 2 is the lowest index that failed: its code is the group's.
    run.assert_code(7);
    let mut lines: Vec<String> = run.stdout_text().lines().map(str::to_owned).collect();
    lines.sort();
    let expected: Vec<String> = (0..6).map(|i| format!("[{i}] task {i} of 6")).collect();
    assert_eq!(lines, expected, "{run:?}");
    let stderr = run.stderr_text();
    for i in 0..6 {
        assert_eq!(
            stderr.matches(&format!("[{i}] err {i}\n")).count(),
            1,
            "{run:?}"
        );
    }
    assert!(
        stderr.contains("6 tasks: 4 succeeded, 2 failed; task 2 (job ")
            && stderr.contains(") failed with exit code 7"),
        "{run:?}"
    );

    let events = watcher.wait_for("six containers to die", DEADLINE, |events| {
        events.iter().filter(|event| event.action == "die").count() >= 6
    });
    let starts = events
        .iter()
        .filter(|event| event.action == "start")
        .count();
    assert_eq!(starts, 6, "each index ran once: {events:?}");
    assert_eq!(max_concurrently_running(&events), 2, "{events:?}");
    let attempts = env.db_query_one("select max(attempt)::bigint from jobs");
    assert_eq!(attempts, 1);
    env.finish();
}

#[test]
fn a_detached_group_s_id_works_with_wait_logs_follow_and_status() {
    let mut env = TestEnv::start(2);
    let script = "echo out $JOBS_TASK_INDEX; echo err $JOBS_TASK_INDEX >&2; exit $JOBS_TASK_INDEX";
    let detached = env.jobs(&["run", "-d", "--tasks", "3", "--", "sh", "-c", script]);
    detached.assert_success();
    let group = job_id_from_detached_output(&detached);
    assert!(group.starts_with("grp_"), "{group}");

    // Task 1 exits 1, the lowest failure.
    env.jobs_with_timeout(&["wait", &group], DEADLINE)
        .assert_code(1)
        .assert_stderr_contains("3 tasks: 1 succeeded, 2 failed; task 1 (job ");

    let logs = env.jobs(&["logs", &group]);
    logs.assert_success()
        .assert_stdout(b"[0] out 0\n[1] out 1\n[2] out 2\n");
    assert_eq!(logs.stderr_text(), "[0] err 0\n[1] err 1\n[2] err 2\n");
    env.jobs(&["logs", &group, "--task", "2"])
        .assert_success()
        .assert_stdout(b"out 2\n");

    env.jobs(&["follow", &group, "--task", "1"])
        .assert_code(1)
        .assert_stdout(b"out 1\n");
    let followed = env.jobs(&["follow", &group]);
    followed.assert_code(1);
    let mut lines: Vec<String> = followed.stdout_text().lines().map(str::to_owned).collect();
    lines.sort();
    assert_eq!(lines, ["[0] out 0", "[1] out 1", "[2] out 2"]);

    let status = env.jobs(&["status", &group, "--json"]);
    status.assert_success();
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["id"], group.as_str());
    let states: Vec<&str> = status["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|task| task["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["succeeded", "failed", "failed"]);
    let task_job = status["tasks"][2]["job_id"].as_str().unwrap().to_owned();
    let job = env.status(&task_job);
    assert_eq!(job["group_id"], group.as_str());
    assert_eq!(job["task_index"], 2);
    assert_eq!(job["exit_code"], 2);
    let human = env.jobs(&["status", &group]);
    assert_eq!(
        human.field_line("tasks").as_deref(),
        Some("tasks: 3 tasks: 1 succeeded, 2 failed"),
        "{}",
        human.stdout_text()
    );

    // A wrong task, and --task with a job's id, are usage errors.
    env.jobs(&["logs", &group, "--task", "3"])
        .assert_usage_error("has tasks 0 to 2");
    env.jobs(&["follow", &task_job, "--task", "0"])
        .assert_usage_error("--task picks a task of a group");
    env.finish();
}

#[test]
fn cancel_of_a_group_cancels_every_task_and_wait_exits_125() {
    let mut env = TestEnv::start(2);
    let group = job_id_from_detached_output(&env.jobs(&[
        "run",
        "-d",
        "--tasks",
        "4",
        "--parallelism",
        "1",
        "--",
        "sleep",
        "300",
    ]));
    let first = env.db_query_strings(&format!(
        "select id from jobs where group_id = '{group}' and task_index = 0"
    ));
    env.wait_for_state(&first[0], "running", DEADLINE);
    let canceled = env.jobs(&["cancel", &group]);
    canceled.assert_success();
    assert!(
        canceled.stdout_text().starts_with(&format!(
            "group {group}: 4 tasks: 1 running, 3 canceled; cancel requested"
        )),
        "{canceled:?}"
    );
    env.jobs_with_timeout(&["wait", &group], DEADLINE)
        .assert_code(125);
    let states = env.db_query_strings(&format!(
        "select state || ' ' || coalesce(reason, '-') from jobs \
         where group_id = '{group}' order by task_index"
    ));
    assert_eq!(states[0].split(' ').next(), Some("canceled"), "{states:?}");
    for state in &states[1..] {
        assert_eq!(state, "canceled canceled while queued");
    }
    assert!(env.containers().is_empty(), "no container is left");
    env.finish();
}

#[test]
fn the_task_bound_and_the_flood_limit_name_their_limits_and_create_nothing() {
    let mut env = TestEnv::start_with_api_env(
        1,
        &[
            ("JOBS_MAX_QUEUED_JOBS_PER_APP", "5"),
            ("JOBS_MAX_TASKS_PER_GROUP", "8"),
        ],
        &[],
    );
    env.jobs(&["run", "-d", "--tasks", "9", "--", "true"])
        .assert_cli_error(125, "tasks must be 1 to 8 (got 9)");
    env.jobs(&["run", "-d", "--tasks", "6", "--", "true"])
        .assert_cli_error(
            125,
            "has 0 queued jobs and the group's 6 tasks would pass the limit of 5",
        );
    assert_eq!(env.db_count_jobs(), 0, "nothing half-created");
    assert_eq!(env.db_query_one("select count(*) from job_groups"), 0);
    env.jobs(&["run", "-d", "--parallelism", "2", "--", "true"])
        .assert_usage_error("--tasks");
    env.jobs(&[
        "run",
        "-d",
        "--tasks",
        "2",
        "-e",
        "JOBS_TASK_INDEX=9",
        "--",
        "true",
    ])
    .assert_usage_error("JOBS_TASK_INDEX is set by the group for each task");
    env.jobs(&["run", "-i", "--tasks", "2", "--", "true"])
        .assert_usage_error("--tasks cannot be used with -i/--interactive");
    env.finish();
}

#[test]
fn every_task_reads_the_shared_upload_and_keeps_its_own_artifact() {
    let mut env = TestEnv::start(2);
    let dir = env.log_dir.join("local");
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("orders.csv");
    std::fs::write(&input, b"a\nb\nc\n").unwrap();
    let script = "sed -n \"$((JOBS_TASK_INDEX + 1))p\" /tmp/uploads/orders.csv > /tmp/shard.txt; \
         wc -l < /tmp/uploads/orders.csv";
    let group = job_id_from_detached_output(&env.jobs(&[
        "run",
        "-d",
        "--tasks",
        "3",
        "-f",
        &input.display().to_string(),
        "--artifact",
        "/tmp/shard.txt",
        "--",
        "sh",
        "-c",
        script,
    ]));
    env.jobs_with_timeout(&["wait", &group], DEADLINE)
        .assert_success();
    env.jobs(&["logs", &group])
        .assert_success()
        .assert_stdout(b"[0] 3\n[1] 3\n[2] 3\n");
    let tasks = env.db_query_strings(&format!(
        "select id from jobs where group_id = '{group}' order by task_index"
    ));
    for (index, (task, line)) in tasks.iter().zip(["a", "b", "c"]).enumerate() {
        let out = dir.join(format!("out{index}"));
        env.jobs(&["artifacts", task, "-o", &out.display().to_string()])
            .assert_success();
        let shard = std::fs::read_to_string(out.join("shard.txt")).unwrap();
        assert_eq!(shard, format!("{line}\n"), "task {index}");
    }
    env.finish();
}

#[test]
fn a_worker_killed_mid_group_loses_no_task_and_runs_none_twice() {
    let mut env = TestEnv::start_with(
        TestEnvOptions::new(2)
            .worker_env("JOBS_LEASE", "4s")
            .api_env("JOBS_REAPER_INTERVAL", "1s"),
    );
    let starts = env.watch_container_starts_and_dies();
    let group = job_id_from_detached_output(&env.jobs(&[
        "run",
        "-d",
        "--tasks",
        "4",
        "--parallelism",
        "2",
        "--",
        "sh",
        "-c",
        "echo begin $JOBS_TASK_INDEX; sleep 3; echo end $JOBS_TASK_INDEX",
    ]));
    let tasks = env.db_query_strings(&format!(
        "select id from jobs where group_id = '{group}' order by task_index"
    ));
    env.wait_for_state(&tasks[0], "running", DEADLINE);
    env.wait_for_state(&tasks[1], "running", DEADLINE);

    // Killed with two tasks running and two queued; back within the lease,
    // it takes the running ones over and the group goes on.
    env.kill_worker();
    env.restart_worker();
    env.jobs_with_timeout(&["wait", &group], DEADLINE)
        .assert_success();
    let mut lines: Vec<String> = env
        .jobs(&["logs", &group])
        .stdout_text()
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    let mut expected: Vec<String> = (0..4)
        .flat_map(|i| [format!("[{i}] begin {i}"), format!("[{i}] end {i}")])
        .collect();
    expected.sort();
    assert_eq!(lines, expected);
    for task in &tasks {
        assert_eq!(starts_of(&starts, task), 1, "task {task} ran once");
    }
    let events = starts.wait_for("four containers to die", DEADLINE, |events| {
        events.iter().filter(|event| event.action == "die").count() >= 4
    });
    assert!(max_concurrently_running(&events) <= 2, "{events:?}");
    env.finish();
}
