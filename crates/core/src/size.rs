//! Job sizes. The names are fixed; an operator may change their limits.
//! Also [`MAX_WARM`], the most containers of an app's default size each
//! worker may keep warm for it.

use serde::{Deserialize, Serialize};
use std::{fmt, str::FromStr};

use crate::InvalidInput;

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Size {
    S,
    #[default]
    M,
    L,
    XL,
}

/// The resources one size grants to a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeLimits {
    pub memory_bytes: i64,
    /// CPU in billionths of a CPU, as Docker's `NanoCpus`.
    pub nano_cpus: i64,
    pub pids: i64,
    /// What the container may write into its own files (its writable
    /// layer, outside `/tmp` and its volumes), in bytes.
    pub disk_bytes: i64,
}

const MIB: i64 = 1024 * 1024;

/// The most warm containers an app may ask each worker to keep ready (an
/// app's `warm`): each is a started container of the app's default size,
/// on every worker, waiting whether or not a run comes.
pub const MAX_WARM: u32 = 16;

/// Checks an app's `warm` against [`MAX_WARM`].
pub fn validate_warm(warm: u32) -> Result<(), InvalidInput> {
    if warm <= MAX_WARM {
        return Ok(());
    }
    Err(InvalidInput::new(
        "warm",
        format!("at most {MAX_WARM} warm containers per app (got {warm})"),
    ))
}

impl Size {
    pub const ALL: [Size; 4] = [Size::S, Size::M, Size::L, Size::XL];

    pub fn as_str(self) -> &'static str {
        match self {
            Size::S => "S",
            Size::M => "M",
            Size::L => "L",
            Size::XL => "XL",
        }
    }

    /// The default limits from the product contract.
    pub fn default_limits(self) -> SizeLimits {
        let (memory_mib, nano_cpus, pids, disk_gib) = match self {
            Size::S => (256, 500_000_000, 256, 1),
            Size::M => (512, 1_000_000_000, 512, 2),
            Size::L => (1024, 2_000_000_000, 1024, 4),
            Size::XL => (2048, 4_000_000_000, 2048, 8),
        };
        SizeLimits {
            memory_bytes: memory_mib * MIB,
            nano_cpus,
            pids,
            disk_bytes: disk_gib * 1024 * MIB,
        }
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Size {
    type Err = InvalidInput;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Size::ALL
            .into_iter()
            .find(|size| size.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                InvalidInput::new(
                    "size",
                    format!("size {s:?} is unknown: must be one of S, M, L, XL"),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_case_insensitively() {
        assert_eq!("xl".parse::<Size>(), Ok(Size::XL));
        assert_eq!("M".parse::<Size>(), Ok(Size::M));
        let err = "XXL".parse::<Size>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "size: size \"XXL\" is unknown: must be one of S, M, L, XL"
        );
    }

    #[test]
    fn default_limits_match_the_contract() {
        assert_eq!(Size::default(), Size::M);
        assert_eq!(Size::S.default_limits().memory_bytes, 256 * MIB);
        assert_eq!(Size::XL.default_limits().pids, 2048);
        assert_eq!(Size::L.default_limits().nano_cpus, 2_000_000_000);
    }

    #[test]
    fn warm_pools_are_capped() {
        assert_eq!(validate_warm(0), Ok(()));
        assert_eq!(validate_warm(MAX_WARM), Ok(()));
        let err = validate_warm(MAX_WARM + 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "warm: at most 16 warm containers per app (got 17)"
        );
    }
}
