//! Human durations such as `90s`, `30m` or `2h`.

use std::time::Duration;

use crate::InvalidInput;

/// The longest timeout a job may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);

/// Parses a duration like `90s`, `30m`, `2h` or `1h30m`, for the field `field`.
pub fn parse_duration(field: &str, text: &str) -> Result<Duration, InvalidInput> {
    let parsed = humantime::parse_duration(text.trim()).map_err(|_| {
        InvalidInput::new(
            field,
            format!(
                "duration {text:?} is invalid: use a number and a unit, such as 90s, 30m or 2h"
            ),
        )
    })?;
    if parsed.is_zero() {
        return Err(InvalidInput::new(
            field,
            format!("duration {text:?} is invalid: must be more than zero"),
        ));
    }
    Ok(parsed)
}

/// Checks a job timeout in seconds against the allowed range.
pub fn validate_timeout_seconds(seconds: i64) -> Result<(), InvalidInput> {
    let max = MAX_TIMEOUT.as_secs() as i64;
    if (1..=max).contains(&seconds) {
        return Ok(());
    }
    Err(InvalidInput::new(
        "timeout",
        format!("timeout of {seconds}s is out of range: must be between 1s and {max}s (7 days)"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        assert_eq!(
            parse_duration("timeout", "90s"),
            Ok(Duration::from_secs(90))
        );
        assert_eq!(
            parse_duration("timeout", "30m"),
            Ok(Duration::from_secs(1800))
        );
        assert_eq!(
            parse_duration("timeout", "2h"),
            Ok(Duration::from_secs(7200))
        );
        assert_eq!(
            parse_duration("timeout", "1h30m"),
            Ok(Duration::from_secs(5400))
        );
    }

    #[test]
    fn rejects_bad_durations_naming_the_field() {
        for bad in ["", "abc", "10", "-5s", "0s", "5 parsecs"] {
            let err = parse_duration("timeout", bad).unwrap_err();
            assert_eq!(err.field, "timeout", "{bad}");
        }
    }

    #[test]
    fn timeout_range() {
        assert!(validate_timeout_seconds(1).is_ok());
        assert!(validate_timeout_seconds(604_800).is_ok());
        assert!(validate_timeout_seconds(0).is_err());
        assert!(validate_timeout_seconds(604_801).is_err());
    }
}
