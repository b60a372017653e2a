//! Configuration files of the servers: TOML whose keys are the servers'
//! long flags, with `_` or `-` between words.
//!
//! ```toml
//! listen = "0.0.0.0:8420"
//! database_url = "postgres://jobs@db/jobs"
//! max_queued_jobs_per_app = 10000
//! ```
//!
//! Precedence, lowest first: the built-in default, the file (`--config
//! PATH` or `JOBS_CONFIG`), the environment variable, the flag. A value
//! from the file becomes a flag that clap parses like any other, so a file
//! value is checked exactly as a flag is; it is added only when neither
//! the flag nor its environment variable is given. An unknown key, a value
//! of the wrong kind and a bad value all fail the start with a message that
//! names the key and the file.
//!
//! This module does no I/O: the binary reads the file (see
//! [`config_path`]) and hands its text to [`with_file_values`].

use std::{
    ffi::{OsStr, OsString},
    path::{Path, PathBuf},
};

use clap::{ArgAction, Command, error::ContextKind, error::ContextValue};

/// The flag and the environment variable that name a configuration file.
pub const CONFIG_FLAG: &str = "config";
pub const CONFIG_ENV: &str = "JOBS_CONFIG";

/// Where the configuration file is, if one is named: `--config PATH` (or
/// `--config=PATH`) on the command line, else `JOBS_CONFIG`.
pub fn config_path(argv: &[OsString], env: impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let flag = format!("--{CONFIG_FLAG}");
    let with_equals = format!("{flag}=");
    let mut words = argv.iter().skip(1);
    while let Some(word) = words.next() {
        let text = word.to_string_lossy();
        if text == "--" {
            break;
        }
        if text == flag {
            return words.next().map(PathBuf::from);
        }
        if let Some(path) = text.strip_prefix(&with_equals) {
            return Some(PathBuf::from(path));
        }
    }
    env(CONFIG_ENV)
        .filter(|path| !path.is_empty())
        .map(PathBuf::from)
}

/// The command line with the file's values added as flags, and which flags
/// came from the file (to name the key when clap refuses one).
#[derive(Debug, Clone)]
pub struct WithFile {
    pub argv: Vec<OsString>,
    path: PathBuf,
    /// (long flag, key as written in the file)
    from_file: Vec<(String, String)>,
}

impl WithFile {
    /// The message for a clap error: when the refused value came from the
    /// file, it names the key and the file; otherwise clap's own message.
    pub fn explain(&self, error: &clap::Error) -> String {
        let refused = error
            .get(ContextKind::InvalidArg)
            .and_then(|value| match value {
                ContextValue::String(text) => Some(text.clone()),
                _ => None,
            });
        if let Some(refused) = refused {
            for (long, key) in &self.from_file {
                if refused == format!("--{long}") || refused.starts_with(&format!("--{long} ")) {
                    let value = error
                        .get(ContextKind::InvalidValue)
                        .map(|value| format!(" {value}"))
                        .unwrap_or_default();
                    let detail = error.to_string();
                    let detail = detail
                        .lines()
                        .next()
                        .unwrap_or("")
                        .trim_start_matches("error: ");
                    return format!(
                        "configuration file {}: key `{key}`:{value} is not valid ({detail})",
                        self.path.display()
                    );
                }
            }
        }
        error.to_string()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigFileError {
    #[error("configuration file {path}: {message}")]
    Syntax { path: String, message: String },
    #[error("configuration file {path}: unknown key `{key}`; the keys are: {known}")]
    UnknownKey {
        path: String,
        key: String,
        known: String,
    },
    #[error("configuration file {path}: key `{key}` must be {expected}")]
    WrongKind {
        path: String,
        key: String,
        expected: &'static str,
    },
}

/// Adds the values of the TOML `text` (read from `path`) to `argv` as
/// flags of `command`, except those whose flag or environment variable is
/// already set.
pub fn with_file_values(
    command: &Command,
    argv: Vec<OsString>,
    path: &Path,
    text: &str,
    env: impl Fn(&str) -> Option<OsString>,
) -> Result<WithFile, ConfigFileError> {
    let shown = path.display().to_string();
    let table: toml::Table =
        text.parse()
            .map_err(|error: toml::de::Error| ConfigFileError::Syntax {
                path: shown.clone(),
                message: error.to_string().trim_end().replace('\n', " "),
            })?;
    let settable: Vec<&clap::Arg> = command
        .get_arguments()
        .filter(|arg| arg.get_long().is_some_and(|long| long != CONFIG_FLAG))
        .filter(|arg| !matches!(arg.get_action(), ArgAction::Help | ArgAction::Version))
        .collect();
    let mut added = Vec::new();
    let mut from_file = Vec::new();
    for (key, value) in &table {
        let long = key.replace('_', "-");
        let Some(arg) = settable
            .iter()
            .find(|arg| arg.get_long() == Some(long.as_str()))
        else {
            let mut known: Vec<String> = settable
                .iter()
                .filter_map(|arg| arg.get_long())
                .map(|long| long.replace('-', "_"))
                .collect();
            known.sort();
            return Err(ConfigFileError::UnknownKey {
                path: shown,
                key: key.clone(),
                known: known.join(", "),
            });
        };
        let flag = format!("--{long}");
        let given_as_flag = argv.iter().skip(1).any(|word| {
            let word = word.to_string_lossy();
            word == flag || word.starts_with(&format!("{flag}="))
        });
        let given_as_env = arg
            .get_env()
            .and_then(|name: &OsStr| env(&name.to_string_lossy()))
            .is_some();
        if given_as_flag || given_as_env {
            continue;
        }
        let wrong_kind = |expected| ConfigFileError::WrongKind {
            path: shown.clone(),
            key: key.clone(),
            expected,
        };
        if matches!(arg.get_action(), ArgAction::SetTrue) {
            match value {
                toml::Value::Boolean(true) => added.push(OsString::from(&flag)),
                toml::Value::Boolean(false) => {}
                _ => return Err(wrong_kind("true or false")),
            }
        } else {
            let text = match value {
                toml::Value::String(text) => text.clone(),
                toml::Value::Integer(number) => number.to_string(),
                toml::Value::Float(number) => number.to_string(),
                toml::Value::Boolean(flag) => flag.to_string(),
                _ => return Err(wrong_kind("a string, a number or a boolean")),
            };
            added.push(OsString::from(format!("{flag}={text}")));
        }
        from_file.push((long, key.clone()));
    }
    // File values go right after the program name, before any `--`.
    let mut argv = argv;
    let at = argv.len().min(1);
    argv.splice(at..at, added);
    Ok(WithFile {
        argv,
        path: path.to_path_buf(),
        from_file,
    })
}

/// Parses the process's command line into `T` as clap's `parse` does, with
/// the configuration file's values under the environment and the flags.
/// `read` reads the file (the one I/O, left to the caller). On a bad file
/// or value it prints the message and exits 2; `--help` and `--version`
/// print and exit 0, as clap does.
pub fn parse_with_config_file<T: clap::Parser>(
    read: impl FnOnce(PathBuf) -> std::io::Result<String>,
) -> T {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let env = |name: &str| std::env::var_os(name);
    let command = T::command();
    let name = command.get_name().to_owned();
    let fail = |message: String| -> ! {
        eprintln!("{name}: {message}");
        std::process::exit(2);
    };
    let with_file = match config_path(&argv, env) {
        None => None,
        Some(path) => {
            let text = read(path.clone()).unwrap_or_else(|error| {
                fail(format!("configuration file {}: {error}", path.display()))
            });
            Some(
                with_file_values(&command, argv.clone(), &path, &text, env)
                    .unwrap_or_else(|error| fail(error.to_string())),
            )
        }
    };
    let words = with_file.as_ref().map_or(argv, |with| with.argv.clone());
    T::try_parse_from(words).unwrap_or_else(|error| match (&with_file, error.kind()) {
        (
            Some(with),
            clap::error::ErrorKind::InvalidValue | clap::error::ErrorKind::ValueValidation,
        ) => fail(with.explain(&error)),
        _ => error.exit(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, value_parser};

    fn command() -> Command {
        Command::new("server")
            .arg(Arg::new(CONFIG_FLAG).long(CONFIG_FLAG).env(CONFIG_ENV))
            .arg(
                Arg::new("listen")
                    .long("listen")
                    .env("T_LISTEN")
                    .default_value("127.0.0.1:1"),
            )
            .arg(
                Arg::new("slots")
                    .long("worker-slots")
                    .env("T_SLOTS")
                    .value_parser(value_parser!(u16).range(1..=8))
                    .default_value("4"),
            )
            .arg(
                Arg::new("verbose")
                    .long("verbose")
                    .action(ArgAction::SetTrue),
            )
    }

    fn argv(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    fn no_env(_: &str) -> Option<OsString> {
        None
    }

    fn parse(file: &str, words: &[&str], env: &[(&str, &str)]) -> Result<clap::ArgMatches, String> {
        let env_of = |name: &str| {
            env.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| OsString::from(value))
        };
        let with = with_file_values(
            &command(),
            argv(words),
            Path::new("/etc/t.toml"),
            file,
            env_of,
        )
        .map_err(|error| error.to_string())?;
        // clap reads the real environment; the tests' variables are only
        // consulted by the precedence check, so pass them as clap would
        // see them: a flag for each.
        let mut words = with.argv.clone();
        for (name, value) in env {
            let long = match *name {
                "T_LISTEN" => "--listen",
                "T_SLOTS" => "--worker-slots",
                _ => unreachable!(),
            };
            words.push(OsString::from(format!("{long}={value}")));
        }
        command()
            .try_get_matches_from(words)
            .map_err(|error| with.explain(&error))
    }

    #[test]
    fn the_path_comes_from_the_flag_then_the_environment() {
        let env = |name: &str| (name == CONFIG_ENV).then(|| OsString::from("/from/env.toml"));
        assert_eq!(
            config_path(&argv(&["s", "--config", "/a.toml"]), env),
            Some(PathBuf::from("/a.toml"))
        );
        assert_eq!(
            config_path(&argv(&["s", "--config=/b.toml"]), env),
            Some(PathBuf::from("/b.toml"))
        );
        assert_eq!(
            config_path(&argv(&["s"]), env),
            Some(PathBuf::from("/from/env.toml"))
        );
        assert_eq!(
            config_path(&argv(&["s", "--", "--config", "x"]), no_env),
            None
        );
        assert_eq!(config_path(&argv(&["s"]), no_env), None);
    }

    #[test]
    fn file_beats_default_env_beats_file_flag_beats_env() {
        let file = "listen = \"0.0.0.0:2\"\nworker_slots = 6\nverbose = true\n";
        let matches = parse(file, &["s"], &[]).unwrap();
        assert_eq!(matches.get_one::<String>("listen").unwrap(), "0.0.0.0:2");
        assert_eq!(*matches.get_one::<u16>("slots").unwrap(), 6);
        assert!(matches.get_flag("verbose"));

        let matches = parse(file, &["s"], &[("T_SLOTS", "7")]).unwrap();
        assert_eq!(
            *matches.get_one::<u16>("slots").unwrap(),
            7,
            "env beats file"
        );

        let matches = parse(file, &["s", "--worker-slots", "8"], &[]).unwrap();
        assert_eq!(
            *matches.get_one::<u16>("slots").unwrap(),
            8,
            "flag beats file"
        );

        let matches = parse("", &["s"], &[]).unwrap();
        assert_eq!(*matches.get_one::<u16>("slots").unwrap(), 4, "default");
    }

    #[test]
    fn dashes_work_as_well_as_underscores() {
        let matches = parse("worker-slots = 2", &["s"], &[]).unwrap();
        assert_eq!(*matches.get_one::<u16>("slots").unwrap(), 2);
    }

    #[test]
    fn bad_files_name_the_key_and_the_file() {
        let unknown = parse("worker_slot = 2", &["s"], &[]).unwrap_err();
        assert_eq!(
            unknown,
            "configuration file /etc/t.toml: unknown key `worker_slot`; the keys are: listen, verbose, worker_slots"
        );
        let invalid = parse("worker_slots = 99", &["s"], &[]).unwrap_err();
        assert!(
            invalid.starts_with(
                "configuration file /etc/t.toml: key `worker_slots`: 99 is not valid ("
            ),
            "{invalid}"
        );
        assert!(invalid.contains("1..=8"), "{invalid}");
        let kind = parse("verbose = \"yes\"", &["s"], &[]).unwrap_err();
        assert_eq!(
            kind,
            "configuration file /etc/t.toml: key `verbose` must be true or false"
        );
        let table = parse("[listen]\nx = 1", &["s"], &[]).unwrap_err();
        assert_eq!(
            table,
            "configuration file /etc/t.toml: key `listen` must be a string, a number or a boolean"
        );
        let syntax = parse("listen = ", &["s"], &[]).unwrap_err();
        assert!(
            syntax.starts_with("configuration file /etc/t.toml: TOML parse error at line 1"),
            "{syntax}"
        );
    }

    #[test]
    fn a_flags_own_bad_value_keeps_clap_s_message() {
        let error = parse("", &["s", "--worker-slots", "0"], &[]).unwrap_err();
        assert!(error.contains("--worker-slots"), "{error}");
        assert!(!error.contains("configuration file"), "{error}");
    }
}
