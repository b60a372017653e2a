//! Hostile input to the pure parsing and validation code: arbitrary strings,
//! bytes and JSON-ish bodies must never panic, every refusal must be a 4xx
//! that names a field, and what is accepted must obey the documented rules.
//!
//! These functions are what every request body, query and CLI argument
//! goes through before anything is stored, so a panic here would be a crash
//! on bad input. Case counts are modest so that CI runs this in seconds;
//! `PROPTEST_CASES` raises them for a longer local run.

use jobs_api::{
    extract::parse_json,
    requests::{
        AppCreateRequest, AppUpdateRequest, FollowQuery, JobCreateRequest, JobListQuery,
        LogPageQuery, parse_after, parse_limit, validate_image,
    },
};
use jobs_core::{
    InvalidInput, JobState, Role, Size,
    duration::parse_duration,
    names::{parse_env_pair, validate_app_name, validate_env_name},
    spec::{
        MAX_COMMAND_BYTES, validate_command, validate_env, validate_idempotency_key,
        validate_timeout,
    },
    wire::{LogChunk, LogStream},
};
use proptest::prelude::*;

/// Cases per property: enough to reach the odd corners of each parser in a
/// few seconds of CI, in all properties together.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(2000);
    ProptestConfig::with_cases(cases)
}

/// A refusal must say which field is at fault and why.
fn assert_explained(error: &InvalidInput) {
    assert!(!error.field.is_empty(), "no field: {error:?}");
    assert!(!error.message.is_empty(), "no message: {error:?}");
}

/// `^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`, the app name rule of PRODUCT.md,
/// written out by hand so that the check does not share code with the
/// validator it checks.
fn is_documented_app_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let inner = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-';
    let edge = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    (1..=63).contains(&bytes.len())
        && bytes.iter().all(inner)
        && bytes.first().is_some_and(edge)
        && bytes.last().is_some_and(edge)
}

/// `[A-Za-z_][A-Za-z0-9_]*`.
fn is_documented_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Strings near the rules' edges as well as anywhere: a name-like alphabet
/// with the characters that break it, and any Unicode at all.
fn name_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9_=\\-]{0,70}",
        "[a-z0-9\\-]{0,70}",
        any::<String>(),
    ]
}

/// A JSON value of any shape, a few levels deep.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        name_like().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(name_like(), inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// An object using the fields the request bodies know, with values of any
/// shape, so that decoding gets past "unknown field" often.
fn request_like_object() -> impl Strategy<Value = serde_json::Value> {
    let key = prop_oneof![
        Just("command".to_owned()),
        Just("env".to_owned()),
        Just("size".to_owned()),
        Just("timeout_seconds".to_owned()),
        Just("idempotency_key".to_owned()),
        Just("name".to_owned()),
        Just("image".to_owned()),
        Just("unset".to_owned()),
        Just("state".to_owned()),
        Just("limit".to_owned()),
        Just("after".to_owned()),
        name_like(),
    ];
    let value = prop_oneof![
        json_value(),
        prop::collection::vec(name_like(), 0..4).prop_map(serde_json::Value::from),
        prop::collection::btree_map(name_like(), name_like(), 0..4).prop_map(|map| {
            serde_json::Value::Object(
                map.into_iter()
                    .map(|(k, v)| (k, serde_json::Value::String(v)))
                    .collect(),
            )
        }),
        name_like().prop_map(serde_json::Value::String),
    ];
    prop::collection::btree_map(key, value, 0..6)
        .prop_map(|map| serde_json::Value::Object(map.into_iter().collect()))
}

/// Bodies as they arrive: valid JSON objects, arbitrary bytes, and JSON cut
/// short or with garbage after it.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        request_like_object().prop_map(|value| value.to_string().into_bytes()),
        json_value().prop_map(|value| value.to_string().into_bytes()),
        prop::collection::vec(any::<u8>(), 0..256),
        (request_like_object(), any::<prop::sample::Index>()).prop_map(|(value, cut)| {
            let mut text = value.to_string().into_bytes();
            let at = cut.index(text.len() + 1);
            text.truncate(at);
            text
        }),
        (
            request_like_object(),
            prop::collection::vec(any::<u8>(), 1..8)
        )
            .prop_map(|(value, garbage)| {
                let mut text = value.to_string().into_bytes();
                text.extend(garbage);
                text
            }),
    ]
}

/// Decodes `bytes` as `T` the way the API does and validates it: a refusal
/// must be a 4xx, never a panic or a 5xx.
fn decode_and_check<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    validate: impl FnOnce(T) -> Result<(), InvalidInput>,
) {
    match parse_json::<T>(bytes) {
        Ok(request) => {
            if let Err(error) = validate(request) {
                assert_explained(&error);
            }
        }
        Err(error) => assert!(
            error.status().is_client_error(),
            "a body the API cannot read must be a 4xx, got {}: {error}",
            error.status()
        ),
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn app_names_that_validate_match_the_documented_rule(name in name_like()) {
        match validate_app_name(&name) {
            Ok(()) => prop_assert!(is_documented_app_name(&name), "{name:?} accepted"),
            Err(error) => {
                assert_explained(&error);
                prop_assert!(!is_documented_app_name(&name), "{name:?} refused");
            }
        }
    }

    #[test]
    fn env_names_that_validate_match_the_documented_rule(name in name_like()) {
        match validate_env_name(&name) {
            Ok(()) => prop_assert!(is_documented_env_name(&name), "{name:?} accepted"),
            Err(error) => {
                assert_explained(&error);
                prop_assert!(!is_documented_env_name(&name), "{name:?} refused");
            }
        }
    }

    #[test]
    fn env_pairs_round_trip(pair in name_like()) {
        match parse_env_pair(&pair) {
            Ok((name, value)) => {
                prop_assert!(is_documented_env_name(&name));
                prop_assert_eq!(format!("{name}={value}"), pair);
            }
            Err(error) => assert_explained(&error),
        }
    }

    #[test]
    fn valid_env_pairs_are_accepted(name in "[A-Za-z_][A-Za-z0-9_]{0,30}", value in any::<String>()) {
        let pair = format!("{name}={value}");
        prop_assert_eq!(parse_env_pair(&pair).ok(), Some((name, value)));
    }

    #[test]
    fn enums_and_durations_parse_without_panicking(text in name_like()) {
        if let Err(error) = text.parse::<Size>() {
            assert_explained(&error);
        }
        let _ = text.parse::<JobState>();
        let _ = text.parse::<Role>();
        match parse_duration("timeout", &text) {
            Ok(duration) => prop_assert!(!duration.is_zero()),
            Err(error) => prop_assert_eq!(error.field, "timeout"),
        }
        if let Err(error) = validate_image(&text) {
            assert_explained(&error);
        }
        if let Err(error) = validate_idempotency_key(Some(&text)) {
            assert_explained(&error);
        }
        for field in ["after", "limit"] {
            let _ = parse_after(field, Some(&text));
        }
        let _ = parse_limit(Some(&text), 50, 500);
    }

    #[test]
    fn numbers_at_any_range_are_checked_not_trusted(seconds in any::<i64>()) {
        if validate_timeout(Some(seconds)).is_ok() {
            prop_assert!(seconds >= 1);
        }
        let _ = parse_limit(Some(&seconds.to_string()), 50, 500)
            .map(|limit| assert!((1..=500).contains(&limit), "limit {limit}"));
        let _ = parse_after("after", Some(&seconds.to_string()));
    }

    #[test]
    fn commands_over_the_limit_are_refused(command in prop::collection::vec(any::<String>(), 0..8)) {
        let bytes: usize = command.iter().map(|arg| arg.len() + 1).sum();
        match validate_command(&command) {
            Ok(()) => {
                prop_assert!(bytes <= MAX_COMMAND_BYTES);
                prop_assert!(!command.is_empty() && !command[0].is_empty());
                prop_assert!(command.iter().all(|arg| !arg.contains('\0')));
            }
            Err(error) => prop_assert_eq!(error.field, "command"),
        }
    }

    #[test]
    fn env_maps_that_validate_have_documented_names(
        env in prop::collection::btree_map(name_like(), any::<String>(), 0..8)
    ) {
        if validate_env(&env).is_ok() {
            prop_assert!(env.keys().all(|name| is_documented_env_name(name)));
            prop_assert!(env.values().all(|value| !value.contains('\0')));
        }
    }

    #[test]
    fn request_bodies_decode_or_get_a_4xx(bytes in body()) {
        decode_and_check::<JobCreateRequest>(&bytes, |request| {
            let job = request.validate()?;
            // Whatever passed must pass the same checks again, as the
            // worker and the CLI apply them.
            assert!(validate_command(&job.command).is_ok());
            assert!(job.command.iter().map(|arg| arg.len() + 1).sum::<usize>() <= MAX_COMMAND_BYTES);
            assert!(validate_env(&job.env).is_ok());
            Ok(())
        });
        decode_and_check::<AppCreateRequest>(&bytes, |request| {
            request.validate().map(drop)
        });
        decode_and_check::<AppUpdateRequest>(&bytes, |request| {
            request.validate().map(drop)
        });
        decode_and_check::<JobListQuery>(&bytes, |query| query.validate().map(drop));
        decode_and_check::<LogPageQuery>(&bytes, |query| query.validate().map(drop));
        decode_and_check::<FollowQuery>(&bytes, |query| {
            let last_event_id = String::from_utf8_lossy(&bytes).into_owned();
            query.resume_after(Some(&last_event_id)).map(drop)
        });
    }

    #[test]
    fn log_chunks_decode_or_fail_cleanly(bytes in body(), data in any::<Vec<u8>>(), seq in any::<i64>()) {
        if let Ok(chunk) = serde_json::from_slice::<LogChunk>(&bytes) {
            let _ = chunk.bytes();
        }
        // What the API encodes, the CLI decodes byte for byte.
        let chunk = LogChunk::new(seq, LogStream::Stdout, chrono::Utc::now(), &data);
        let text = serde_json::to_string(&chunk).expect("a chunk encodes");
        let back: LogChunk = serde_json::from_str(&text).expect("a chunk decodes");
        prop_assert_eq!(back.bytes().expect("valid base64"), data);
    }
}

/// The edge itself, not left to chance: one byte under, at and over.
#[test]
fn the_command_limit_is_exact() {
    let at = vec!["x".repeat(MAX_COMMAND_BYTES - 1)];
    assert!(validate_command(&at).is_ok());
    let over = vec!["x".repeat(MAX_COMMAND_BYTES)];
    let error = validate_command(&over).unwrap_err();
    assert!(error.message.contains("65536"), "{error:?}");
}
