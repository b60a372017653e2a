//! Fan-out: one request makes a group of N tasks, jobs of one app that run
//! the same command, each with its index in `JOBS_TASK_INDEX` (0 to N−1)
//! and N in `JOBS_TASK_COUNT`, at most `parallelism` of them at once.
//!
//! A group ends when every task has ended. Its exit code is 0 when every
//! task succeeded, else the code of the lowest-index task that did not:
//! that task's own ([`crate::exit_code_for`]), or 125 if it never ran.

use crate::exit::EXIT_PLATFORM;
use crate::{InvalidInput, JobState};

/// The most tasks a group may have unless the API is configured otherwise
/// (`JOBS_MAX_TASKS_PER_GROUP`).
pub const DEFAULT_MAX_TASKS: u32 = 1000;
/// The largest `parallelism`: past any worker fleet, so that the bound is
/// about typos, not capacity.
pub const MAX_PARALLELISM: u32 = 100_000;
/// The most bytes of command and env a group's tasks may hold in all:
/// each task stores its own copy, so that one request of N tasks is N
/// jobs' worth of rows, bounded here far below N times a job's own limits.
pub const MAX_GROUP_SPEC_BYTES: usize = 16 * 1024 * 1024;
/// What every group id starts with, so that a command that takes a job id
/// also knows a group's.
pub const GROUP_ID_PREFIX: &str = "grp_";
/// The env var with a task's index, 0 to N−1.
pub const TASK_INDEX_ENV: &str = "JOBS_TASK_INDEX";
/// The env var with the group's number of tasks.
pub const TASK_COUNT_ENV: &str = "JOBS_TASK_COUNT";

/// Whether `id` names a group rather than a job.
pub fn is_group_id(id: &str) -> bool {
    id.starts_with(GROUP_ID_PREFIX)
}

/// Checks a group's `tasks`: 1 to `limit`.
pub fn validate_tasks(tasks: u32, limit: u32) -> Result<(), InvalidInput> {
    if (1..=limit).contains(&tasks) {
        return Ok(());
    }
    Err(InvalidInput::new(
        "tasks",
        format!("tasks must be 1 to {limit} (got {tasks}); the limit is JOBS_MAX_TASKS_PER_GROUP"),
    ))
}

/// Checks a group's `parallelism`: 1 to [`MAX_PARALLELISM`].
pub fn validate_parallelism(parallelism: u32) -> Result<(), InvalidInput> {
    if (1..=MAX_PARALLELISM).contains(&parallelism) {
        return Ok(());
    }
    Err(InvalidInput::new(
        "parallelism",
        format!(
            "parallelism must be 1 to {MAX_PARALLELISM} (got {parallelism}); leave it out to run every task as slots allow"
        ),
    ))
}

/// Checks that `tasks` copies of a command and env of `spec_bytes` bytes
/// fit [`MAX_GROUP_SPEC_BYTES`].
pub fn validate_group_size(tasks: u32, spec_bytes: usize) -> Result<(), InvalidInput> {
    let total = spec_bytes.saturating_mul(tasks as usize);
    if total <= MAX_GROUP_SPEC_BYTES {
        return Ok(());
    }
    Err(InvalidInput::new(
        "tasks",
        format!(
            "{tasks} tasks of {spec_bytes} bytes of command and env each are {total} bytes: \
             the limit is {} bytes for a group; pass large data in an upload, which the \
             tasks share",
            MAX_GROUP_SPEC_BYTES
        ),
    ))
}

/// Refuses env overrides that would hide a task's own index or count.
pub fn validate_task_env<'a>(
    names: impl IntoIterator<Item = &'a String>,
) -> Result<(), InvalidInput> {
    for name in names {
        if name == TASK_INDEX_ENV || name == TASK_COUNT_ENV {
            return Err(InvalidInput::new(
                "env",
                format!("{name} is set by the group for each task: leave it out"),
            ));
        }
    }
    Ok(())
}

/// The env of task `index` of `count`, over the request's own.
pub fn task_env(index: u32, count: u32) -> [(String, String); 2] {
    [
        (TASK_INDEX_ENV.to_owned(), index.to_string()),
        (TASK_COUNT_ENV.to_owned(), count.to_string()),
    ]
}

/// What the exit code of a group reads of each task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskEnd {
    pub index: u32,
    pub state: JobState,
    pub exit_code: Option<i32>,
    /// Whether its command started.
    pub ran: bool,
}

/// The group's exit code once every task ended (`None` before): 0 when all
/// succeeded, else the lowest-index failure's code, 125 if it never ran.
pub fn group_exit_code(tasks: impl IntoIterator<Item = TaskEnd>) -> Option<u8> {
    let mut by_index: Vec<TaskEnd> = tasks.into_iter().collect();
    if by_index.iter().any(|task| !task.state.is_terminal()) {
        return None;
    }
    by_index.sort_by_key(|task| task.index);
    let Some(first_failure) = by_index
        .into_iter()
        .find(|task| task.state != JobState::Succeeded)
    else {
        return Some(0);
    };
    if !first_failure.ran {
        return Some(EXIT_PLATFORM);
    }
    Some(
        crate::exit_code_for(first_failure.state, first_failure.exit_code).unwrap_or(EXIT_PLATFORM),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(index: u32, state: JobState, exit_code: Option<i32>, ran: bool) -> TaskEnd {
        TaskEnd {
            index,
            state,
            exit_code,
            ran,
        }
    }

    #[test]
    fn the_lowest_index_failure_gives_the_exit_code() {
        let tasks = [
            task(3, JobState::Failed, Some(3), true),
            task(0, JobState::Succeeded, Some(0), true),
            task(2, JobState::Failed, Some(7), true),
            task(1, JobState::Succeeded, Some(0), true),
        ];
        assert_eq!(group_exit_code(tasks), Some(7));
        let tasks = [task(0, JobState::Succeeded, Some(0), true)];
        assert_eq!(group_exit_code(tasks), Some(0));
    }

    #[test]
    fn a_task_that_never_ran_exits_125_and_a_timeout_124() {
        let tasks = [
            task(0, JobState::TimedOut, None, true),
            task(1, JobState::Canceled, None, false),
        ];
        assert_eq!(group_exit_code(tasks), Some(124));
        let tasks = [
            task(0, JobState::Succeeded, Some(0), true),
            task(1, JobState::Canceled, None, false),
        ];
        assert_eq!(group_exit_code(tasks), Some(125));
    }

    #[test]
    fn a_group_with_a_task_left_has_no_exit_code_yet() {
        let tasks = [
            task(0, JobState::Failed, Some(1), true),
            task(1, JobState::Running, None, true),
        ];
        assert_eq!(group_exit_code(tasks), None);
    }

    #[test]
    fn bounds_name_the_field_and_the_limit() {
        assert_eq!(
            validate_tasks(1001, 1000).unwrap_err().to_string(),
            "tasks: tasks must be 1 to 1000 (got 1001); the limit is JOBS_MAX_TASKS_PER_GROUP"
        );
        assert!(validate_tasks(0, 1000).is_err());
        assert!(validate_tasks(1000, 1000).is_ok());
        assert_eq!(validate_parallelism(0).unwrap_err().field, "parallelism");
        let env = ["JOBS_TASK_INDEX".to_owned()];
        assert_eq!(validate_task_env(&env).unwrap_err().field, "env");
        assert!(is_group_id("grp_0191") && !is_group_id("0191"));
        assert!(validate_group_size(1000, 16 * 1024).is_ok());
        let err = validate_group_size(1000, 200 * 1024).unwrap_err();
        assert_eq!(err.field, "tasks");
        assert!(
            err.message.starts_with(
                "1000 tasks of 204800 bytes of command and env each are 204800000 bytes: \
                 the limit is 16777216 bytes for a group"
            ),
            "{err}"
        );
    }
}
