//! The CLI's own failures, and the exit code each one becomes.
//!
//! A job's failure is not a `CliError`: it is an exit code taken from the
//! job. A `CliError` is the CLI failing to do what it was asked.

use std::fmt;

use jobs_core::exit::{EXIT_PLATFORM, EXIT_USAGE};

use crate::shell;

#[derive(Debug)]
pub enum CliError {
    /// The command line is wrong. Printed the way clap prints its own usage
    /// errors; exits 2.
    Usage(clap::Error),
    /// The API answered with an error status. `message` is the API's own
    /// sentence when the body was an API error.
    Api { status: u16, message: String },
    /// No answer from the API at all: refused, unresolvable, timed out.
    Unreachable { api_url: String, cause: String },
    /// The API took the request and dropped the connection before it
    /// answered: it is restarting, or a proxy lost it. Unlike a refused
    /// connection, this says that an API lives at that address.
    Dropped { api_url: String, cause: String },
    /// The API answered something this CLI does not understand.
    UnexpectedAnswer(String),
    /// Writing the job's output locally failed.
    LocalOutput(String),
    /// `jobs dev` could not start, or one of its parts failed.
    Dev(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => EXIT_USAGE,
            CliError::Api { .. }
            | CliError::Unreachable { .. }
            | CliError::Dropped { .. }
            | CliError::UnexpectedAnswer(_)
            | CliError::LocalOutput(_)
            | CliError::Dev(_) => EXIT_PLATFORM,
        }
    }

    /// Whether trying the same request again later may succeed: the API was
    /// briefly away, overloaded, or behind a proxy that lost it. Requests that
    /// the API refused (bad token, unknown job) will not improve by retrying.
    pub fn is_retryable(&self) -> bool {
        match self {
            CliError::Unreachable { .. } | CliError::Dropped { .. } => true,
            CliError::Api { status, .. } => *status >= 500 || *status == 408 || *status == 429,
            _ => false,
        }
    }

    /// Prints the error on stderr in the CLI's voice.
    pub fn print(&self) {
        match self {
            // Clap formats (and colors, at a terminal) its own errors.
            CliError::Usage(err) => {
                let _ = err.print();
            }
            CliError::Dev(message) => eprintln!("jobs dev: {message}"),
            CliError::Api { message, .. } => {
                eprintln!(
                    "jobs: {}",
                    with_command_name(message, shell::command_name())
                );
            }
            other => eprintln!("jobs: {other}"),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(err) => write!(f, "{}", err.render()),
            CliError::Api { message, .. } => f.write_str(message),
            CliError::Unreachable { api_url, cause } | CliError::Dropped { api_url, cause } => {
                write!(f, "cannot reach the API at {api_url}: {cause}")
            }
            CliError::UnexpectedAnswer(message)
            | CliError::LocalOutput(message)
            | CliError::Dev(message) => f.write_str(message),
        }
    }
}

impl From<clap::Error> for CliError {
    fn from(err: clap::Error) -> Self {
        CliError::Usage(err)
    }
}

/// The API's sentences name commands as `` `jobs follow ID` ``, which only
/// the shell integration's `jobs` reaches; they are printed with `name`.
fn with_command_name(message: &str, name: &str) -> String {
    message.replace("`jobs ", &format!("`{name} "))
}

/// An error and its causes on one line, skipping causes that repeat what the
/// line already says. Reqwest's own message alone ("error sending request")
/// hides the part a person needs ("Connection refused").
pub fn cause_chain(err: &dyn std::error::Error) -> String {
    let mut line = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_sentences_name_the_command_that_works_here() {
        let message = "job j1 is not interactive: follow its output with `jobs follow j1`";
        assert_eq!(
            with_command_name(message, "jobsctl"),
            "job j1 is not interactive: follow its output with `jobsctl follow j1`"
        );
        assert_eq!(with_command_name(message, "jobs"), message);
    }

    #[test]
    fn only_usage_mistakes_exit_2() {
        let usage = CliError::Usage(clap::Error::raw(
            clap::error::ErrorKind::ValueValidation,
            "a wrong value",
        ));
        assert_eq!(usage.exit_code(), 2);
        let api = CliError::Api {
            status: 404,
            message: "job \"x\" not found".into(),
        };
        assert_eq!(api.exit_code(), 125);
        assert_eq!(api.to_string(), "job \"x\" not found");
    }

    #[test]
    fn server_trouble_is_retryable_and_refusals_are_not() {
        let api = |status| CliError::Api {
            status,
            message: String::new(),
        };
        for status in [500, 502, 503, 504, 429, 408] {
            assert!(api(status).is_retryable(), "{status}");
        }
        for status in [400, 401, 403, 404, 409, 422] {
            assert!(!api(status).is_retryable(), "{status}");
        }
        let unreachable = CliError::Unreachable {
            api_url: "http://x".into(),
            cause: "refused".into(),
        };
        assert!(unreachable.is_retryable());
        assert!(!CliError::UnexpectedAnswer("?".into()).is_retryable());
    }

    #[test]
    fn the_cause_chain_skips_repeats() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl fmt::Display for Outer {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("error sending request")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let err = Outer(std::io::Error::other("Connection refused"));
        assert_eq!(
            cause_chain(&err),
            "error sending request: Connection refused"
        );
    }
}
