//! A group of tasks (`jobs run --tasks N`): its id, its status with a line
//! per task, and how it ended.

use jobs_core::JobState;
use jobs_core::wire::Group;

use super::{
    OutputFormat, display_command, key_value_block, optional, print_json, print_stdout, table,
    timestamp,
};
use crate::error::CliError;

/// `jobs run --tasks N -d`: the group id alone, for `id=$(…)`.
pub fn print_queued_group(format: OutputFormat, group: &Group) -> Result<(), CliError> {
    match format {
        OutputFormat::Json => print_json(group),
        OutputFormat::Human => print_stdout(&format!("{}\n", group.id)),
    }
}

/// `jobs status GROUP`: the group, then a line per task.
pub fn print_group(format: OutputFormat, group: &Group) -> Result<(), CliError> {
    if format == OutputFormat::Json {
        return print_json(group);
    }
    let rows: Vec<(&str, String)> = vec![
        ("group", group.id.clone()),
        ("app", group.app.clone()),
        ("tasks", counts(group)),
        (
            "parallelism",
            group
                .parallelism
                .map_or_else(|| "-".to_owned(), |p| p.to_string()),
        ),
        ("priority", group.priority.to_string()),
        ("command", display_command(&group.command)),
        ("created", timestamp(&group.created_at)),
        (
            "created by",
            group.created_by.clone().unwrap_or_else(|| "-".into()),
        ),
    ];
    let header = ["TASK", "JOB", "STATE", "EXIT", "REASON"].map(String::from);
    let tasks = group.tasks.iter().map(|task| {
        [
            task.index.to_string(),
            task.job_id.clone(),
            task.state.to_string(),
            optional(task.exit_code),
            task.reason.clone().unwrap_or_else(|| "-".into()),
        ]
    });
    let text = format!(
        "{}\n{}",
        key_value_block(&rows),
        table(std::iter::once(header).chain(tasks))
    );
    print_stdout(&text)
}

/// `jobs cancel GROUP`: what the cancel left.
pub fn print_canceled_group(format: OutputFormat, group: &Group) -> Result<(), CliError> {
    if format == OutputFormat::Json {
        return print_json(group);
    }
    let stopping = group
        .tasks
        .iter()
        .filter(|task| !task.state.is_terminal())
        .count();
    let line = match stopping {
        0 => format!("group {}: {}\n", group.id, counts(group)),
        _ => format!(
            "group {}: {}; cancel requested, the {stopping} not ended stop after a grace period\n",
            group.id,
            counts(group)
        ),
    };
    print_stdout(&line)
}

/// The end of a group that did not wholly succeed, on stderr: how many
/// tasks ended how, and which task gave the exit code.
pub fn print_group_end(group: &Group) {
    let Some(first_failure) = group
        .tasks
        .iter()
        .find(|task| task.state != JobState::Succeeded)
    else {
        return;
    };
    let how = match (first_failure.started_at, first_failure.exit_code) {
        (None, _) => "never ran".to_owned(),
        (Some(_), Some(code)) => format!("{} with exit code {code}", first_failure.state),
        (Some(_), None) => first_failure.state.to_string(),
    };
    eprintln!(
        "jobs: group {}: {}; task {} (job {}) {how}",
        group.id,
        counts(group),
        first_failure.index,
        first_failure.job_id
    );
}

/// `6 tasks: 4 succeeded, 1 failed, 1 running`.
fn counts(group: &Group) -> String {
    let total = group.tasks.len();
    let parts: Vec<String> = group
        .counts()
        .into_iter()
        .map(|(state, count)| format!("{count} {state}"))
        .collect();
    format!(
        "{total} task{}: {}",
        if total == 1 { "" } else { "s" },
        parts.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use jobs_core::wire::GroupTask;

    #[test]
    fn counts_name_every_state_with_tasks() {
        let task = |index, state| GroupTask {
            index,
            job_id: format!("j{index}"),
            state,
            attempt: 1,
            exit_code: None,
            reason: None,
            started_at: None,
            finished_at: None,
        };
        let group = Group {
            id: "grp_1".into(),
            app: "web".into(),
            parallelism: Some(2),
            command: vec!["true".into()],
            priority: Default::default(),
            created_at: Utc::now(),
            created_by: None,
            tasks: vec![
                task(0, JobState::Succeeded),
                task(1, JobState::Failed),
                task(2, JobState::Succeeded),
            ],
        };
        assert_eq!(counts(&group), "3 tasks: 2 succeeded, 1 failed");
    }
}
