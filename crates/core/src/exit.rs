//! How the end of a job maps to the exit code of `run`, `follow` and `wait`.

use crate::JobState;

/// The job hit its timeout.
pub const EXIT_TIMED_OUT: u8 = 124;
/// The job could not run or did not finish, or the CLI itself failed.
pub const EXIT_PLATFORM: u8 = 125;
/// The command line itself is wrong.
pub const EXIT_USAGE: u8 = 2;
/// The user detached with Ctrl-C.
pub const EXIT_DETACHED: u8 = 130;

/// The CLI's exit code for a job in `state` with the recorded `exit_code`.
///
/// Returns `None` while the job has not ended. The CLI never exits 0 unless
/// the job succeeded with exit code 0.
pub fn exit_code_for(state: JobState, exit_code: Option<i32>) -> Option<u8> {
    let code = match state {
        JobState::Queued | JobState::Starting | JobState::Running => return None,
        JobState::Succeeded => 0,
        JobState::Failed => match exit_code {
            Some(code @ 1..=255) => code as u8,
            // A failure without a real non-zero code is a platform failure.
            _ => EXIT_PLATFORM,
        },
        JobState::TimedOut => EXIT_TIMED_OUT,
        JobState::Canceled | JobState::Lost => EXIT_PLATFORM,
    };
    Some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_maps_as_the_contract_says() {
        assert_eq!(exit_code_for(JobState::Succeeded, Some(0)), Some(0));
        assert_eq!(exit_code_for(JobState::Failed, Some(1)), Some(1));
        assert_eq!(exit_code_for(JobState::Failed, Some(255)), Some(255));
        assert_eq!(exit_code_for(JobState::Failed, Some(137)), Some(137));
        assert_eq!(exit_code_for(JobState::Failed, Some(127)), Some(127));
        assert_eq!(exit_code_for(JobState::Failed, None), Some(125));
        assert_eq!(exit_code_for(JobState::Failed, Some(0)), Some(125));
        assert_eq!(exit_code_for(JobState::Failed, Some(-1)), Some(125));
        assert_eq!(exit_code_for(JobState::Failed, Some(300)), Some(125));
        assert_eq!(exit_code_for(JobState::TimedOut, Some(143)), Some(124));
        assert_eq!(exit_code_for(JobState::Canceled, Some(143)), Some(125));
        assert_eq!(exit_code_for(JobState::Lost, None), Some(125));
        for state in [JobState::Queued, JobState::Starting, JobState::Running] {
            assert_eq!(exit_code_for(state, None), None);
        }
    }

    #[test]
    fn only_success_exits_zero() {
        for state in JobState::ALL {
            for code in [None, Some(0), Some(1), Some(-9), Some(256)] {
                if exit_code_for(state, code) == Some(0) {
                    assert_eq!(state, JobState::Succeeded);
                }
            }
        }
    }
}
