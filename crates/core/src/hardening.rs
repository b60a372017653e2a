//! The per-app container hardening options and their validation.
//!
//! Every job container starts with every capability dropped, a read-write
//! root, the image's user and the default network. An app may loosen the
//! first (an allow-list of capabilities) and tighten the others. The
//! defaults that no app can change live in the worker's runtime; see
//! `docs/security.md`.

use serde::{Deserialize, Serialize};

use crate::{InvalidInput, wire::AppUpdate};

/// The capabilities an app may add back. It is Docker's own default set, so
/// that an app can never get more than a plain `docker run` would give:
/// capabilities outside it (SYS_ADMIN, NET_ADMIN, SYS_PTRACE, SYS_MODULE…)
/// open ways out of the container or into the host's kernel.
pub const ALLOWED_CAPABILITIES: [&str; 14] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "NET_RAW",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// The longest user name accepted for `user`, as `useradd` allows.
pub const MAX_USER_NAME_LEN: usize = 32;

/// How an app's job containers are locked down beyond the defaults.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hardening {
    /// Capabilities added back after all are dropped, canonical (upper
    /// case, no `CAP_` prefix), sorted, without duplicates.
    #[serde(default)]
    pub cap_add: Vec<String>,
    /// `UID[:GID]` or `NAME[:GROUP]` to run as; `None` is the image's user.
    #[serde(default)]
    pub user: Option<String>,
    /// Whether the root filesystem is read-only (`/tmp` stays writable).
    #[serde(default)]
    pub read_only_root: bool,
    /// Whether the container has no network at all (only `lo`).
    #[serde(default)]
    pub network_none: bool,
    /// An operator's Docker network the app's jobs join instead of the
    /// app's own (for a database that lives on it); `None`: the app's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
}

impl Hardening {
    /// Applies the hardening fields of a partial update: absent fields stay,
    /// `cap_add` replaces the whole list, a `null` user goes back to the
    /// image's user, a `null` network to the app's own.
    pub fn apply(&mut self, update: &AppUpdate) {
        if let Some(cap_add) = &update.cap_add {
            self.cap_add = cap_add.clone();
        }
        if let Some(user) = &update.user {
            self.user = user.clone();
        }
        if let Some(read_only_root) = update.read_only_root {
            self.read_only_root = read_only_root;
        }
        if let Some(network_none) = update.network_none {
            self.network_none = network_none;
        }
        if let Some(network) = &update.network {
            self.network = network.clone();
            // Naming a network asks for one: it ends `network_none`.
            if network.is_some() && update.network_none.is_none() {
                self.network_none = false;
            }
        }
    }
}

/// Checks one capability name against [`ALLOWED_CAPABILITIES`] and returns
/// its canonical spelling: `net_bind_service` and `CAP_NET_BIND_SERVICE`
/// both become `NET_BIND_SERVICE`, as Docker accepts both.
pub fn canonical_capability(name: &str) -> Result<String, InvalidInput> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    if ALLOWED_CAPABILITIES.contains(&bare) {
        return Ok(bare.to_owned());
    }
    Err(InvalidInput::new(
        "cap_add",
        format!(
            "capability {name:?} is not allowed: must be one of {}",
            ALLOWED_CAPABILITIES.join(", ")
        ),
    ))
}

/// Checks a capability list and returns it canonical, sorted and without
/// duplicates, so that equal lists compare equal.
pub fn canonical_capabilities(names: &[String]) -> Result<Vec<String>, InvalidInput> {
    let mut canonical = names
        .iter()
        .map(|name| canonical_capability(name))
        .collect::<Result<Vec<_>, _>>()?;
    canonical.sort();
    canonical.dedup();
    Ok(canonical)
}

/// Checks a `user`: `UID[:GID]` in digits, or `NAME[:GROUP]` where each name
/// is `[a-z_][a-z0-9_-]*` of at most 32 characters. Anything else could not
/// name a user in the image's /etc/passwd anyway.
pub fn validate_user(user: &str) -> Result<(), InvalidInput> {
    let mut parts = user.splitn(2, ':');
    let valid = parts.all(is_user_part);
    if valid && !user.is_empty() {
        return Ok(());
    }
    Err(InvalidInput::new(
        "user",
        format!(
            "user {user:?} is invalid: must be UID[:GID] in digits or NAME[:GROUP] \
             of [a-z_][a-z0-9_-]*, at most {MAX_USER_NAME_LEN} characters each"
        ),
    ))
}

fn is_user_part(part: &str) -> bool {
    if part.is_empty() || part.len() > MAX_USER_NAME_LEN {
        return false;
    }
    if part.bytes().all(|b| b.is_ascii_digit()) {
        return part.parse::<u32>().is_ok();
    }
    let mut bytes = part.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
    first_ok
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// The longest network name accepted for `network`.
pub const MAX_NETWORK_NAME_LEN: usize = 128;

/// What `--network` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkChoice {
    /// No network at all, only `lo`.
    None,
    /// The app's own network (the default).
    Own,
    /// An operator's Docker network, by name.
    Named(String),
}

/// Parses `--network`: `none`, `default` (the app's own network) or the
/// name of an operator's Docker network ([`validate_network_name`]).
pub fn parse_network(text: &str) -> Result<NetworkChoice, InvalidInput> {
    match text {
        "none" => Ok(NetworkChoice::None),
        "default" => Ok(NetworkChoice::Own),
        name => {
            validate_network_name(name)?;
            Ok(NetworkChoice::Named(name.to_owned()))
        }
    }
}

/// Checks an operator's network name: Docker's `[a-zA-Z0-9][a-zA-Z0-9_.-]*`,
/// at most [`MAX_NETWORK_NAME_LEN`] characters, and neither `host` (the
/// host's own network namespace) nor another app's network (`jobs-app-…`).
pub fn validate_network_name(name: &str) -> Result<(), InvalidInput> {
    let invalid = |why: &str| {
        Err(InvalidInput::new(
            "network",
            format!("network {name:?} {why}"),
        ))
    };
    let mut chars = name.chars();
    let well_formed = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && name.len() <= MAX_NETWORK_NAME_LEN;
    if !well_formed {
        return invalid(&format!(
            "is invalid: must be none, default, or a Docker network name of \
             [a-zA-Z0-9][a-zA-Z0-9_.-]*, at most {MAX_NETWORK_NAME_LEN} characters"
        ));
    }
    if name == "host" {
        return invalid("is the host's own network: a job would share the host's namespace");
    }
    if name.starts_with("jobs-app-") {
        return invalid("is an app's own network: each app's own is `default`");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_are_canonical_and_bounded_by_docker_defaults() {
        assert_eq!(
            canonical_capability("cap_net_bind_service").unwrap(),
            "NET_BIND_SERVICE"
        );
        assert_eq!(
            canonical_capabilities(&["SETUID".into(), "chown".into(), "CAP_SETUID".into()])
                .unwrap(),
            ["CHOWN", "SETUID"]
        );
        for bad in ["SYS_ADMIN", "ALL", "NET_ADMIN", "", "CAP_"] {
            let error = canonical_capability(bad).unwrap_err();
            assert_eq!(error.field, "cap_add");
            assert!(
                error.message.contains("must be one of AUDIT_WRITE"),
                "{error}"
            );
            assert!(error.message.contains("NET_BIND_SERVICE"), "{error}");
        }
    }

    #[test]
    fn users() {
        for ok in [
            "65534",
            "1000:1000",
            "nobody",
            "app_user:staff",
            "_x-1",
            "0",
        ] {
            assert_eq!(validate_user(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            ":",
            "1000:",
            ":1000",
            "Root",
            "a b",
            "1:2:3",
            "99999999999",
            "é",
        ] {
            let error = validate_user(bad).unwrap_err();
            assert_eq!(error.field, "user", "{bad}");
        }
        assert!(validate_user(&"a".repeat(33)).is_err());
    }

    #[test]
    fn networks() {
        assert_eq!(parse_network("none"), Ok(NetworkChoice::None));
        assert_eq!(parse_network("default"), Ok(NetworkChoice::Own));
        assert_eq!(
            parse_network("billing-db"),
            Ok(NetworkChoice::Named("billing-db".into()))
        );
        for (bad, why) in [
            ("host", "host's own network"),
            ("jobs-app-0123abcd-web", "an app's own network"),
            ("-x", "is invalid"),
            ("a b", "is invalid"),
            ("container:x", "is invalid"),
            ("", "is invalid"),
        ] {
            let error = parse_network(bad).unwrap_err();
            assert_eq!(error.field, "network");
            assert!(error.message.contains(why), "{bad}: {}", error.message);
        }
    }
}
