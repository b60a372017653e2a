//! The domain core shared by the API, the worker and the CLI.
//!
//! Nothing in this crate does I/O. It holds:
//! - [`attach`]: the frames of an interactive run's WebSockets;
//! - [`config_file`]: the servers' TOML configuration files and their precedence;
//! - [`names`]: app names and env names, with their validation;
//! - [`size`]: the job sizes and their resource limits, and the cap on an
//!   app's warm pool, whose containers are of its default size;
//! - [`state`]: job states and the transitions allowed between them;
//! - [`exit`]: how the end of a job maps to the CLI's exit code;
//! - [`groups`]: fan-out, a group of N tasks, and its exit code;
//! - [`hardening`]: an app's container hardening options, with their validation;
//! - [`spec`]: a job request (command, env, size, timeout) and its validation;
//! - [`duration`]: human durations such as `90s` or `2h`;
//! - [`role`]: API token roles and token limits;
//! - [`text`]: which characters a text field may hold;
//! - [`storage`]: the cap on a job's output and an app's storage quota;
//! - [`scheduling`]: an app's cap and weight, a job's priority, and how
//!   free slots are shared by them;
//! - [`wire`]: the JSON bodies of the HTTP API.

pub mod attach;
pub mod config_file;
pub mod duration;
pub mod exit;
pub mod groups;
pub mod hardening;
pub mod names;
pub mod role;
pub mod scheduling;
pub mod size;
pub mod spec;
pub mod state;
pub mod storage;
pub mod text;
pub mod wire;

pub use exit::exit_code_for;
pub use role::Role;
pub use size::Size;
pub use state::JobState;

/// A validation failure that names the field and the limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidInput {
    pub field: String,
    pub message: String,
}

impl InvalidInput {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}
