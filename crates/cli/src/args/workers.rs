//! `jobs workers ...`: the worker registry, for an admin token of every app.

/// With no subcommand, `jobs workers` lists the workers.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct WorkersArgs {
    #[command(subcommand)]
    pub command: Option<WorkersCommand>,
}

#[derive(Debug, clap::Subcommand)]
pub enum WorkersCommand {
    /// List the workers (the default).
    ///
    /// One line each: id, version, slots in use out of its slots, the ids of
    /// the jobs it runs, its last heartbeat, and its state: active,
    /// draining, or stale when not heard from within 15 seconds.
    #[command(visible_alias = "ls")]
    List,
    /// Stop a worker taking new jobs; `--undo` makes it take jobs again.
    ///
    /// A draining worker takes no queued or interactive job, while the jobs
    /// it runs go on to their end. The drain holds across the worker's
    /// restarts until `--undo`. For a rolling upgrade: drain, wait until
    /// `jobs workers` shows it running nothing, restart it, undo the drain.
    Drain(DrainArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct DrainArgs {
    /// Undo the drain: the worker takes jobs again, within 5 seconds,
    /// without a restart.
    #[arg(long)]
    pub undo: bool,

    /// The worker's id, as `jobs workers` shows it (JOBS_WORKER_ID of that
    /// host, its host name by default).
    pub id: String,
}

#[cfg(test)]
mod tests {
    use crate::args::{Cli, Command, WorkersCommand, parse_from};

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        parse_from(["jobs"].into_iter().chain(args.iter().copied()))
    }

    fn workers(args: &[&str]) -> Option<WorkersCommand> {
        match parse(args).unwrap().command {
            Command::Workers(workers) => workers.command,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn workers_lists_by_default_and_drains_one_by_id() {
        assert!(workers(&["workers"]).is_none());
        assert!(matches!(
            workers(&["workers", "list", "--json"]),
            Some(WorkersCommand::List)
        ));
        assert!(matches!(
            workers(&["workers", "ls"]),
            Some(WorkersCommand::List)
        ));
        let Some(WorkersCommand::Drain(drain)) = workers(&["workers", "drain", "w1"]) else {
            panic!("drain");
        };
        assert_eq!((drain.id.as_str(), drain.undo), ("w1", false));
        let Some(WorkersCommand::Drain(drain)) = workers(&["workers", "drain", "--undo", "w1"])
        else {
            panic!("drain --undo");
        };
        assert!(drain.undo);
    }

    #[test]
    fn a_drain_without_an_id_or_with_two_is_a_usage_error() {
        for bad in [
            &["workers", "drain"][..],
            &["workers", "drain", "a", "b"],
            &["workers", "nope"],
        ] {
            assert_eq!(parse(bad).unwrap_err().exit_code(), 2, "{bad:?}");
        }
    }
}
