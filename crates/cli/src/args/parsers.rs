//! Value parsers that apply the domain's own validation to option values.
//!
//! Each returns the domain's message without its `field:` prefix, because
//! clap already names the option: `invalid value '1A=x' for '--env <K=V>':
//! env name "1A" is invalid: must match [A-Za-z_][A-Za-z0-9_]*`.

use std::time::Duration;

use jobs_core::scheduling::{self, Priority};
use jobs_core::{JobState, Role, Size, duration, names, role, size, spec, storage};

/// One `K=V` pair given to `-e/--env`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvPair {
    pub name: String,
    pub value: String,
}

pub fn env_pair(text: &str) -> Result<EnvPair, String> {
    let (name, value) = names::parse_env_pair(text).map_err(|err| err.message)?;
    Ok(EnvPair { name, value })
}

pub fn env_name(text: &str) -> Result<String, String> {
    names::validate_env_name(text).map_err(|err| err.message)?;
    Ok(text.to_owned())
}

pub fn app_name(text: &str) -> Result<String, String> {
    names::validate_app_name(text).map_err(|err| err.message)?;
    Ok(text.to_owned())
}

pub fn size(text: &str) -> Result<Size, String> {
    text.parse::<Size>().map_err(|err| err.message)
}

pub fn role(text: &str) -> Result<Role, String> {
    text.parse::<Role>().map_err(|err| err.message)
}

/// A token lifetime, as whole seconds (a fraction rounds up) of at most ten
/// years.
pub fn token_lifetime_seconds(text: &str) -> Result<i64, String> {
    let parsed = duration::parse_duration("expires-in", text).map_err(|err| err.message)?;
    let whole_seconds = parsed.as_secs() + u64::from(parsed.subsec_nanos() > 0);
    let seconds = i64::try_from(whole_seconds).unwrap_or(i64::MAX);
    role::validate_token_lifetime_seconds(seconds).map_err(|err| err.message)?;
    Ok(seconds)
}

pub fn job_state(text: &str) -> Result<JobState, String> {
    text.parse::<JobState>().map_err(|err| err.message)
}

/// A job or app timeout, as whole seconds within the allowed range.
///
/// A fraction of a second rounds up, so that `500ms` asks for one second
/// rather than for none.
pub fn timeout_seconds(text: &str) -> Result<i64, String> {
    let parsed = duration::parse_duration("timeout", text).map_err(|err| err.message)?;
    let whole_seconds = parsed.as_secs() + u64::from(parsed.subsec_nanos() > 0);
    let seconds = i64::try_from(whole_seconds).unwrap_or(i64::MAX);
    duration::validate_timeout_seconds(seconds).map_err(|err| err.message)?;
    Ok(seconds)
}

/// A `--warm`: how many warm containers, 0 to `MAX_WARM`.
pub fn warm(text: &str) -> Result<u32, String> {
    let warm = text.trim().parse::<u32>().map_err(|_| {
        format!(
            "{text:?} is not a number of containers: give 0 to {}",
            size::MAX_WARM
        )
    })?;
    size::validate_warm(warm).map_err(|err| err.message)?;
    Ok(warm)
}

/// An app's `--max-running`: 1 to `MAX_MAX_RUNNING` jobs at once.
pub fn max_running(text: &str) -> Result<u32, String> {
    let cap = text.trim().parse::<u32>().map_err(|_| {
        format!(
            "{text:?} is not a number of jobs: give 1 to {}",
            scheduling::MAX_MAX_RUNNING
        )
    })?;
    scheduling::validate_max_running(cap).map_err(|err| err.message)?;
    Ok(cap)
}

/// An app's `--weight`: 1 to `MAX_WEIGHT`.
pub fn weight(text: &str) -> Result<u32, String> {
    let weight = text.trim().parse::<u32>().map_err(|_| {
        format!(
            "{text:?} is not a weight: give 1 to {}",
            scheduling::MAX_WEIGHT
        )
    })?;
    scheduling::validate_weight(weight).map_err(|err| err.message)?;
    Ok(weight)
}

/// A byte cap or quota, or its keyword for "none" (`default` for
/// `--max-output`, `none` for `--storage-quota`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BytesSetting(pub Option<u64>);

/// An app's `--max-output`: a size from 1 KiB to 1 PiB, or `default`.
pub fn max_output(text: &str) -> Result<BytesSetting, String> {
    bytes_setting("max_output_bytes", "default", text)
}

/// An app's `--storage-quota`: a size from 1 KiB to 1 PiB, or `none`.
pub fn storage_quota(text: &str) -> Result<BytesSetting, String> {
    bytes_setting("storage_quota_bytes", "none", text)
}

fn bytes_setting(field: &str, keyword: &str, text: &str) -> Result<BytesSetting, String> {
    if text.trim().eq_ignore_ascii_case(keyword) {
        return Ok(BytesSetting(None));
    }
    let bytes = storage::parse_bytes(field, text).map_err(|err| err.message)?;
    storage::validate_bytes_setting(field, bytes).map_err(|err| err.message)?;
    Ok(BytesSetting(Some(bytes)))
}

/// A job's `--priority`: low, normal or high.
pub fn priority(text: &str) -> Result<Priority, String> {
    text.parse::<Priority>().map_err(|err| err.message)
}

/// How long `jobs wait` itself may block; any positive duration will do.
pub fn wait_duration(text: &str) -> Result<Duration, String> {
    duration::parse_duration("timeout", text).map_err(|err| err.message)
}

pub fn idempotency_key(text: &str) -> Result<String, String> {
    spec::validate_idempotency_key(Some(text)).map_err(|err| err.message)?;
    Ok(text.to_owned())
}

/// A capability for `--cap-add`, canonical (`net_bind_service` and
/// `CAP_NET_BIND_SERVICE` both give `NET_BIND_SERVICE`).
pub fn capability(text: &str) -> Result<String, String> {
    jobs_core::hardening::canonical_capability(text).map_err(|err| err.message)
}

/// A `--user`: `UID[:GID]` or `NAME[:GROUP]`.
pub fn user(text: &str) -> Result<String, String> {
    jobs_core::hardening::validate_user(text).map_err(|err| err.message)?;
    Ok(text.to_owned())
}

/// An app's `--network`: `none`, `default` (the app's own network) or an
/// operator's Docker network by name.
pub fn network(text: &str) -> Result<jobs_core::hardening::NetworkChoice, String> {
    jobs_core::hardening::parse_network(text).map_err(|err| err.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_round_up_to_whole_seconds_within_range() {
        assert_eq!(timeout_seconds("90s"), Ok(90));
        assert_eq!(timeout_seconds("2h"), Ok(7200));
        assert_eq!(timeout_seconds("500ms"), Ok(1));
        assert!(
            timeout_seconds("8days")
                .unwrap_err()
                .contains("out of range")
        );
        assert!(timeout_seconds("soon").unwrap_err().contains("is invalid"));
    }

    #[test]
    fn warm_counts_are_whole_numbers_up_to_the_cap() {
        assert_eq!(warm("0"), Ok(0));
        assert_eq!(warm("16"), Ok(16));
        assert_eq!(
            warm("17"),
            Err("at most 16 warm containers per app (got 17)".to_owned())
        );
        for bad in ["-1", "two", "1.5", ""] {
            assert!(warm(bad).unwrap_err().contains("give 0 to 16"), "{bad:?}");
        }
    }

    #[test]
    fn env_pairs_keep_everything_after_the_first_equals_sign() {
        assert_eq!(
            env_pair("URL=a=b"),
            Ok(EnvPair {
                name: "URL".into(),
                value: "a=b".into()
            })
        );
        assert!(env_pair("NOVALUE").unwrap_err().contains("expected K=V"));
        assert!(env_pair("1A=x").unwrap_err().contains("is invalid"));
    }
}
