//! The commands that look at or act on one existing job, and `list`.

use std::time::Duration;

use jobs_core::JobState;

use super::parsers;
use super::run::InterruptArgs;

#[derive(Debug, Clone, clap::Args)]
pub struct JobIdArgs {
    /// The job's id, as printed by `jobs run -d` or `jobs list`, or a
    /// group's (`grp_…`), as printed by `jobs run --tasks N -d`.
    pub id: String,
}

#[derive(Debug, Clone, clap::Args)]
pub struct FollowArgs {
    /// The job's id, or a group's: then every line of every task, behind
    /// its `[INDEX] `.
    pub id: String,

    /// Of a group, only this task, as a job of its own.
    #[arg(long, value_name = "INDEX")]
    pub task: Option<u32>,

    /// Start with only the last N lines of the output so far.
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,

    #[command(flatten)]
    pub interrupt: InterruptArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct LogsArgs {
    /// The job's id, or a group's: then every task's output in index
    /// order, each line behind its `[INDEX] `.
    pub id: String,

    /// Of a group, only this task, as a job of its own.
    #[arg(long, value_name = "INDEX")]
    pub task: Option<u32>,

    /// Prefix each line with the time its chunk was written (RFC 3339).
    #[arg(long)]
    pub timestamps: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct WaitArgs {
    /// The job's id, or a group's: then until every task ended, exiting 0
    /// when all succeeded, else with the lowest failed task's code.
    pub id: String,

    /// Give up after this long, such as 90s, 30m or 2h, and exit 125.
    #[arg(long, value_name = "DUR", value_parser = parsers::wait_duration)]
    pub timeout: Option<Duration>,

    #[command(flatten)]
    pub interrupt: InterruptArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ArtifactsArgs {
    /// The job's id.
    pub id: String,

    /// The directory to extract them into (created if missing); each
    /// artifact keeps its base name, so `/out/report` lands in DIR/report.
    #[arg(short = 'o', long = "output", value_name = "DIR", default_value = ".")]
    pub output: std::path::PathBuf,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    /// Only jobs in this state.
    #[arg(long, value_name = "S", value_parser = parsers::job_state)]
    pub state: Option<JobState>,

    /// At most this many jobs.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: Option<u32>,
}

#[cfg(test)]
mod tests {
    use crate::args::{Cli, Command};
    use clap::Parser;
    use jobs_core::JobState;
    use std::time::Duration;

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        Ok(Cli::try_parse_from(std::iter::once("jobs").chain(args.iter().copied()))?.command)
    }

    #[test]
    fn follow_takes_a_tail() {
        let Command::Follow(follow) = parse(&["follow", "j1", "--tail", "20"]).unwrap() else {
            panic!("not follow");
        };
        assert_eq!((follow.id.as_str(), follow.tail), ("j1", Some(20)));
        assert_eq!(
            parse(&["follow", "j1", "--tail", "many"])
                .unwrap_err()
                .exit_code(),
            2
        );
        assert_eq!(parse(&["follow"]).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn wait_parses_its_timeout_locally() {
        let Command::Wait(wait) = parse(&["wait", "j1", "--timeout", "90s"]).unwrap() else {
            panic!("not wait");
        };
        assert_eq!(wait.timeout, Some(Duration::from_secs(90)));
        let err = parse(&["wait", "j1", "--timeout", "later"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("--timeout"), "{err}");
    }

    #[test]
    fn list_checks_state_and_limit() {
        let Command::List(list) = parse(&["list", "--state", "timed_out", "--limit", "5"]).unwrap()
        else {
            panic!("not list");
        };
        assert_eq!(
            (list.state, list.limit),
            (Some(JobState::TimedOut), Some(5))
        );
        let err = parse(&["list", "--state", "done"]).unwrap_err();
        assert!(err.to_string().contains("--state"), "{err}");
        assert_eq!(parse(&["list", "--limit", "0"]).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn logs_takes_timestamps() {
        let Command::Logs(logs) = parse(&["logs", "j1", "--timestamps"]).unwrap() else {
            panic!("not logs");
        };
        assert!(logs.timestamps);
    }
}
