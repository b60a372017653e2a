//! What an app's jobs may store: each job's output, and the app's storage
//! quota over logs, uploads and artifacts.
//!
//! A job past its output cap goes on with its own exit code; the worker
//! stores no more of its output and, at its end, one marked line that says
//! how many bytes were not kept ([`output_cap_line`]). The quota gates
//! submissions: past it, creating a job, a group or an upload is refused,
//! naming the quota, until old jobs are purged or deleted.

use crate::{InvalidInput, spec::describe_bytes};

/// The most output one job keeps unless its app says otherwise.
pub const DEFAULT_MAX_OUTPUT_BYTES: u64 = 1 << 30;
/// The smallest cap or quota that may be set: below it nothing useful fits.
pub const MIN_BYTES_SETTING: u64 = 1024;
/// The largest cap or quota that may be set (1 PiB): it fits the database's
/// 64-bit integers with room to add.
pub const MAX_BYTES_SETTING: u64 = 1 << 50;

/// Parses a size such as `1073741824`, `512MiB`, `1GiB` or `2G`: binary
/// units (K, M, G, T, with or without `iB`), a plain number in bytes.
pub fn parse_bytes(field: &str, text: &str) -> Result<u64, InvalidInput> {
    let invalid = || {
        InvalidInput::new(
            field,
            format!(
                "{field} {text:?} is not a size: give bytes or a number with K, M, G or T \
                 (binary units), such as 512MiB or 1GiB"
            ),
        )
    };
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits_end);
    let number: u64 = number.parse().map_err(|_| invalid())?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" | "kb" => 10,
        "m" | "mib" | "mb" => 20,
        "g" | "gib" | "gb" => 30,
        "t" | "tib" | "tb" => 40,
        _ => return Err(invalid()),
    };
    number.checked_mul(1 << shift).ok_or_else(invalid)
}

/// Checks a cap or quota: from 1 KiB to 1 PiB.
pub fn validate_bytes_setting(field: &str, bytes: u64) -> Result<(), InvalidInput> {
    if (MIN_BYTES_SETTING..=MAX_BYTES_SETTING).contains(&bytes) {
        return Ok(());
    }
    Err(InvalidInput::new(
        field,
        format!(
            "{field} must be from {} to {} (got {bytes} bytes)",
            describe_bytes(MIN_BYTES_SETTING),
            describe_bytes(MAX_BYTES_SETTING)
        ),
    ))
}

/// The marked line stored at the end of a job's output when `dropped`
/// bytes past its cap of `limit` were not kept.
pub fn output_cap_line(dropped: u64, limit: u64) -> String {
    format!(
        "[jobs: output limit of {} reached: {dropped} more bytes were not kept]\n",
        describe_bytes(limit)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_binary_units() {
        for (text, bytes) in [
            ("1073741824", 1 << 30),
            ("512MiB", 512 << 20),
            ("1GiB", 1 << 30),
            ("2G", 2 << 30),
            ("4 kib", 4096),
            ("1TB", 1 << 40),
        ] {
            assert_eq!(parse_bytes("max_output", text).unwrap(), bytes, "{text}");
        }
        for bad in ["", "GiB", "1.5GiB", "-1", "1 PB", "99999999999999999999"] {
            let error = parse_bytes("max_output", bad).unwrap_err();
            assert_eq!(error.field, "max_output");
            assert!(error.message.contains("512MiB"), "{}", error.message);
        }
    }

    #[test]
    fn settings_are_bounded() {
        assert!(validate_bytes_setting("storage_quota", 1 << 30).is_ok());
        let small = validate_bytes_setting("storage_quota", 10).unwrap_err();
        assert!(
            small.message.contains("1024 bytes (1 KiB)"),
            "{}",
            small.message
        );
        assert!(validate_bytes_setting("storage_quota", 1 << 51).is_err());
    }

    #[test]
    fn the_cap_line_says_what_was_dropped() {
        assert_eq!(
            output_cap_line(5, 1 << 20),
            "[jobs: output limit of 1048576 bytes (1 MiB) reached: 5 more bytes were not kept]\n"
        );
    }
}
