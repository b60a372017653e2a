//! Job states and the transitions allowed between them.
//!
//! ```text
//! queued → starting → running → succeeded | failed | canceled | timed_out | lost
//! ```

use serde::{Deserialize, Serialize};
use std::{fmt, str::FromStr};

use crate::InvalidInput;

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Starting,
    Running,
    Succeeded,
    Failed,
    Canceled,
    TimedOut,
    Lost,
}

impl JobState {
    pub const ALL: [JobState; 8] = [
        JobState::Queued,
        JobState::Starting,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Canceled,
        JobState::TimedOut,
        JobState::Lost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Starting => "starting",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Canceled => "canceled",
            JobState::TimedOut => "timed_out",
            JobState::Lost => "lost",
        }
    }

    /// A terminal state never changes again.
    pub fn is_terminal(self) -> bool {
        !matches!(
            self,
            JobState::Queued | JobState::Starting | JobState::Running
        )
    }

    /// Whether the state machine allows `self → next`.
    ///
    /// `starting → queued` is the reaper's re-queue of a job whose worker
    /// died before the container started.
    pub fn can_become(self, next: JobState) -> bool {
        use JobState::*;
        match self {
            Queued => matches!(next, Starting | Canceled),
            Starting => matches!(next, Queued | Running | Failed | Canceled | TimedOut | Lost),
            Running => matches!(next, Succeeded | Failed | Canceled | TimedOut | Lost),
            Succeeded | Failed | Canceled | TimedOut | Lost => false,
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = InvalidInput;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| {
                InvalidInput::new(
                    "state",
                    format!(
                        "state {s:?} is unknown: must be one of queued, starting, running, \
                         succeeded, failed, canceled, timed_out, lost"
                    ),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use JobState::*;

    #[test]
    fn terminal_states_never_change() {
        for from in JobState::ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in JobState::ALL {
                assert!(!from.can_become(to), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn the_allowed_transitions_are_exactly_these() {
        let allowed = [
            (Queued, Starting),
            (Queued, Canceled),
            (Starting, Queued),
            (Starting, Running),
            (Starting, Failed),
            (Starting, Canceled),
            (Starting, TimedOut),
            (Starting, Lost),
            (Running, Succeeded),
            (Running, Failed),
            (Running, Canceled),
            (Running, TimedOut),
            (Running, Lost),
        ];
        for from in JobState::ALL {
            for to in JobState::ALL {
                assert_eq!(
                    from.can_become(to),
                    allowed.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn round_trips_through_text() {
        for state in JobState::ALL {
            assert_eq!(state.as_str().parse::<JobState>(), Ok(state));
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json, format!("\"{}\"", state.as_str()));
        }
        assert_eq!("nope".parse::<JobState>().unwrap_err().field, "state");
    }
}
