//! What the tests see of Docker: the containers a worker made, and Docker's
//! event log (which tells when containers started and died).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::cli::Capture;
use crate::poll::wait_until;

/// Runs `docker ARGS` and returns its stdout. Panics if it fails.
#[track_caller]
pub fn docker(args: &[&str]) -> String {
    let output = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("cannot run docker {args:?}: {error}"));
    assert!(
        output.status.success(),
        "docker {args:?} failed with {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The ids of every container, running or not, that carries `label`
/// (`key=value`).
pub fn containers_with_label(label: &str) -> Vec<String> {
    docker(&[
        "ps",
        "--all",
        "--quiet",
        "--no-trunc",
        "--filter",
        &format!("label={label}"),
    ])
    .split_whitespace()
    .map(str::to_owned)
    .collect()
}

/// The running warm containers carrying `label` that no job took yet (a
/// job renames the one it takes after itself).
pub fn waiting_warm_containers(label: &str) -> Vec<String> {
    docker(&[
        "ps",
        "--no-trunc",
        "--filter",
        &format!("label={label}"),
        "--filter",
        "label=jobs.warm",
        "--filter",
        "name=^jobs-warm-",
        "--format",
        "{{.ID}}",
    ])
    .split_whitespace()
    .map(str::to_owned)
    .collect()
}

/// A one-line description of each container carrying `label`, for failure
/// messages.
pub fn describe_containers_with_label(label: &str) -> String {
    docker(&[
        "ps",
        "--all",
        "--filter",
        &format!("label={label}"),
        "--format",
        "{{.ID}} {{.Status}} job={{.Label \"jobs.job_id\"}} attempt={{.Label \"jobs.attempt\"}} {{.Command}}",
    ])
}

/// Force-removes every container carrying `label`. Best effort: used in
/// teardown, where nothing may panic.
pub fn remove_containers_with_label(label: &str) {
    let Ok(output) = Command::new("docker")
        .args([
            "ps",
            "--all",
            "--quiet",
            "--filter",
            &format!("label={label}"),
        ])
        .output()
    else {
        return;
    };
    let ids: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    if ids.is_empty() {
        return;
    }
    let _ = Command::new("docker")
        .args(["rm", "--force", "--volumes"])
        .args(&ids)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Removes what a killed worker leaves once its containers are gone: the
/// uploads' volumes carrying `label`, and the app networks of
/// `deployment` that no container, started or not, uses. Best effort, as
/// [`remove_containers_with_label`].
pub fn remove_leftovers_of_worker(label: &str, deployment: Option<&str>) {
    let listed = |args: &[&str]| -> Vec<String> {
        Command::new("docker")
            .args(args)
            .output()
            .map(|output| {
                String::from_utf8_lossy(&output.stdout)
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let quiet = |args: &[&str]| {
        let _ = Command::new("docker")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    };
    for volume in listed(&[
        "volume",
        "ls",
        "--quiet",
        "--filter",
        &format!("label={label}"),
    ]) {
        quiet(&["volume", "rm", "--force", &volume]);
    }
    let Some(deployment) = deployment else {
        return;
    };
    let networks = listed(&[
        "network",
        "ls",
        "--format",
        "{{.Name}}",
        "--filter",
        &format!("label=jobs.deployment={deployment}"),
    ]);
    for network in networks {
        let filter = format!("network={network}");
        if listed(&["ps", "--all", "--quiet", "--filter", &filter]).is_empty() {
            quiet(&["network", "rm", &network]);
        }
    }
}

/// A point in time in the form `docker events --since/--until` accepts.
pub fn docker_timestamp(time: SystemTime) -> String {
    let since_epoch = time
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    format!(
        "{}.{:09}",
        since_epoch.as_secs(),
        since_epoch.subsec_nanos()
    )
}

/// One container event from `docker events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    /// Such as `create`, `start`, `die`, `destroy`.
    pub action: String,
    pub container_id: String,
    pub time_nano: i64,
    /// The `jobs.job_id` label of the container.
    pub job_id: Option<String>,
    /// The `jobs.worker_id` label: the worker that made the container.
    pub worker_id: Option<String>,
    /// The `exitCode` attribute of a `die` event.
    pub exit_code: Option<String>,
}

fn parse_events(text: &str) -> Vec<ContainerEvent> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event["Type"] == "container")
        .map(|event| {
            let attribute = |name: &str| {
                event["Actor"]["Attributes"][name]
                    .as_str()
                    .map(str::to_owned)
            };
            ContainerEvent {
                action: event["Action"].as_str().unwrap_or_default().to_owned(),
                container_id: event["Actor"]["ID"].as_str().unwrap_or_default().to_owned(),
                time_nano: event["timeNano"].as_i64().unwrap_or_default(),
                job_id: attribute("jobs.job_id"),
                worker_id: attribute("jobs.worker_id"),
                exit_code: attribute("exitCode"),
            }
        })
        .collect()
}

fn events_command(since: SystemTime, until: Option<SystemTime>, filters: &[String]) -> Command {
    let mut command = Command::new("docker");
    command
        .arg("events")
        .args(["--since", &docker_timestamp(since)])
        .args(["--format", "{{json .}}"]);
    if let Some(until) = until {
        command.args(["--until", &docker_timestamp(until)]);
    }
    for filter in filters {
        command.args(["--filter", filter]);
    }
    command
}

/// The container events in `[since, until]` that match every filter (such
/// as `label=jobs.job_id=ID` or `event=start`), from Docker's event log.
pub fn container_events_between(
    since: SystemTime,
    until: SystemTime,
    filters: &[String],
) -> Vec<ContainerEvent> {
    let output = events_command(since, Some(until), filters)
        .stdin(Stdio::null())
        .output()
        .expect("docker events runs");
    assert!(
        output.status.success(),
        "docker events failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    parse_events(&String::from_utf8_lossy(&output.stdout))
}

/// A running `docker events` that records container events from a point in
/// time on. Starting at a time in the past means no event is missed while
/// the watcher itself starts: Docker replays them.
pub struct EventWatcher {
    child: Child,
    stdout: Capture,
}

impl EventWatcher {
    pub fn start(since: SystemTime, filters: &[String]) -> EventWatcher {
        let mut child = events_command(since, None, filters)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker events starts");
        let stdout = Capture::start(child.stdout.take().expect("stdout is piped"));
        EventWatcher { child, stdout }
    }

    /// The events received so far, in the order Docker sent them.
    pub fn events(&self) -> Vec<ContainerEvent> {
        let text = String::from_utf8_lossy(&self.stdout.snapshot()).into_owned();
        // The last line may be incomplete; only complete lines count.
        let complete = match text.rfind('\n') {
            Some(end) => &text[..=end],
            None => "",
        };
        parse_events(complete)
    }

    /// Waits until the events satisfy `condition`, and returns them.
    #[track_caller]
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        condition: impl Fn(&[ContainerEvent]) -> bool,
    ) -> Vec<ContainerEvent> {
        wait_until(what, timeout, || {
            let events = self.events();
            condition(&events).then_some(events)
        })
    }
}

impl Drop for EventWatcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The most containers that ran at the same time, going by `start` and
/// `die` events in order.
pub fn max_concurrently_running(events: &[ContainerEvent]) -> usize {
    let mut ordered = events.to_vec();
    ordered.sort_by_key(|event| event.time_nano);
    let mut running = std::collections::HashSet::new();
    let mut max = 0;
    for event in ordered {
        match event.action.as_str() {
            "start" => {
                running.insert(event.container_id);
                max = max.max(running.len());
            }
            "die" => {
                running.remove(&event.container_id);
            }
            _ => {}
        }
    }
    max
}

/// Whether a docker daemon answers at all.
pub fn docker_is_up() -> bool {
    Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(action: &str, id: &str, time_nano: i64) -> ContainerEvent {
        ContainerEvent {
            action: action.into(),
            container_id: id.into(),
            time_nano,
            job_id: None,
            worker_id: None,
            exit_code: None,
        }
    }

    #[test]
    fn counts_overlapping_containers() {
        let events = [
            event("start", "a", 1),
            event("start", "b", 2),
            event("die", "a", 3),
            event("start", "c", 4),
            event("start", "d", 5),
            event("die", "b", 6),
            event("die", "c", 7),
            event("die", "d", 8),
        ];
        assert_eq!(max_concurrently_running(&events), 3);
    }

    #[test]
    fn parses_the_json_format_of_docker_events() {
        let line = r#"{"status":"die","id":"6c51","from":"jobs-test/busybox:latest","Type":"container","Action":"die","Actor":{"ID":"6c51","Attributes":{"exitCode":"3","jobs.job_id":"j1","jobs.worker_id":"w"}},"scope":"local","time":1795692838,"timeNano":1795692838063825098}"#;
        assert_eq!(
            parse_events(line),
            vec![ContainerEvent {
                action: "die".into(),
                container_id: "6c51".into(),
                time_nano: 1795692838063825098,
                job_id: Some("j1".into()),
                worker_id: Some("w".into()),
                exit_code: Some("3".into()),
            }]
        );
    }
}
