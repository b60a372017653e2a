//! `jobs`, the command line of the one-off job runner.
//!
//! Map of the modules:
//! - [`args`]: the command line as clap parses it, with every local check
//!   (env pairs, durations, sizes, app names) done by value parsers;
//! - [`commands`]: one module per subcommand, each returning an exit code;
//! - [`client`]: the typed HTTP client of the API's `/v1` routes;
//! - [`log_follow`]: following a job's Server-Sent Events log stream across
//!   dropped connections, with [`log_cursor`] for exact resumes and
//!   [`backoff`] for the delays between attempts;
//! - [`tail`] and [`line_timestamps`]: `follow --tail` and `logs --timestamps`;
//! - [`uploads`]: `run -f`: files and directories streamed to the API;
//! - [`archive`]: directory archives made as they are sent, and artifacts
//!   extracted safely as they arrive; [`progress`]: their progress bars;
//! - [`interrupt`]: SIGINT and SIGTERM while watching a job: detach, or
//!   cancel it and wait for its end (`--on-interrupt`);
//! - [`shell`]: the shell integration, completions and man pages, and the
//!   command name that hints print;
//! - [`attach`]: interactive runs and `jobs attach`, over a WebSocket,
//!   with raw mode and Ctrl-P Ctrl-Q at a terminal;
//! - [`job_end`]: the exit code and stderr line for an ended job;
//! - [`output`]: everything printed, human or `--json`, and the job's bytes;
//! - [`error`]: the CLI's own failures and their exit codes;
//! - [`dev_data_dir`] and [`dev_token`]: the data directory of `jobs dev`
//!   and its token file, which the CLI reads when no token is given.
//!
//! Exit codes: a followed job's own code (see `jobs_core::exit`), 2 for a
//! wrong command line, 125 for the CLI's own failures, 130 after Ctrl-C.

pub mod archive;
pub mod args;
pub mod attach;
pub mod backoff;
pub mod client;
pub mod commands;
pub mod dev_data_dir;
pub mod dev_token;
pub mod error;
pub mod interrupt;
pub mod job_end;
pub mod job_output;
pub mod line_timestamps;
pub mod log_cursor;
pub mod log_follow;
pub mod output;
pub mod progress;
pub mod shell;
pub mod tail;
pub mod uploads;

use std::process::ExitCode;

use jobs_core::exit::EXIT_PLATFORM;

use crate::args::Command;

/// Parses the process's arguments, runs the command and returns its exit
/// code. Clap itself exits 2 on a malformed command line and 0 for `--help`.
pub fn main() -> ExitCode {
    let cli = args::parse();
    // One thread is plenty for one request or stream at a time, and leaves
    // the machine's cores to the jobs' own work. `jobs dev` serves the API
    // and runs a worker: it gets a thread per core.
    let mut builder = match cli.command {
        Command::Dev(_) => tokio::runtime::Builder::new_multi_thread(),
        _ => tokio::runtime::Builder::new_current_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("jobs: cannot start the async runtime: {err}");
            return ExitCode::from(EXIT_PLATFORM);
        }
    };
    match runtime.block_on(commands::execute(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            err.print();
            ExitCode::from(err.exit_code())
        }
    }
}
