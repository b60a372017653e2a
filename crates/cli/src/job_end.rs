//! What `run`, `follow` and `wait` make of a job that has ended: the exit
//! code, and whether the reason deserves a line on stderr.

use jobs_core::JobState;
use jobs_core::exit::EXIT_PLATFORM;
use jobs_core::wire::Job;

/// The CLI's exit code for an ended job.
///
/// A job reported as ended while its state is not terminal would be an API
/// bug; it must not pass for a success, so it counts as a platform failure.
pub fn exit_code(job: &Job) -> u8 {
    exit_code_of(job.state, job.exit_code)
}

/// [`exit_code`] for an end known by its parts, as an attach session's
/// `ended` message gives it.
pub fn exit_code_of(state: JobState, exit_code: Option<i32>) -> u8 {
    jobs_core::exit_code_for(state, exit_code).unwrap_or(EXIT_PLATFORM)
}

/// The line to print on stderr when the exit code does not tell the whole
/// story, as `jobs: job ID STATE: REASON`.
///
/// A command that simply exited non-zero gets no line: its own stderr said
/// what went wrong, and a pipeline's stderr should hold the job's bytes
/// only. Everything else gets one: a timeout, a cancel, a lost worker, a
/// start failure, and a kill by a signal (`oom killed` behind exit 137).
pub fn reason_line(job: &Job) -> Option<String> {
    reason_line_of(&job.id, job.state, job.exit_code, job.reason.as_deref())
}

/// [`reason_line`] for an end known by its parts.
pub fn reason_line_of(
    id: &str,
    state: JobState,
    exit_code: Option<i32>,
    reason: Option<&str>,
) -> Option<String> {
    if !state.is_terminal() {
        return Some(format!(
            "jobs: job {id} is still {state}: the API ended its log stream early"
        ));
    }
    let simply_exited = match state {
        JobState::Succeeded => true,
        JobState::Failed => matches!(exit_code, Some(1..=128)),
        _ => false,
    };
    if simply_exited {
        return None;
    }
    let reason = reason.unwrap_or("no reason given");
    Some(format!("jobs: job {id} {state}: {reason}"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::Utc;
    use jobs_core::Size;

    pub(crate) fn job(state: JobState, exit_code: Option<i32>, reason: Option<&str>) -> Job {
        Job {
            id: "j1".into(),
            app: "web".into(),
            command: vec!["true".into()],
            env: Default::default(),
            size: Size::M,
            timeout_seconds: 3600,
            state,
            attempt: 1,
            exit_code,
            reason: reason.map(String::from),
            cancel_requested: false,
            worker_id: None,
            created_at: Utc::now(),
            started_at: None,
            finished_at: None,
            interactive: None,
            uploads: Vec::new(),
            artifact_paths: Vec::new(),
            artifacts: Vec::new(),
            created_by: None,
            priority: Default::default(),
            group_id: None,
            task_index: None,
            queue: None,
        }
    }

    #[test]
    fn plain_exits_are_quiet() {
        assert_eq!(reason_line(&job(JobState::Succeeded, Some(0), None)), None);
        let failed = job(JobState::Failed, Some(3), Some("exit status 3"));
        assert_eq!(reason_line(&failed), None);
        assert_eq!(exit_code(&failed), 3);
    }

    #[test]
    fn platform_ends_print_their_reason() {
        let cases = [
            (JobState::TimedOut, Some(143), "timed out after 1m", 124),
            (JobState::Canceled, None, "canceled by user", 125),
            (JobState::Lost, None, "worker lost", 125),
            (JobState::Failed, None, "image not found: foo:1", 125),
            (JobState::Failed, Some(137), "oom killed", 137),
        ];
        for (state, code, reason, exit) in cases {
            let ended = job(state, code, Some(reason));
            assert_eq!(
                reason_line(&ended),
                Some(format!("jobs: job j1 {state}: {reason}"))
            );
            assert_eq!(exit_code(&ended), exit);
        }
        assert_eq!(
            reason_line(&job(JobState::Lost, None, None)),
            Some("jobs: job j1 lost: no reason given".into())
        );
    }

    #[test]
    fn an_unended_job_never_exits_zero() {
        let running = job(JobState::Running, None, None);
        assert_eq!(exit_code(&running), 125);
        assert!(reason_line(&running).unwrap().contains("still running"));
    }
}
