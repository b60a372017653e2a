//! `jobs run [OPTIONS] -- CMD [ARGS...]`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::error::ErrorKind;
use jobs_core::{
    Size, groups,
    scheduling::Priority,
    spec,
    wire::{GroupCreate, JobCreate},
};

use super::parsers::{self, EnvPair};
use super::usage_error;

/// A file or directory of `-f`, as found on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalUpload {
    pub path: PathBuf,
    /// Its name in /tmp/uploads.
    pub name: String,
    pub kind: LocalKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalKind {
    File {
        size: u64,
    },
    /// Sent as a gzipped tar archive, whose size is known only once sent.
    Directory,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Set an environment variable; may be repeated.
    #[arg(short = 'e', long = "env", value_name = "K=V", value_parser = parsers::env_pair)]
    pub env: Vec<EnvPair>,

    /// Upload a file (to /tmp/uploads/NAME) or a directory (to
    /// /tmp/uploads/NAME.tar.gz) before the command starts; may be repeated.
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    pub files: Vec<PathBuf>,

    /// Collect this absolute path from the container when the job ends
    /// (get it with `jobs artifacts ID`); may be repeated.
    #[arg(long = "artifact", value_name = "PATH")]
    pub artifacts: Vec<String>,

    /// The job's size: S, M, L or XL.
    #[arg(short = 's', long, value_name = "S", value_parser = parsers::size)]
    pub size: Option<Size>,

    /// Maximum run time, such as 90s, 30m or 2h.
    #[arg(long, value_name = "DUR", value_parser = parsers::timeout_seconds)]
    pub timeout: Option<i64>,

    /// Give up if no worker has started the job this long after it was
    /// queued: it ends canceled, and the CLI exits 125.
    #[arg(long, value_name = "DUR", value_parser = parsers::timeout_seconds)]
    pub queue_timeout: Option<i64>,

    /// Return the existing job for a repeated request instead of starting another.
    #[arg(long, value_name = "K", value_parser = parsers::idempotency_key)]
    pub idempotency_key: Option<String>,

    /// Queue the job, print its id and exit 0.
    #[arg(short = 'd', long)]
    pub detached: bool,

    /// Attach directly, with stdin forwarded.
    #[arg(short = 'i', long)]
    pub interactive: bool,

    /// Force a TTY on.
    #[arg(long, overrides_with = "no_tty")]
    pub tty: bool,

    /// Force a TTY off.
    #[arg(long = "no-tty", overrides_with = "tty")]
    pub no_tty: bool,

    /// Queue the job and follow it, even at a terminal.
    #[arg(long)]
    pub batch: bool,

    /// Its place in the app's own line: low, normal (the default) or high.
    /// A priority moves a job an hour ahead of or behind the jobs created
    /// at the same time, so a low one still runs under a stream of others.
    #[arg(long, value_name = "P", value_parser = parsers::priority)]
    pub priority: Option<Priority>,

    /// Run the command as N tasks of one group, each with its index in
    /// JOBS_TASK_INDEX (0 to N-1) and N in JOBS_TASK_COUNT; the group id
    /// works with status, wait, follow, logs and cancel.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub tasks: Option<u32>,

    /// Run at most P tasks of the group at once.
    #[arg(long, value_name = "P", requires = "tasks",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub parallelism: Option<u32>,

    #[command(flatten)]
    pub interrupt: InterruptArgs,

    /// The command: one argument runs with `/bin/sh -c ARG`, several run as that argv.
    #[arg(
        value_name = "CMD",
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
}

/// `--on-interrupt`, of every command that watches a job to its end.
#[derive(Debug, Clone, clap::Args)]
pub struct InterruptArgs {
    /// What SIGINT (Ctrl-C) and SIGTERM (a CI runner canceling its step) do:
    /// `detach` leaves the job running and says how to follow or cancel it;
    /// `cancel` cancels the job, waits for its end and exits with its code.
    /// At a terminal, Ctrl-C still goes to an attached job's command.
    #[arg(
        long,
        value_enum,
        value_name = "WHAT",
        env = "JOBS_ON_INTERRUPT",
        default_value = "detach"
    )]
    pub on_interrupt: OnInterrupt,
}

/// What a followed or attached run does when the CLI gets SIGINT or SIGTERM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnInterrupt {
    /// Stop watching; the job goes on.
    Detach,
    /// Cancel the job, wait for its end, and exit with its code.
    Cancel,
}

/// Which way a run goes (see "Which path a run takes" in the product
/// contract).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunPath {
    /// Queue the job and print its id (`-d`).
    Detached,
    /// Queue the job and follow its logs.
    Queued,
    /// Start it directly and attach, with stdin forwarded.
    Interactive { tty: bool },
}

impl RunArgs {
    /// The path this run takes, given whether local stdin is a terminal.
    ///
    /// A terminal attaches with a TTY, unless `--batch` or `-d` asks for the
    /// queue; `-i` attaches anyway, with a TTY only at a terminal unless
    /// `--tty`/`--no-tty` says otherwise. Asking for both the queue and an
    /// attach is a usage error naming both options.
    pub fn path(&self, stdin_is_terminal: bool) -> Result<RunPath, clap::Error> {
        if self.tasks.is_some() {
            // A group's tasks are queued jobs, followed with their output
            // prefixed: there is no one terminal to attach to.
            if self.interactive || self.tty {
                let option = if self.interactive {
                    "-i/--interactive"
                } else {
                    "--tty"
                };
                return Err(usage_error(
                    ErrorKind::ArgumentConflict,
                    format!(
                        "--tasks cannot be used with {option}: a group's tasks are queued, \
                         and their output is followed line by line"
                    ),
                ));
            }
            return Ok(if self.detached {
                RunPath::Detached
            } else {
                RunPath::Queued
            });
        }
        if self.interactive {
            let queued_option = if self.detached {
                Some("-d/--detached")
            } else if self.batch {
                Some("--batch")
            } else {
                None
            };
            if let Some(option) = queued_option {
                return Err(usage_error(
                    ErrorKind::ArgumentConflict,
                    format!(
                        "-i/--interactive cannot be used with {option}: \
                         {option} queues the job, -i attaches to it directly"
                    ),
                ));
            }
        }
        if self.detached {
            return Ok(RunPath::Detached);
        }
        if self.batch || !(self.interactive || stdin_is_terminal) {
            return Ok(RunPath::Queued);
        }
        let tty = if self.tty {
            true
        } else if self.no_tty {
            false
        } else {
            stdin_is_terminal
        };
        Ok(RunPath::Interactive { tty })
    }

    /// The files and directories of `-f`, checked locally before anything
    /// is sent: each exists, and no two land on the same name in
    /// /tmp/uploads. A directory goes as `<name>.tar.gz`.
    pub fn local_uploads(&self) -> Result<Vec<LocalUpload>, clap::Error> {
        let bad = |path: &std::path::Path, why: String| {
            usage_error(
                ErrorKind::ValueValidation,
                format!(
                    "invalid value '{}' for '--file <PATH>': {why}",
                    path.display()
                ),
            )
        };
        if self.files.len() > spec::MAX_UPLOADS_PER_JOB {
            return Err(usage_error(
                ErrorKind::ValueValidation,
                format!(
                    "{} files given with --file: the limit is {} per job",
                    self.files.len(),
                    spec::MAX_UPLOADS_PER_JOB
                ),
            ));
        }
        let mut uploads: Vec<LocalUpload> = Vec::with_capacity(self.files.len());
        for path in &self.files {
            let metadata = std::fs::metadata(path).map_err(|err| bad(path, err.to_string()))?;
            let base = path
                .canonicalize()
                .ok()
                .and_then(|full| full.file_name().map(|name| name.to_os_string()))
                .and_then(|name| name.into_string().ok())
                .ok_or_else(|| bad(path, "it has no UTF-8 file name".into()))?;
            let (name, kind) = if metadata.is_dir() {
                (format!("{base}.tar.gz"), LocalKind::Directory)
            } else if metadata.is_file() {
                (
                    base,
                    LocalKind::File {
                        size: metadata.len(),
                    },
                )
            } else {
                return Err(bad(path, "not a regular file or a directory".into()));
            };
            spec::validate_upload_name(&name).map_err(|err| bad(path, err.message))?;
            if let Some(earlier) = uploads.iter().find(|upload| upload.name == name) {
                return Err(bad(
                    path,
                    format!(
                        "it lands in /tmp/uploads/{name}, as '{}' does: rename one",
                        earlier.path.display()
                    ),
                ));
            }
            uploads.push(LocalUpload {
                path: path.clone(),
                name,
                kind,
            });
        }
        Ok(uploads)
    }

    /// The API request of a group, when `--tasks` was given.
    pub fn group_create(&self) -> Result<Option<GroupCreate>, clap::Error> {
        let Some(tasks) = self.tasks else {
            return Ok(None);
        };
        let job = self.job_create()?;
        groups::validate_task_env(job.env.keys()).map_err(|err| {
            usage_error(
                ErrorKind::ValueValidation,
                format!("-e/--env: {}", err.message),
            )
        })?;
        Ok(Some(GroupCreate {
            job,
            tasks,
            parallelism: self.parallelism,
        }))
    }

    /// The API request for this run, checked against the same limits the API
    /// applies, so that a bad command line never reaches it.
    pub fn job_create(&self) -> Result<JobCreate, clap::Error> {
        let command = spec::argv_from_cli_args(&self.command);
        spec::validate_command(&command)
            .map_err(|err| usage_error(ErrorKind::ValueValidation, err.message))?;

        // A name given twice keeps its last value, as a shell assignment would.
        let env: BTreeMap<String, String> = self
            .env
            .iter()
            .map(|pair| (pair.name.clone(), pair.value.clone()))
            .collect();
        spec::validate_env(&env)
            .map_err(|err| usage_error(ErrorKind::ValueValidation, err.message))?;
        spec::validate_artifact_paths(&self.artifacts).map_err(|err| {
            usage_error(
                ErrorKind::ValueValidation,
                format!("invalid value for '--artifact <PATH>': {}", err.message),
            )
        })?;

        Ok(JobCreate {
            command,
            env,
            size: self.size,
            timeout_seconds: self.timeout,
            idempotency_key: self.idempotency_key.clone(),
            interactive: None,
            // Filled once the files are uploaded.
            uploads: Vec::new(),
            artifacts: self.artifacts.clone(),
            queue_timeout_seconds: self.queue_timeout,
            priority: self.priority,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::args::{Cli, Command};
    use clap::Parser;

    fn parse_run(args: &[&str]) -> Result<super::RunArgs, clap::Error> {
        let argv = ["jobs", "run"].into_iter().chain(args.iter().copied());
        match Cli::try_parse_from(argv)?.command {
            Command::Run(run) => Ok(run),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn options_before_the_command_and_everything_after_it() {
        let run = parse_run(&[
            "-e",
            "A=1",
            "-s",
            "xl",
            "--timeout",
            "30m",
            "ls",
            "-l",
            "-e",
        ])
        .unwrap();
        assert_eq!(run.command, ["ls", "-l", "-e"]);
        let create = run.job_create().unwrap();
        assert_eq!(create.command, ["ls", "-l", "-e"]);
        assert_eq!(create.env.get("A").map(String::as_str), Some("1"));
        assert_eq!(create.size, Some(jobs_core::Size::XL));
        assert_eq!(create.timeout_seconds, Some(1800));
    }

    #[test]
    fn on_interrupt_detaches_unless_told_to_cancel() {
        let run = parse_run(&["true"]).unwrap();
        assert_eq!(run.interrupt.on_interrupt, super::OnInterrupt::Detach);
        let run = parse_run(&["--on-interrupt", "cancel", "--", "rake", "db:migrate"]).unwrap();
        assert_eq!(run.interrupt.on_interrupt, super::OnInterrupt::Cancel);
        assert_eq!(run.command, ["rake", "db:migrate"]);
    }

    #[test]
    fn a_double_dash_separates_the_command() {
        let run = parse_run(&["-d", "--", "rake", "--trace"]).unwrap();
        assert!(run.detached);
        assert_eq!(run.command, ["rake", "--trace"]);
    }

    #[test]
    fn one_argument_runs_through_the_shell() {
        let run = parse_run(&["--", "ls -l | wc -l"]).unwrap();
        assert_eq!(
            run.job_create().unwrap().command,
            ["/bin/sh", "-c", "ls -l | wc -l"]
        );
    }

    #[test]
    fn bad_values_are_usage_errors_naming_the_option() {
        for (args, option) in [
            (&["-e", "NOVALUE", "true"][..], "--env"),
            (&["-e", "1A=x", "true"][..], "--env"),
            (&["--timeout", "soon", "true"][..], "--timeout"),
            (&["--timeout", "0s", "true"][..], "--timeout"),
            (&["-s", "XXL", "true"][..], "--size"),
            (&["--idempotency-key", "", "true"][..], "--idempotency-key"),
            (&["--on-interrupt", "stop", "true"][..], "--on-interrupt"),
        ] {
            let err = parse_run(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
            assert!(err.to_string().contains(option), "{args:?}: {err}");
        }
    }

    #[test]
    fn a_missing_command_is_a_usage_error() {
        assert_eq!(parse_run(&[]).unwrap_err().exit_code(), 2);
        assert_eq!(parse_run(&["-d"]).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn an_empty_command_is_a_usage_error() {
        let err = parse_run(&["", "x"]).unwrap().job_create().unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("command is empty"), "{err}");
    }

    #[test]
    fn paths_follow_the_terminal_and_the_options() {
        use super::RunPath::*;
        let path = |args: &[&str], terminal: bool| parse_run(args).unwrap().path(terminal);
        let cases: [(&[&str], bool, super::RunPath); 14] = [
            (&["true"], false, Queued),
            (&["true"], true, Interactive { tty: true }),
            (&["--batch", "true"], true, Queued),
            (&["-d", "true"], true, Detached),
            (&["-d", "true"], false, Detached),
            (&["-i", "cat"], false, Interactive { tty: false }),
            (&["-i", "cat"], true, Interactive { tty: true }),
            (&["-i", "--tty", "cat"], false, Interactive { tty: true }),
            (&["-i", "--no-tty", "cat"], true, Interactive { tty: false }),
            (&["--no-tty", "sh"], true, Interactive { tty: false }),
            // Without -i and without a terminal, TTY options do not make
            // a queued run interactive.
            (&["--tty", "true"], false, Queued),
            (&["--no-tty", "true"], false, Queued),
            (
                &["--tty", "--no-tty", "-i", "sh"],
                true,
                Interactive { tty: false },
            ),
            (
                &["--no-tty", "--tty", "-i", "sh"],
                false,
                Interactive { tty: true },
            ),
        ];
        for (args, terminal, expected) in cases {
            assert_eq!(
                path(args, terminal).unwrap(),
                expected,
                "{args:?} terminal={terminal}"
            );
        }
    }

    #[test]
    fn asking_for_the_queue_and_an_attach_is_a_usage_error_naming_both() {
        for (args, option) in [
            (&["-i", "-d", "cat"][..], "-d/--detached"),
            (&["-d", "--interactive", "cat"][..], "-d/--detached"),
            (&["-i", "--batch", "cat"][..], "--batch"),
        ] {
            for terminal in [false, true] {
                let err = parse_run(args).unwrap().path(terminal).unwrap_err();
                assert_eq!(err.exit_code(), 2, "{args:?}");
                let text = err.to_string();
                assert!(
                    text.contains("-i/--interactive") && text.contains(option),
                    "{text}"
                );
            }
        }
    }

    #[test]
    fn local_uploads_are_checked_before_anything_is_sent() {
        let dir = std::env::temp_dir().join(format!("jobs-cli-uploads-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("a/inner")).unwrap();
        std::fs::create_dir_all(dir.join("b")).unwrap();
        std::fs::write(dir.join("a/data.csv"), b"1,2\n").unwrap();
        std::fs::write(dir.join("b/data.csv"), b"3,4\n").unwrap();
        let path = |p: &str| dir.join(p).display().to_string();

        let run = parse_run(&["-f", &path("a/data.csv"), "-f", &path("a/inner"), "true"]).unwrap();
        let uploads = run.local_uploads().unwrap();
        assert_eq!(uploads[0].name, "data.csv");
        assert_eq!(uploads[0].kind, super::LocalKind::File { size: 4 });
        assert_eq!(uploads[1].name, "inner.tar.gz");
        assert_eq!(uploads[1].kind, super::LocalKind::Directory);

        let twice = parse_run(&["-f", &path("a/data.csv"), "-f", &path("b/data.csv"), "true"])
            .unwrap()
            .local_uploads()
            .unwrap_err();
        assert_eq!(twice.exit_code(), 2);
        assert!(
            twice.to_string().contains("/tmp/uploads/data.csv"),
            "{twice}"
        );
        let missing = parse_run(&["-f", &path("nope.csv"), "true"])
            .unwrap()
            .local_uploads()
            .unwrap_err();
        assert!(missing.to_string().contains("--file"), "{missing}");
        assert!(missing.to_string().contains("No such file"), "{missing}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn artifact_paths_must_be_absolute() {
        let err = parse_run(&["--artifact", "out.txt", "true"])
            .unwrap()
            .job_create()
            .unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("--artifact"), "{err}");
    }
}
