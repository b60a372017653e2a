//! Container hardening, seen from inside a job's container and from
//! `docker inspect`: no capabilities unless the app allows them, a pids limit
//! that stops a fork bomb without touching other jobs, a read-only root with
//! a writable /tmp, a non-root user, no network. See docs/security.md.
//!
//! The memory limit (a hog ends with 137 and `oom killed`) is covered by
//! `a_job_over_its_memory_limit_is_oom_killed_and_exits_137` in
//! output_and_exit_codes.rs.
//!
//! Synchronisation: "the job is running" is a bounded poll of its stored
//! state; "the fork bomb is at its limit" is a bounded poll of its stored
//! logs; the container is found by its job label.

use std::time::Duration;

use jobs_e2e::docker::{containers_with_label, docker};
use jobs_e2e::poll::wait_until;
use jobs_e2e::{TestEnv, http};

const STATE_DEADLINE: Duration = Duration::from_secs(60);
/// Size S's pids limit (docs: sizes table).
const PIDS_LIMIT_S: u32 = 256;
/// CapEff with no capability at all, and with only NET_BIND_SERVICE (bit 10).
const NO_CAPS: &str = "0000000000000000";
const NET_BIND_SERVICE_ONLY: &str = "0000000000000400";

/// Creates an app running the test image with extra `apps create` flags.
fn create_app(env: &TestEnv, name: &str, flags: &[&str]) {
    let mut args = vec!["apps", "create", name, "--image", jobs_e2e::TEST_IMAGE];
    args.extend_from_slice(flags);
    env.jobs(&args).assert_success();
}

/// The value of one `Cap*:` line of /proc/self/status, as the job sees it.
fn capability_line(env: &TestEnv, app: &str, which: &str) -> String {
    let output = env.jobs(&["-a", app, "run", "--", "grep", which, "/proc/self/status"]);
    output.assert_success();
    let text = output.stdout_text();
    let value = text
        .strip_prefix(&format!("{which}:\t"))
        .unwrap_or_else(|| panic!("unexpected {which} line: {text:?}"));
    value.trim().to_owned()
}

#[test]
fn a_job_has_no_capabilities_unless_its_app_allows_them() {
    let mut env = TestEnv::start(1);

    for which in ["CapEff", "CapPrm", "CapBnd"] {
        assert_eq!(
            capability_line(&env, "demo", which),
            NO_CAPS,
            "{which} of a default job"
        );
    }
    // Without CAP_CHOWN even root cannot give a file away.
    env.jobs(&["run", "touch /tmp/f && chown 65534 /tmp/f"])
        .assert_code(1)
        .assert_stderr_contains("Operation not permitted");

    create_app(&env, "web", &["--cap-add", "net_bind_service"]);
    let shown = env.jobs(&["apps", "show", "web"]);
    shown.assert_success();
    assert!(
        shown.stdout_text().contains("NET_BIND_SERVICE"),
        "{}",
        shown.stdout_text()
    );
    assert_eq!(
        capability_line(&env, "web", "CapEff"),
        NET_BIND_SERVICE_ONLY
    );
    assert_eq!(
        capability_line(&env, "web", "CapBnd"),
        NET_BIND_SERVICE_ONLY
    );

    // `apps set --no-cap-add` empties the list again.
    env.jobs(&["apps", "set", "web", "--no-cap-add"])
        .assert_success();
    assert_eq!(capability_line(&env, "web", "CapEff"), NO_CAPS);

    // A capability outside Docker's default set is refused, naming the
    // choices: by the CLI, and by the API for any other client.
    env.jobs(&["apps", "set", "web", "--cap-add", "SYS_ADMIN"])
        .assert_usage_error("must be one of");
    for (body, field) in [
        (r#"{"cap_add":["SYS_ADMIN"]}"#, "cap_add"),
        (r#"{"user":"root; rm -rf /"}"#, "user"),
    ] {
        let response = http::request(
            env.api_url(),
            "PATCH",
            "/v1/apps/web",
            Some(&env.admin_token),
            Some(body),
        );
        assert_eq!(response.status, 422, "{response:?}");
        assert_eq!(response.json()["error"]["field"], field, "{response:?}");
    }
    let refused = http::request(
        env.api_url(),
        "PATCH",
        "/v1/apps/web",
        Some(&env.admin_token),
        Some(r#"{"cap_add":["SYS_ADMIN"]}"#),
    );
    assert!(refused.body.contains("NET_BIND_SERVICE"), "{refused:?}");
    env.finish();
}

/// Starts background sleeps until a fork fails. Each count goes to a file
/// with builtins only; once the inner shell died of "can't fork", the outer
/// shell prints the count and blocks on a FIFO (no fork needed), so the
/// container stays at its pids limit until the job's timeout.
const FORK_BOMB: &str = "mkfifo /tmp/block; \
    sh -c 'n=0; while [ $n -lt 5000 ]; do sleep 300 & n=$((n+1)); echo $n > /tmp/count; done'; \
    read n < /tmp/count; echo \"started $n\"; read x < /tmp/block";

#[test]
fn a_fork_bomb_is_stopped_by_the_pids_limit_and_other_jobs_run_on() {
    let mut env = TestEnv::start(2);
    let bomb = env.run_detached(&["-s", "S", "--timeout", "20s", "--", "sh", "-c", FORK_BOMB]);

    // The bomb hits its limit: a fork fails well before 5000. Docker reads
    // stdout and stderr separately, so the count on stdout may be stored
    // before the end of the shell's error on stderr: wait for both.
    let stdout = wait_until("the fork bomb to hit its limit", STATE_DEADLINE, || {
        let logs = env.jobs(&["logs", &bomb]);
        let done =
            logs.stdout_text().starts_with("started") && logs.stderr_text().contains("can't fork");
        done.then_some(logs)
    });
    let started: u32 = stdout
        .stdout_text()
        .trim()
        .strip_prefix("started ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count: {:?}", stdout.stdout_text()));
    assert!(
        (PIDS_LIMIT_S - 16..PIDS_LIMIT_S).contains(&started),
        "the bomb started {started} processes; the limit of size S is {PIDS_LIMIT_S}"
    );
    assert_eq!(env.db_job(&bomb).unwrap().state, "running");

    // Meanwhile, on the other slot, a job forks, runs and exits normally,
    // and the host can still start processes.
    env.jobs(&["run", "--", "sh", "-c", "seq 3 | wc -l; exit 7"])
        .assert_code(7)
        .assert_stdout(b"3\n");
    assert!(
        std::process::Command::new("true")
            .status()
            .is_ok_and(|status| status.success())
    );

    // The bomb itself ends at its timeout, container and all.
    env.jobs(&["wait", &bomb]).assert_code(124);
    assert_eq!(env.status(&bomb)["state"], "timed_out");
    env.finish();
}

#[test]
fn a_read_only_root_leaves_only_tmp_writable() {
    let mut env = TestEnv::start(1);
    create_app(&env, "ro", &["--read-only-root"]);

    let denied = env.jobs(&["-a", "ro", "run", "echo x > /etc/x"]);
    assert_ne!(denied.code(), 0, "writing /etc succeeded");
    denied.assert_stderr_contains("Read-only file system");
    env.jobs(&["-a", "ro", "run", "echo x > /tmp/x && cat /tmp/x"])
        .assert_success()
        .assert_stdout(b"x\n");

    // The default app's root is writable; `--no-read-only-root` makes this
    // app's writable again.
    env.jobs(&["run", "echo x > /etc/x"]).assert_success();
    env.jobs(&["apps", "set", "ro", "--no-read-only-root"])
        .assert_success();
    env.jobs(&["-a", "ro", "run", "echo x > /etc/x"])
        .assert_success();
    env.finish();
}

#[test]
fn an_app_user_runs_its_jobs_as_that_user() {
    let mut env = TestEnv::start(1);
    create_app(&env, "unprivileged", &["--user", "65534"]);

    env.jobs(&["-a", "unprivileged", "run", "--", "id", "-u"])
        .assert_success()
        .assert_stdout(b"65534\n");
    // /tmp is world-writable (sticky) for any user.
    env.jobs(&["-a", "unprivileged", "run", "echo y > /tmp/y && cat /tmp/y"])
        .assert_success()
        .assert_stdout(b"y\n");
    env.jobs(&["run", "--", "id", "-u"])
        .assert_success()
        .assert_stdout(b"0\n");

    // `--no-user` goes back to the image's user.
    env.jobs(&["apps", "set", "unprivileged", "--no-user"])
        .assert_success();
    env.jobs(&["-a", "unprivileged", "run", "--", "id", "-u"])
        .assert_success()
        .assert_stdout(b"0\n");
    env.finish();
}

/// The interface names of /proc/net/dev inside a job of `app`.
fn interfaces(env: &TestEnv, app: &str) -> Vec<String> {
    let output = env.jobs(&["-a", app, "run", "--", "cat", "/proc/net/dev"]);
    output.assert_success();
    output
        .stdout_text()
        .lines()
        .filter_map(|line| line.split_once(':').map(|(name, _)| name.trim().to_owned()))
        .collect()
}

#[test]
fn an_app_with_network_none_has_only_loopback() {
    let mut env = TestEnv::start(1);
    create_app(&env, "offline", &["--network", "none"]);

    assert_eq!(interfaces(&env, "offline"), ["lo"]);
    assert!(
        interfaces(&env, "demo").len() > 1,
        "a default job has a network beyond lo"
    );

    env.jobs(&["apps", "set", "offline", "--network", "default"])
        .assert_success();
    assert!(interfaces(&env, "offline").len() > 1);
    env.finish();
}

/// `docker inspect` of the one container of `job_id`, as JSON.
fn inspect_container_of(job_id: &str) -> serde_json::Value {
    let container = wait_until("the job's container", STATE_DEADLINE, || {
        containers_with_label(&format!("jobs.job_id={job_id}"))
            .into_iter()
            .next()
    });
    let text = docker(&["inspect", &container]);
    let mut all: serde_json::Value = serde_json::from_str(&text).expect("docker inspect JSON");
    all[0].take()
}

#[test]
fn docker_sees_every_default_measure_on_a_running_job() {
    let mut env = TestEnv::start(1);
    let job = env.run_detached(&["-s", "S", "--", "sleep", "60"]);
    env.wait_for_state(&job, "running", STATE_DEADLINE);
    let inspected = inspect_container_of(&job);
    let host = &inspected["HostConfig"];

    assert_eq!(host["Privileged"], false, "{host}");
    assert_eq!(host["CapDrop"], serde_json::json!(["ALL"]), "{host}");
    assert!(
        host["CapAdd"].as_array().is_none_or(Vec::is_empty),
        "{host}"
    );
    assert_eq!(
        host["SecurityOpt"],
        serde_json::json!(["no-new-privileges"]),
        "no seccomp=unconfined, no other option: {host}"
    );
    assert!(host["Binds"].as_array().is_none_or(Vec::is_empty), "{host}");
    // No bind, no Docker socket: only volumes, the shim's read-only at
    // /.jobs (named after the shim, holding only it) and the job's own
    // writable ones below it.
    let mut mounts: Vec<(String, String, bool)> = inspected["Mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|mount| {
            assert_eq!(mount["Type"], "volume", "{inspected}");
            (
                mount["Destination"].as_str().unwrap_or_default().to_owned(),
                mount["Name"].as_str().unwrap_or_default().to_owned(),
                mount["RW"].as_bool().unwrap_or(true),
            )
        })
        .collect();
    // Docker lists them in no set order.
    mounts.sort();
    assert_eq!(mounts.len(), 3, "{inspected}");
    assert_eq!(mounts[0].0, "/.jobs", "{inspected}");
    assert!(
        mounts[0].1.starts_with("jobs-shim-") && !mounts[0].2,
        "{inspected}"
    );
    assert_eq!(
        mounts[1..]
            .iter()
            .map(|(target, _, rw)| (target.as_str(), *rw))
            .collect::<Vec<_>>(),
        [("/.jobs/art", true), ("/.jobs/log", true)],
        "{inspected}"
    );
    for mode in [
        "NetworkMode",
        "PidMode",
        "IpcMode",
        "UsernsMode",
        "UTSMode",
        "CgroupnsMode",
    ] {
        assert_ne!(host[mode], "host", "{mode}: {host}");
    }
    // The app's own network (of this deployment), never Docker's shared
    // default bridge, with no traffic between its containers.
    let network = host["NetworkMode"].as_str().unwrap_or_default();
    assert!(
        network.starts_with("jobs-app-") && network.ends_with("-demo"),
        "{host}"
    );
    assert_eq!(
        docker(&[
            "network",
            "inspect",
            "--format",
            "{{index .Options \"com.docker.network.bridge.enable_icc\"}}",
            network
        ])
        .trim(),
        "false"
    );
    assert_eq!(host["PidsLimit"], PIDS_LIMIT_S, "{host}");
    assert_eq!(host["Memory"], 256 * 1024 * 1024, "{host}");
    assert_eq!(host["Memory"], host["MemorySwap"], "{host}");
    assert_eq!(host["NanoCpus"], 500_000_000, "{host}");
    assert_eq!(host["ReadonlyRootfs"], false, "{host}");
    let tmp = host["Tmpfs"]["/tmp"].as_str().unwrap_or_default();
    for option in ["nosuid", "nodev", "mode=1777", "size=268435456"] {
        assert!(tmp.contains(option), "/tmp options {tmp:?} lack {option}");
    }
    assert_eq!(
        inspected["Config"]["User"], "",
        "the image's user by default"
    );

    env.jobs(&["cancel", &job]).assert_success();
    env.jobs(&["wait", &job]).assert_code(125);
    env.finish();
}
