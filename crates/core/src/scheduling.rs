//! How free slots are shared: an app's cap and weight, and a job's
//! priority within its app.
//!
//! - Between apps with queued work, a free slot goes to the app with the
//!   fewest starting and running jobs per unit of weight (`running /
//!   weight`), so that apps hold slots in proportion to their weights and a
//!   newcomer's job starts at the next slot turnover, whatever another
//!   app's backlog. An app at its `max_running` cap takes no slot.
//! - Within an app, jobs start in order of their place in line: their
//!   creation time, moved [`PRIORITY_SHIFT`] earlier for `high` and later
//!   for `low`. So a high-priority job passes the normal jobs created up to
//!   an hour before it, and no job starves: a low-priority job is passed
//!   only by normal jobs created less than an hour after it and by high ones
//!   created less than two hours after it, so under a steady stream of
//!   higher-priority work it starts at the latest once that stream has
//!   caught up with it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::InvalidInput;

/// How far a priority moves a job's place in line.
pub const PRIORITY_SHIFT: Duration = Duration::from_secs(3600);

/// The largest weight an app may have.
pub const MAX_WEIGHT: u32 = 1000;

/// The largest cap on an app's running jobs.
pub const MAX_MAX_RUNNING: u32 = 100_000;

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    #[default]
    Normal,
    High,
}

impl Priority {
    /// As stored: -1, 0 or 1.
    pub fn as_i16(self) -> i16 {
        match self {
            Priority::Low => -1,
            Priority::Normal => 0,
            Priority::High => 1,
        }
    }

    pub fn from_i16(value: i16) -> Self {
        match value {
            i16::MIN..=-1 => Priority::Low,
            0 => Priority::Normal,
            _ => Priority::High,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
        }
    }

    /// Seconds added to the creation time to make the place in line.
    pub fn line_offset_seconds(self) -> i64 {
        -i64::from(self.as_i16()) * PRIORITY_SHIFT.as_secs() as i64
    }
}

impl std::fmt::Display for Priority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Priority {
    type Err = InvalidInput;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "low" => Ok(Priority::Low),
            "normal" => Ok(Priority::Normal),
            "high" => Ok(Priority::High),
            other => Err(InvalidInput::new(
                "priority",
                format!("must be low, normal or high (got {other:?})"),
            )),
        }
    }
}

/// Checks an app's `weight`: 1 to [`MAX_WEIGHT`].
pub fn validate_weight(weight: u32) -> Result<(), InvalidInput> {
    if (1..=MAX_WEIGHT).contains(&weight) {
        return Ok(());
    }
    Err(InvalidInput::new(
        "weight",
        format!("must be 1 to {MAX_WEIGHT} (got {weight})"),
    ))
}

/// Checks an app's `max_running`: 1 to [`MAX_MAX_RUNNING`].
pub fn validate_max_running(max_running: u32) -> Result<(), InvalidInput> {
    if (1..=MAX_MAX_RUNNING).contains(&max_running) {
        return Ok(());
    }
    Err(InvalidInput::new(
        "max_running",
        format!("must be 1 to {MAX_MAX_RUNNING} (got {max_running}); leave it out for no cap"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_moves_the_place_in_line_by_an_hour() {
        assert_eq!(Priority::High.line_offset_seconds(), -3600);
        assert_eq!(Priority::Normal.line_offset_seconds(), 0);
        assert_eq!(Priority::Low.line_offset_seconds(), 3600);
        for priority in [Priority::Low, Priority::Normal, Priority::High] {
            assert_eq!(Priority::from_i16(priority.as_i16()), priority);
            assert_eq!(priority.as_str().parse::<Priority>(), Ok(priority));
        }
        let err = "urgent".parse::<Priority>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "priority: must be low, normal or high (got \"urgent\")"
        );
    }

    #[test]
    fn weights_and_caps_have_bounds_that_errors_name() {
        assert!(validate_weight(1).is_ok() && validate_weight(MAX_WEIGHT).is_ok());
        assert_eq!(
            validate_weight(0).unwrap_err().to_string(),
            "weight: must be 1 to 1000 (got 0)"
        );
        assert!(validate_max_running(1).is_ok());
        assert!(
            validate_max_running(0)
                .unwrap_err()
                .to_string()
                .starts_with("max_running: must be 1 to 100000 (got 0)")
        );
    }
}
