//! `jobs workers` and `jobs workers drain`: the worker table and what a
//! drain does, in words an operator doing a rolling upgrade acts on.

use chrono::{DateTime, Utc};
use jobs_core::wire::WorkerInfo;

use super::{OutputFormat, print_json, print_stdout, table};
use crate::error::CliError;

pub fn print_worker_list(format: OutputFormat, workers: &[WorkerInfo]) -> Result<(), CliError> {
    if format == OutputFormat::Json {
        return print_json(&serde_json::json!({ "workers": workers }));
    }
    if workers.is_empty() {
        return print_stdout("no workers\n");
    }
    let now = Utc::now();
    let header = [
        "ID",
        "VERSION",
        "SLOTS",
        "RUNNING",
        "LAST HEARTBEAT",
        "STATE",
    ]
    .map(String::from);
    let rows = workers.iter().map(|worker| {
        [
            worker.id.clone(),
            worker.version.clone().unwrap_or_else(|| "-".into()),
            format!("{}/{}", worker.slots - worker.free_slots, worker.slots),
            match worker.running_jobs.as_slice() {
                [] => "-".to_owned(),
                ids => ids.join(","),
            },
            age(worker.heartbeat_at, now),
            state(worker).to_owned(),
        ]
    });
    print_stdout(&table(std::iter::once(header).chain(rows)))
}

/// `active`, `draining`, or `stale` when not heard from within the API's
/// freshness window (a stopped worker keeps its row while it is drained).
fn state(worker: &WorkerInfo) -> &'static str {
    match (worker.stale, worker.draining_since.is_some()) {
        (false, false) => "active",
        (false, true) => "draining",
        (true, false) => "stale",
        (true, true) => "stale (draining)",
    }
}

/// How long ago, in the largest whole unit: `3s ago`, `4m ago`, `2h ago`,
/// `5d ago`. A clock a little behind the database's shows `0s ago`.
fn age(then: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let seconds = (now - then).num_seconds().max(0);
    let (count, unit) = match seconds {
        0..60 => (seconds, "s"),
        60..3600 => (seconds / 60, "m"),
        3600..86400 => (seconds / 3600, "h"),
        _ => (seconds / 86400, "d"),
    };
    format!("{count}{unit} ago")
}

pub fn print_worker_drain(format: OutputFormat, worker: &WorkerInfo) -> Result<(), CliError> {
    if format == OutputFormat::Json {
        return print_json(worker);
    }
    let id = &worker.id;
    let running = match worker.running_jobs.len() {
        0 => "no job runs on it".to_owned(),
        1 => "1 running job goes on to its end".to_owned(),
        count => format!("{count} running jobs go on to their end"),
    };
    let text = if worker.draining_since.is_some() {
        format!(
            "worker {id} is draining: it takes no new job, even after a restart, until \
             `{cli} workers drain --undo {id}`; {running}\n",
            cli = crate::shell::command_name()
        )
    } else {
        format!("worker {id} takes jobs again\n")
    };
    print_stdout(&text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn worker(stale: bool, draining: bool) -> WorkerInfo {
        WorkerInfo {
            id: "w1".into(),
            slots: 4,
            free_slots: 3,
            heartbeat_at: Utc::now(),
            stale,
            version: Some("1.2.3".into()),
            draining_since: draining.then(Utc::now),
            running_jobs: vec!["j1".into()],
        }
    }

    #[test]
    fn states_and_ages_read_as_words() {
        assert_eq!(state(&worker(false, false)), "active");
        assert_eq!(state(&worker(false, true)), "draining");
        assert_eq!(state(&worker(true, false)), "stale");
        assert_eq!(state(&worker(true, true)), "stale (draining)");
        let now = Utc::now();
        for (ago, text) in [
            (Duration::seconds(-2), "0s ago"),
            (Duration::seconds(3), "3s ago"),
            (Duration::seconds(125), "2m ago"),
            (Duration::hours(5), "5h ago"),
            (Duration::days(3), "3d ago"),
        ] {
            assert_eq!(age(now - ago, now), text);
        }
    }
}
