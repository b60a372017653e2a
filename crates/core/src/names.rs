//! App names and environment variable names.

use crate::InvalidInput;

/// The longest app name: one DNS label.
pub const APP_NAME_MAX_LEN: usize = 63;

/// Checks that `name` is a lowercase DNS label of 1 to 63 chars of `a-z0-9-`.
pub fn validate_app_name(name: &str) -> Result<(), InvalidInput> {
    let invalid = |why: &str| {
        Err(InvalidInput::new(
            "app",
            format!("app name {name:?} is invalid: {why}"),
        ))
    };
    if name.is_empty() || name.len() > APP_NAME_MAX_LEN {
        return invalid("must be 1 to 63 characters of a-z, 0-9 and -");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return invalid("must be 1 to 63 characters of a-z, 0-9 and -");
    }
    if name.starts_with('-') || name.ends_with('-') {
        return invalid("must not start or end with -");
    }
    Ok(())
}

/// Checks that `name` matches `[A-Za-z_][A-Za-z0-9_]*`.
pub fn validate_env_name(name: &str) -> Result<(), InvalidInput> {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    if first_ok && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Ok(());
    }
    Err(InvalidInput::new(
        "env",
        format!("env name {name:?} is invalid: must match [A-Za-z_][A-Za-z0-9_]*"),
    ))
}

/// Parses one `K=V` pair, as given to `-e`.
pub fn parse_env_pair(pair: &str) -> Result<(String, String), InvalidInput> {
    let Some((name, value)) = pair.split_once('=') else {
        return Err(InvalidInput::new(
            "env",
            format!("env {pair:?} is malformed: expected K=V"),
        ));
    };
    validate_env_name(name)?;
    Ok((name.to_owned(), value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_names() {
        for ok in ["a", "my-app", "app1", &"a".repeat(63)] {
            assert_eq!(validate_app_name(ok), Ok(()), "{ok}");
        }
        for bad in ["", "My", "a_b", "-a", "a-", "a.b", &"a".repeat(64), "é"] {
            let err = validate_app_name(bad).unwrap_err();
            assert_eq!(err.field, "app");
            assert!(err.message.contains("is invalid"), "{}", err.message);
        }
    }

    #[test]
    fn env_names() {
        for ok in ["A", "_", "a_1", "DATABASE_URL"] {
            assert_eq!(validate_env_name(ok), Ok(()));
        }
        for bad in ["", "1FOO", "A-B", "A B", "É"] {
            assert!(validate_env_name(bad).is_err(), "{bad}");
        }
        assert_eq!(
            validate_env_name("1FOO").unwrap_err().to_string(),
            "env: env name \"1FOO\" is invalid: must match [A-Za-z_][A-Za-z0-9_]*"
        );
    }

    #[test]
    fn env_pairs() {
        assert_eq!(parse_env_pair("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert_eq!(parse_env_pair("A="), Ok(("A".into(), String::new())));
        assert!(
            parse_env_pair("NOEQUALS")
                .unwrap_err()
                .message
                .contains("expected K=V")
        );
        assert!(parse_env_pair("=x").is_err());
    }
}
