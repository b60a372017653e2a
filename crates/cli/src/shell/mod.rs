//! `jobs` in a real shell, where the name is also the job-control builtin
//! of every POSIX shell and wins over a program on `PATH`.
//!
//! - [`integration`]: `jobs shell-init SHELL`, a function `jobs` that hands
//!   the CLI's words to this binary and the rest to the builtin, with
//!   completions;
//! - [`completions`]: `jobs completions SHELL`, completions alone, for both
//!   names;
//! - [`man_pages`]: one man page per subcommand.
//!
//! Scripts and CI load no integration: they call the same binary as
//! [`SCRIPT_NAME`]. Every hint the CLI prints names the command through
//! [`command_name`], so that it works where the user is.

pub mod completions;
pub mod integration;
pub mod man_pages;

/// The name of this program that no shell shadows.
pub const SCRIPT_NAME: &str = "jobsctl";

/// The name people type once the shell integration is loaded.
pub const INTEGRATION_NAME: &str = "jobs";

/// Set by the integration's `jobs` function for the one command it runs:
/// the user is in a shell where `jobs run` reaches this program.
pub const INTEGRATION_ENV: &str = "JOBS_SHELL_INTEGRATION";

/// The name to print in hints: `jobs` when the call came through the shell
/// integration, else [`SCRIPT_NAME`], which works in any shell or script.
pub fn command_name() -> &'static str {
    command_name_for(std::env::var_os(INTEGRATION_ENV).as_deref())
}

fn command_name_for(integration: Option<&std::ffi::OsStr>) -> &'static str {
    match integration {
        Some(value) if !value.is_empty() => INTEGRATION_NAME,
        _ => SCRIPT_NAME,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_name_jobs_only_through_the_integration() {
        assert_eq!(command_name_for(None), "jobsctl");
        assert_eq!(command_name_for(Some("".as_ref())), "jobsctl");
        assert_eq!(command_name_for(Some("bash".as_ref())), "jobs");
    }
}
