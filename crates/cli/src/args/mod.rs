//! The command line, as clap sees it.
//!
//! Every value that can be checked without the API is checked here, by a
//! value parser, so that a bad value is a usage error (exit 2) that names the
//! option, before anything is sent.

mod apps;
mod dev;
mod jobs;
mod parsers;
mod run;
mod shell;
mod tokens;
mod workers;

use clap::{CommandFactory, Parser, Subcommand, error::ErrorKind};

pub use apps::{AppCreateArgs, AppNameArgs, AppSetArgs, AppsCommand};
pub use dev::{DEFAULT_DEV_LISTEN, DevArgs};
pub use jobs::{ArtifactsArgs, FollowArgs, JobIdArgs, ListArgs, LogsArgs, WaitArgs};
pub use parsers::EnvPair;
pub use run::{InterruptArgs, LocalKind, LocalUpload, OnInterrupt, RunArgs, RunPath};
pub use shell::{CompletionsArgs, ManPagesArgs, ShellInitArgs};
pub use tokens::{TokenCreateArgs, TokenIdArgs, TokensCommand};
pub use workers::{DrainArgs, WorkersArgs, WorkersCommand};

/// The address the CLI talks to when neither `--api-url` nor `JOBS_API_URL`
/// says otherwise: where `jobs dev` listens by default.
pub const DEFAULT_API_URL: &str = "http://127.0.0.1:8420";

/// Run one-off commands in ephemeral containers of an app's environment.
///
/// `jobs` is also every shell's job-control builtin: type `jobs run` once
/// the shell integration is loaded (`jobs shell-init --help`), and call the
/// same program as `jobsctl` in scripts and CI.
#[derive(Debug, Parser)]
#[command(name = "jobs", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Options that every subcommand accepts, before or after its name.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Where the API is.
    #[arg(long, env = "JOBS_API_URL", default_value = DEFAULT_API_URL, global = true)]
    pub api_url: String,

    /// The API token, sent as `Authorization: Bearer TOKEN`. Without one, a
    /// CLI talking to a loopback address uses the token file of `jobs dev`.
    #[arg(long, env = "JOBS_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,

    /// A PEM file of CA certificates to trust, besides the system's, when
    /// checking the API's HTTPS certificate (for a private CA).
    #[arg(long, env = "JOBS_CA_CERT", value_name = "PATH", global = true)]
    pub ca_cert: Option<std::path::PathBuf>,

    /// Which app.
    #[arg(short = 'a', long, env = "JOBS_APP", global = true)]
    pub app: Option<String>,

    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command in a fresh container of the app.
    Run(RunArgs),
    /// Stream a job's logs until it ends, then exit with its exit code.
    Follow(FollowArgs),
    /// Attach to a running interactive job (as started by `jobs run` at a
    /// terminal or with -i); Ctrl-P Ctrl-Q detaches again.
    Attach(JobIdArgs),
    /// Print the logs stored so far and exit.
    Logs(LogsArgs),
    /// Block until a job ends, then exit with its exit code.
    Wait(WaitArgs),
    /// Show a job's state, exit code, reason, attempt, timestamps, size and command.
    #[command(visible_alias = "show")]
    Status(JobIdArgs),
    /// List the app's jobs, newest first.
    #[command(visible_alias = "ps")]
    List(ListArgs),
    /// Cancel a job.
    #[command(visible_alias = "stop")]
    Cancel(JobIdArgs),
    /// Download a job's collected artifacts into a directory.
    Artifacts(ArtifactsArgs),
    /// Manage apps.
    #[command(subcommand)]
    Apps(AppsCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// List the workers, or drain one (admin token of every app).
    Workers(WorkersArgs),
    /// Run the whole system in this process (API, worker, SQLite) on the
    /// local Docker engine; state survives a restart.
    Dev(DevArgs),
    /// Print the shell integration for an interactive shell: a function
    /// `jobs` that runs this CLI for its subcommands and options and the
    /// shell's job-control builtin for anything else, with completions.
    /// Load it from ~/.bashrc with `eval "$(env jobs shell-init bash)"`, from
    /// ~/.zshrc with `eval "$(env jobs shell-init zsh)"` (after compinit),
    /// or from ~/.config/fish/config.fish with `env jobs shell-init fish |
    /// source`.
    ShellInit(ShellInitArgs),
    /// Print completions alone, for `jobs` and `jobsctl`, such as
    /// `source <(jobsctl completions bash)`.
    Completions(CompletionsArgs),
    /// Write one man page per subcommand into a directory.
    #[command(hide = true)]
    ManPages(ManPagesArgs),
}

/// Parses the process's command line, exiting 2 with clap's message when
/// it is wrong.
pub fn parse() -> Cli {
    parse_from(std::env::args_os()).unwrap_or_else(|err| err.exit())
}

/// Parses `argv` as [`Cli`], then drops what clap inherited but the
/// command must not take implicitly (see [`tokens::keep_only_typed_token_app`]).
pub fn parse_from<I, T>(argv: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::FromArgMatches;
    let matches = Cli::command().try_get_matches_from(argv)?;
    let mut cli = Cli::from_arg_matches(&matches)?;
    tokens::keep_only_typed_token_app(&mut cli, &matches);
    Ok(cli)
}

/// A usage error found after parsing, printed the way clap prints its own,
/// so that every command-line mistake looks alike and exits 2.
pub fn usage_error(kind: ErrorKind, message: impl std::fmt::Display) -> clap::Error {
    Cli::command().error(kind, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("jobs").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_may_follow_the_subcommand() {
        let cli = parse(&["status", "j1", "--json", "-a", "web", "--token", "t"]).unwrap();
        assert!(cli.global.json);
        assert_eq!(cli.global.app.as_deref(), Some("web"));
        assert_eq!(cli.global.token.as_deref(), Some("t"));
        assert!(matches!(cli.command, Command::Status(JobIdArgs { ref id }) if id == "j1"));
    }

    #[test]
    fn aliases_reach_their_commands() {
        assert!(matches!(
            parse(&["show", "j1"]).unwrap().command,
            Command::Status(_)
        ));
        assert!(matches!(parse(&["ps"]).unwrap().command, Command::List(_)));
        assert!(matches!(
            parse(&["stop", "j1"]).unwrap().command,
            Command::Cancel(_)
        ));
    }

    #[test]
    fn a_missing_subcommand_is_a_usage_error() {
        let err = parse(&[]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }
}
