//! API token roles, and the token rules both the API and the CLI check.
//!
//! Roles are ordered: each one may do everything the one below it may.
//! - `read`: see apps, jobs, logs and artifacts;
//! - `run`: also create and cancel jobs;
//! - `admin`: also manage apps and tokens.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::InvalidInput;

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Read,
    Run,
    Admin,
}

/// The longest lifetime a token may be given: ten years.
pub const MAX_TOKEN_LIFETIME_SECONDS: i64 = 10 * 365 * 24 * 3600;
/// The longest description a token may carry.
pub const MAX_TOKEN_DESCRIPTION_LEN: usize = 200;

impl Role {
    pub const ALL: [Role; 3] = [Role::Read, Role::Run, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Run => "run",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = InvalidInput;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                InvalidInput::new(
                    "role",
                    format!("role {s:?} is unknown: must be one of read, run, admin"),
                )
            })
    }
}

/// Checks a token lifetime in seconds against the allowed range.
pub fn validate_token_lifetime_seconds(seconds: i64) -> Result<(), InvalidInput> {
    if (1..=MAX_TOKEN_LIFETIME_SECONDS).contains(&seconds) {
        return Ok(());
    }
    Err(InvalidInput::new(
        "expires_in_seconds",
        format!(
            "a token lifetime of {seconds}s is out of range: must be between 1s and \
             {MAX_TOKEN_LIFETIME_SECONDS}s (10 years)"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_print_and_order() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
            assert_eq!(role.to_string(), role.as_str());
        }
        assert_eq!("ADMIN".parse::<Role>(), Ok(Role::Admin));
        assert!(Role::Read < Role::Run && Role::Run < Role::Admin);
        let err = "owner".parse::<Role>().unwrap_err();
        assert_eq!(err.field, "role");
        assert!(err.message.contains("read, run, admin"), "{err}");
        assert_eq!(serde_json::to_string(&Role::Run).unwrap(), "\"run\"");
    }

    #[test]
    fn lifetimes_are_one_second_to_ten_years() {
        assert!(validate_token_lifetime_seconds(1).is_ok());
        assert!(validate_token_lifetime_seconds(MAX_TOKEN_LIFETIME_SECONDS).is_ok());
        for bad in [0, -1, MAX_TOKEN_LIFETIME_SECONDS + 1] {
            let err = validate_token_lifetime_seconds(bad).unwrap_err();
            assert!(err.message.contains("10 years"), "{err}");
        }
    }
}
