//! A job request and its limits.

use std::collections::BTreeMap;

use crate::{InvalidInput, duration, names, text};

/// The most bytes a command may take, all arguments together.
pub const MAX_COMMAND_BYTES: usize = 64 * 1024;
/// The most arguments a command may have.
pub const MAX_COMMAND_ARGS: usize = 4096;
/// The most env overrides one job may set.
pub const MAX_ENV_VARS: usize = 512;
/// The most bytes of env overrides (names and values) one job may set.
pub const MAX_ENV_BYTES: usize = 256 * 1024;
/// The longest idempotency key.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// The largest file one upload may be, unless the API is configured otherwise.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 5 * 1024 * 1024 * 1024;
/// The most bytes of uploads one job may take, unless configured otherwise.
pub const DEFAULT_MAX_UPLOAD_TOTAL_BYTES: u64 = 20 * 1024 * 1024 * 1024;
/// The most files one job may upload.
pub const MAX_UPLOADS_PER_JOB: usize = 64;
/// The most artifact paths one job may ask for.
pub const MAX_ARTIFACTS_PER_JOB: usize = 64;
/// The longest artifact path.
pub const MAX_ARTIFACT_PATH_BYTES: usize = 4096;
/// The longest upload file name (a file name on Linux).
pub const MAX_UPLOAD_NAME_BYTES: usize = 255;
/// Where uploads land in the container.
pub const UPLOADS_DIR: &str = "/tmp/uploads";

/// Turns the CLI's arguments into the argv a container runs.
///
/// One argument runs through `/bin/sh -c`, as in `jobs run 'ls | wc -l'`;
/// several run as that argv.
pub fn argv_from_cli_args(args: &[String]) -> Vec<String> {
    match args {
        [single] => vec!["/bin/sh".into(), "-c".into(), single.clone()],
        many => many.to_vec(),
    }
}

pub fn validate_command(command: &[String]) -> Result<(), InvalidInput> {
    if command.is_empty() || command[0].is_empty() {
        return Err(InvalidInput::new(
            "command",
            "command is empty: give a command to run",
        ));
    }
    if command.len() > MAX_COMMAND_ARGS {
        return Err(InvalidInput::new(
            "command",
            format!(
                "command has {} arguments: the limit is {MAX_COMMAND_ARGS}",
                command.len()
            ),
        ));
    }
    let bytes: usize = command.iter().map(|arg| arg.len() + 1).sum();
    if bytes > MAX_COMMAND_BYTES {
        return Err(InvalidInput::new(
            "command",
            format!("command is {bytes} bytes long: the limit is {MAX_COMMAND_BYTES} bytes"),
        ));
    }
    if command.iter().any(|arg| arg.contains('\0')) {
        return Err(InvalidInput::new("command", "command contains a NUL byte"));
    }
    Ok(())
}

pub fn validate_env(env: &BTreeMap<String, String>) -> Result<(), InvalidInput> {
    if env.len() > MAX_ENV_VARS {
        return Err(InvalidInput::new(
            "env",
            format!("{} env vars given: the limit is {MAX_ENV_VARS}", env.len()),
        ));
    }
    let mut bytes = 0;
    for (name, value) in env {
        names::validate_env_name(name)?;
        if value.contains('\0') {
            return Err(InvalidInput::new(
                "env",
                format!("env {name:?} contains a NUL byte"),
            ));
        }
        bytes += name.len() + value.len() + 2;
    }
    if bytes > MAX_ENV_BYTES {
        return Err(InvalidInput::new(
            "env",
            format!("env is {bytes} bytes: the limit is {MAX_ENV_BYTES} bytes"),
        ));
    }
    Ok(())
}

pub fn validate_timeout(timeout_seconds: Option<i64>) -> Result<(), InvalidInput> {
    timeout_seconds.map_or(Ok(()), duration::validate_timeout_seconds)
}

pub fn validate_idempotency_key(key: Option<&str>) -> Result<(), InvalidInput> {
    match key {
        Some(key) if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_LEN => {
            Err(InvalidInput::new(
                "idempotency_key",
                format!(
                    "idempotency key is {} bytes: must be 1 to {MAX_IDEMPOTENCY_KEY_LEN}",
                    key.len()
                ),
            ))
        }
        Some(key) => text::validate_line("idempotency_key", "idempotency key", key),
        None => Ok(()),
    }
}

/// Whether `c` may appear in an upload's name: a letter or digit of any
/// script, or one of [`UPLOAD_NAME_PUNCTUATION`].
pub fn is_upload_name_char(c: char) -> bool {
    c.is_alphanumeric() || UPLOAD_NAME_PUNCTUATION.contains(c)
}

/// The punctuation an upload's name may hold beside letters and digits:
/// what file names commonly have, and nothing a shell, a terminal or a
/// path would read as more than a character.
pub const UPLOAD_NAME_PUNCTUATION: &str = " ._-+=,@()[]~#%";

/// An upload's file name: what lands in `/tmp/uploads/<name>`. A plain
/// file name only, of a safe character set ([`is_upload_name_char`]): no
/// separator, not `.` or `..`, no control or bidirectional formatting
/// character, nothing a shell would expand.
pub fn validate_upload_name(name: &str) -> Result<(), InvalidInput> {
    let invalid = |why: &str| {
        Err(InvalidInput::new(
            "name",
            format!("upload name {name:?} {why}"),
        ))
    };
    if name.is_empty() {
        return invalid("is empty: give the file's name");
    }
    if name.len() > MAX_UPLOAD_NAME_BYTES {
        return invalid(&format!(
            "is {} bytes long: the limit is {MAX_UPLOAD_NAME_BYTES} bytes",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return invalid("is not a file name");
    }
    if name.contains(['/', '\\']) {
        return invalid("contains a path separator: give a plain file name");
    }
    if let Some(c) = name.chars().find(|c| text::is_forbidden_in_line(*c)) {
        return invalid(&format!("contains {}", text::describe_forbidden(c)));
    }
    if let Some(c) = name.chars().find(|c| !is_upload_name_char(*c)) {
        return invalid(&format!(
            "contains {c:?}: use letters, digits and {UPLOAD_NAME_PUNCTUATION:?}"
        ));
    }
    Ok(())
}

/// The paths a job collects as artifacts: absolute and normalised (no `.`,
/// `..` or empty segment, so that what is collected is what the path says),
/// printable, at most [`MAX_ARTIFACTS_PER_JOB`] of them, each named once.
pub fn validate_artifact_paths(paths: &[String]) -> Result<(), InvalidInput> {
    let invalid = |message: String| Err(InvalidInput::new("artifacts", message));
    if paths.len() > MAX_ARTIFACTS_PER_JOB {
        return invalid(format!(
            "{} artifact paths given: the limit is {MAX_ARTIFACTS_PER_JOB}",
            paths.len()
        ));
    }
    for (index, path) in paths.iter().enumerate() {
        if !path.starts_with('/') {
            return invalid(format!(
                "artifact path {path:?} is not absolute: give a path such as /app/out.txt"
            ));
        }
        if path.len() > MAX_ARTIFACT_PATH_BYTES {
            return invalid(format!(
                "artifact path is {} bytes long: the limit is {MAX_ARTIFACT_PATH_BYTES} bytes",
                path.len()
            ));
        }
        text::validate_line("artifacts", &format!("artifact path {path:?}"), path)?;
        check_normalised(path).map_err(|why| {
            InvalidInput::new("artifacts", format!("artifact path {path:?} {why}"))
        })?;
        if paths[..index].contains(path) {
            return invalid(format!("artifact path {path:?} is given twice"));
        }
    }
    Ok(())
}

/// Why an absolute path is not in normal form. One trailing `/` is allowed:
/// it names a directory as well.
fn check_normalised(path: &str) -> Result<(), &'static str> {
    if path == "/" {
        return Err("is the whole filesystem: name a file or directory under it");
    }
    let inner = path.strip_suffix('/').unwrap_or(path);
    for segment in inner[1..].split('/') {
        match segment {
            "" => return Err("has an empty segment (//): give it in normal form"),
            "." => return Err("has a . segment: give it in normal form"),
            ".." => return Err("has a .. segment: give the path it leads to"),
            _ => {}
        }
    }
    Ok(())
}

/// A size limit as people read it: `5368709120 bytes (5 GiB)`.
pub fn describe_bytes(bytes: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, size) in UNITS {
        if bytes >= size && bytes % size == 0 {
            return format!("{bytes} bytes ({} {unit})", bytes / size);
        }
    }
    format!("{bytes} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_names_are_plain_file_names() {
        assert!(validate_upload_name("data.csv").is_ok());
        assert!(validate_upload_name("dir.tar.gz").is_ok());
        for good in ["données 2026.csv", "a+b=c,d@e(1)[2]~#3%.txt", ".env"] {
            assert!(validate_upload_name(good).is_ok(), "{good:?}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "../x",
            "a\\b",
            "a\nb",
            "abc\u{202E}vsc.exe",
            "$(id)",
            "a;b",
            "a*",
            "a\u{200B}b",
        ] {
            let err = validate_upload_name(bad).unwrap_err();
            assert_eq!(err.field, "name", "{bad:?}");
        }
        assert!(
            validate_upload_name(&"x".repeat(256))
                .unwrap_err()
                .message
                .contains("the limit is 255 bytes")
        );
    }

    #[test]
    fn artifact_paths_are_absolute_and_distinct() {
        assert!(validate_artifact_paths(&["/out/a".into(), "/b".into(), "/dir/".into()]).is_ok());
        for (bad, why) in [
            ("/tmp/../.jobs", ".. segment"),
            ("/tmp/./x", ". segment"),
            ("/tmp//x", "empty segment"),
            ("/tmp/x/..", ".. segment"),
            ("/", "whole filesystem"),
            ("/tmp/a\nb", "U+000A"),
        ] {
            let error = validate_artifact_paths(&[bad.to_owned()]).unwrap_err();
            assert_eq!(error.field, "artifacts");
            assert!(error.message.contains(why), "{bad}: {}", error.message);
        }
        let relative = validate_artifact_paths(&["out".into()]).unwrap_err();
        assert!(relative.message.contains("not absolute"), "{relative}");
        let twice = validate_artifact_paths(&["/a".into(), "/a".into()]).unwrap_err();
        assert!(twice.message.contains("twice"), "{twice}");
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(describe_bytes(5 << 30), "5368709120 bytes (5 GiB)");
        assert_eq!(describe_bytes(1 << 20), "1048576 bytes (1 MiB)");
        assert_eq!(describe_bytes(1000), "1000 bytes");
    }

    #[test]
    fn one_argument_runs_through_the_shell() {
        assert_eq!(
            argv_from_cli_args(&["ls | wc -l".into()]),
            vec!["/bin/sh", "-c", "ls | wc -l"]
        );
        assert_eq!(
            argv_from_cli_args(&["echo".into(), "a b".into()]),
            vec!["echo", "a b"]
        );
    }

    #[test]
    fn command_limits_name_the_field() {
        assert!(validate_command(&["true".into()]).is_ok());
        assert_eq!(validate_command(&[]).unwrap_err().field, "command");
        assert_eq!(validate_command(&["".into()]).unwrap_err().field, "command");
        let long = vec!["x".repeat(MAX_COMMAND_BYTES)];
        let err = validate_command(&long).unwrap_err();
        assert!(err.message.contains("the limit is 65536 bytes"), "{err}");
        let many = vec!["x".to_string(); MAX_COMMAND_ARGS + 1];
        assert!(
            validate_command(&many)
                .unwrap_err()
                .message
                .contains("4096")
        );
    }

    #[test]
    fn env_limits() {
        let mut env = BTreeMap::new();
        env.insert("GOOD".to_string(), "v".to_string());
        assert!(validate_env(&env).is_ok());
        env.insert("1BAD".to_string(), "v".to_string());
        assert!(validate_env(&env).unwrap_err().message.contains("1BAD"));
        let big: BTreeMap<_, _> = [("BIG".to_string(), "v".repeat(MAX_ENV_BYTES))].into();
        assert!(validate_env(&big).unwrap_err().message.contains("limit"));
    }

    #[test]
    fn idempotency_keys() {
        assert!(validate_idempotency_key(None).is_ok());
        assert!(validate_idempotency_key(Some("k")).is_ok());
        assert!(validate_idempotency_key(Some("")).is_err());
        assert!(validate_idempotency_key(Some(&"k".repeat(256))).is_err());
        let nul = validate_idempotency_key(Some("a\0b")).unwrap_err();
        assert_eq!(nul.field, "idempotency_key");
        assert!(nul.message.contains("U+0000"), "{}", nul.message);
    }
}
