//! The soak: a few hundred jobs of mixed outcomes under repeated faults,
//! then a count of everything that went wrong. Every count must be 0.
//!
//! - Jobs: exit codes 0–6, outputs of 10 B to 256 KiB written in two
//!   parts around a pause, timeouts, cancels, and interactive runs
//!   (`jobs run -i`) whose piped stdin the command echoes back. The queued
//!   ones are spread over three apps ([`APPS`]: one capped at two running
//!   jobs, one of weight 2) and three priorities; some are groups of
//!   three tasks (`--tasks 3 --parallelism 2`), each task checked as a job.
//! - Faults, while jobs run: the worker killed with SIGKILL and restarted
//!   within its lease (interactive runs in flight included), RabbitMQ stopped and started, PostgreSQL restarted
//!   once. All on private instances (`jobs_e2e::services`).
//! - Counts: lost submissions, duplicate executions (container starts per
//!   job, from Docker's event log), jobs left non-terminal, lost and
//!   duplicated log bytes (against the exact bytes each job wrote), stdin
//!   bytes lost or repeated, exit codes other than the command's.
//!
//! `JOBS_SOAK_JOBS` sets the number of jobs (default 200, the CI size):
//! `JOBS_SOAK_JOBS=2000 cargo nextest run -p jobs-e2e --test soak` is the
//! long soak of docs/reliability.md.

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jobs_e2e::cli::run_bounded;
use jobs_e2e::env::job_id_from_detached_output;
use jobs_e2e::executions::starts_per_job;
use jobs_e2e::poll::poll_until;
use jobs_e2e::{TestEnv, TestEnvOptions};

/// The apps the queued jobs go to, round robin, with the `apps set` flags
/// of each: the scheduler's caps and shares under the same faults.
const APPS: [(&str, &[&str]); 3] = [
    ("demo", &[]),
    ("soak-capped", &["--max-running", "2"]),
    ("soak-heavy", &["--weight", "2"]),
];
const PRIORITIES: [&str; 3] = ["normal", "high", "low"];

/// Threads that submit jobs (and run the interactive ones) at once.
const SUBMITTERS: usize = 4;

/// Interactive runs whose CLI is running right now, and the sum of them
/// over the worker kills: how many runs had their worker killed under them.
static INTERACTIVE_IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
static INTERACTIVE_AT_KILLS: AtomicUsize = AtomicUsize::new(0);
/// How long every job may take to end once the faults are over.
const SETTLE_DEADLINE: Duration = Duration::from_secs(180);
/// A submission refused while a service is down is retried (with its
/// idempotency key) for this long.
const SUBMIT_PATIENCE: Duration = Duration::from_secs(120);
/// The jobs the deadlines above are sized for; a longer soak
/// (`JOBS_SOAK_JOBS`) scales every wait on the queue by its multiple of it:
/// 2,000 jobs on 4 slots wait ten times as long in line.
const JOBS_PER_SCALE: usize = 200;
static SCALE: std::sync::OnceLock<u32> = std::sync::OnceLock::new();

/// `wait`, for a soak of this size (see [`JOBS_PER_SCALE`]).
fn scaled(wait: Duration) -> Duration {
    wait * SCALE.get().copied().unwrap_or(1)
}

/// What one job is, and what it must end as.
#[derive(Debug, Clone)]
enum Kind {
    /// Exits with this code after a short output.
    Exit(i32),
    /// Writes `bytes` bytes of a known pattern, half before and half after
    /// a pause, then exits 0.
    Output(usize),
    /// Outlives its `--timeout`: ends `timed_out`.
    Timeout,
    /// Is canceled while it runs: ends `canceled`.
    Cancel,
    /// `jobs run -i` with this many stdin bytes piped in; echoes them and
    /// exits 2.
    Interactive(usize),
    /// A group of this many tasks, at most two at once; task I exits I.
    Group(u32),
}

struct Spec {
    index: usize,
    kind: Kind,
    /// What the job's stdout must be, byte for byte.
    expected_stdout: Vec<u8>,
}

fn pattern(index: usize, bytes: usize) -> Vec<u8> {
    let line = format!("soak {index:05} 0123456789abcdefghijklmnopqrstuvwxyz\n");
    line.bytes().cycle().take(bytes).collect()
}

fn kind_of(index: usize) -> Kind {
    match index % 20 {
        0 => Kind::Timeout,
        1 => Kind::Cancel,
        2 | 3 => Kind::Interactive([100, 5_000][index % 2]),
        10 => Kind::Group(3),
        4..=9 => Kind::Output([10, 1_000, 20_000, 64 * 1024, 150_000, 256 * 1024][index % 6]),
        _ => Kind::Exit((index % 7) as i32),
    }
}

fn spec(index: usize) -> Spec {
    let kind = kind_of(index);
    let expected_stdout = match &kind {
        Kind::Exit(_) | Kind::Group(_) => format!("job {index}\n").into_bytes(),
        Kind::Output(bytes) => pattern(index, *bytes),
        Kind::Timeout | Kind::Cancel => b"started\n".to_vec(),
        Kind::Interactive(bytes) => pattern(index, *bytes),
    };
    Spec {
        index,
        kind,
        expected_stdout,
    }
}

/// The command line of a queued job.
fn run_args(spec: &Spec) -> Vec<String> {
    let key = format!("soak-{}", spec.index);
    let app = APPS[spec.index % APPS.len()].0;
    let priority = PRIORITIES[(spec.index / APPS.len()) % PRIORITIES.len()];
    let mut args: Vec<String> = vec![
        "run".into(),
        "-d".into(),
        "-a".into(),
        app.into(),
        "--priority".into(),
        priority.into(),
        "--idempotency-key".into(),
        key,
    ];
    let script = match &spec.kind {
        Kind::Exit(code) => format!("echo job {}; sleep 0.5; exit {code}", spec.index),
        Kind::Output(bytes) => {
            // The pattern, cut in two around a pause, so that faults land
            // in the middle of a job's output.
            let line = format!(
                "soak {:05} 0123456789abcdefghijklmnopqrstuvwxyz",
                spec.index
            );
            let first = bytes / 2;
            let rest = bytes - first;
            format!(
                "yes '{line}' | head -c {bytes} > /tmp/out; head -c {first} /tmp/out; \
                 sleep 1; tail -c {rest} /tmp/out"
            )
        }
        Kind::Timeout => {
            args.extend(["--timeout".into(), "2s".into()]);
            "echo started; sleep 60".to_owned()
        }
        Kind::Cancel => "echo started; sleep 60".to_owned(),
        Kind::Group(tasks) => {
            args.extend([
                "--tasks".into(),
                tasks.to_string(),
                "--parallelism".into(),
                "2".into(),
            ]);
            format!("echo job {}; sleep 0.5; exit $JOBS_TASK_INDEX", spec.index)
        }
        Kind::Interactive(_) => unreachable!("interactive runs are not queued"),
    };
    args.extend(["--".into(), "sh".into(), "-c".into(), script]);
    args
}

/// What became of one job on the client's side.
#[derive(Debug, Default, Clone)]
struct Submitted {
    job_id: Option<String>,
    /// For a group: its tasks' job ids, by index.
    tasks: Vec<String>,
    /// For an interactive run: what `jobs run -i` printed and its exit code.
    interactive: Option<(Vec<u8>, i32)>,
}

fn submit(spec: &Spec, command: impl Fn(&[&str]) -> Command) -> Submitted {
    if let Kind::Interactive(bytes) = spec.kind {
        let stdin = pattern(spec.index, bytes);
        let args = [
            "run",
            "-i",
            "--no-tty",
            "--",
            "sh",
            "-c",
            "timeout 30 cat; exit 2",
        ];
        // It waits in line for a slot like any job, behind the queue.
        INTERACTIVE_IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
        let output = run_bounded(
            command(&args),
            Some(&stdin),
            scaled(Duration::from_secs(120)),
        );
        INTERACTIVE_IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
        return Submitted {
            interactive: Some((output.stdout.clone(), output.code())),
            ..Submitted::default()
        };
    }
    let args = run_args(spec);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let deadline = Instant::now() + SUBMIT_PATIENCE;
    loop {
        let output = run_bounded(command(&args), None, Duration::from_secs(90));
        if output.code() == 0 {
            let id = job_id_from_detached_output(&output);
            if let Kind::Group(_) = spec.kind {
                return Submitted {
                    tasks: group_tasks(&id, &command, deadline),
                    ..Submitted::default()
                };
            }
            return Submitted {
                job_id: Some(id),
                ..Submitted::default()
            };
        }
        if Instant::now() >= deadline {
            eprintln!("soak: job {} never accepted: {output:?}", spec.index);
            return Submitted::default();
        }
        // A database or broker outage: ask again with the same key, which
        // returns the job if the refused request did create it.
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The job ids of a group's tasks, by index, asked for until a fault lets
/// the answer through; none if it never does.
fn group_tasks(group: &str, command: &impl Fn(&[&str]) -> Command, until: Instant) -> Vec<String> {
    loop {
        let status = run_bounded(
            command(&["status", group, "--json"]),
            None,
            Duration::from_secs(60),
        );
        let tasks: Option<Vec<String>> =
            serde_json::from_slice::<serde_json::Value>(&status.stdout)
                .ok()
                .and_then(|value| {
                    value["tasks"].as_array().map(|tasks| {
                        tasks
                            .iter()
                            .filter_map(|task| task["job_id"].as_str().map(str::to_owned))
                            .collect()
                    })
                });
        match tasks {
            Some(tasks) => return tasks,
            None if Instant::now() < until => std::thread::sleep(Duration::from_millis(500)),
            None => {
                eprintln!("soak: group {group} never answered: {status:?}");
                return Vec::new();
            }
        }
    }
}

/// The counts the soak reports; each must be 0.
#[derive(Debug, Default)]
struct Counts {
    lost_submissions: usize,
    duplicate_executions: usize,
    non_terminal: usize,
    lost_log_bytes: usize,
    duplicated_log_bytes: usize,
    lost_stdin_bytes: usize,
    repeated_stdin_bytes: usize,
    wrong_exit_codes: usize,
}

impl Counts {
    fn rows(&self) -> [(&'static str, usize); 8] {
        [
            ("lost submissions", self.lost_submissions),
            (
                "duplicate executions of a started job",
                self.duplicate_executions,
            ),
            ("jobs left non-terminal", self.non_terminal),
            ("lost log bytes", self.lost_log_bytes),
            ("duplicated log bytes", self.duplicated_log_bytes),
            ("stdin bytes lost", self.lost_stdin_bytes),
            ("stdin bytes repeated", self.repeated_stdin_bytes),
            ("exit codes other than the command's", self.wrong_exit_codes),
        ]
    }
}

/// Bytes missing from and bytes beyond `expected` in `actual`; when the
/// lengths agree but the bytes do not, the differing bytes count as lost.
fn byte_difference(expected: &[u8], actual: &[u8]) -> (usize, usize) {
    if expected.len() > actual.len() {
        (expected.len() - actual.len(), 0)
    } else if actual.len() > expected.len() {
        (0, actual.len() - expected.len())
    } else {
        let differing = expected.iter().zip(actual).filter(|(a, b)| a != b).count();
        (differing, 0)
    }
}

#[test]
fn soak_mixed_jobs_under_worker_kills_broker_restarts_and_a_database_restart() {
    let jobs: usize = std::env::var("JOBS_SOAK_JOBS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(JOBS_PER_SCALE);
    let _ = SCALE.set(u32::try_from(jobs.div_ceil(JOBS_PER_SCALE).max(1)).unwrap_or(1));
    let started = Instant::now();
    let mut env = TestEnv::start_with(
        TestEnvOptions::new(4)
            .private_postgres()
            .private_rabbit(&[])
            // Long enough for a killed worker to be back within it.
            .worker_env("JOBS_LEASE", "15s")
            .api_env("JOBS_REAPER_INTERVAL", "1s")
            .api_env("JOBS_MAX_QUEUED_JOBS_PER_APP", "100000")
            .api_env("JOBS_RATE_LIMIT_PER_SECOND", "10000")
            .api_env("JOBS_RATE_LIMIT_BURST", "10000"),
    );
    let starts = env.watch_container_starts_and_dies();
    for (app, flags) in APPS.iter().skip(1) {
        env.jobs(&["apps", "create", app, "--image", jobs_e2e::TEST_IMAGE])
            .assert_success();
        let mut set = vec!["apps", "set", app];
        set.extend_from_slice(flags);
        env.jobs(&set).assert_success();
    }
    let specs: Vec<Arc<Spec>> = (0..jobs).map(|index| Arc::new(spec(index))).collect();

    // The submitters build each command from what the env hands them, so
    // that they do not hold the env (which the fault loop below uses).
    let cli = Arc::new(env.jobs_command(&[]));
    let command_for = {
        let program = cli.get_program().to_owned();
        let envs: Vec<(std::ffi::OsString, Option<std::ffi::OsString>)> = cli
            .get_envs()
            .map(|(name, value)| (name.to_owned(), value.map(ToOwned::to_owned)))
            .collect();
        Arc::new(move |args: &[&str]| {
            let mut command = Command::new(&program);
            for (name, value) in &envs {
                match value {
                    Some(value) => command.env(name, value),
                    None => command.env_remove(name),
                };
            }
            command.args(args);
            command
        })
    };
    let pending = Arc::new(Mutex::new(specs.clone()));
    let results: Arc<Mutex<HashMap<usize, Submitted>>> = Arc::default();
    let submitters: Vec<_> = (0..SUBMITTERS)
        .map(|_| {
            let pending = pending.clone();
            let results = results.clone();
            let command_for = command_for.clone();
            std::thread::spawn(move || {
                loop {
                    let Some(spec) = pending.lock().unwrap().pop() else {
                        return;
                    };
                    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        submit(&spec, |args| command_for(args))
                    }))
                    .unwrap_or_default();
                    results.lock().unwrap().insert(spec.index, outcome);
                }
            })
        })
        .collect();

    // Cancels: each cancel job is canceled once it runs.
    let cancels = {
        let results = results.clone();
        let command_for = command_for.clone();
        let cancel_indexes: Vec<usize> = specs
            .iter()
            .filter(|spec| matches!(spec.kind, Kind::Cancel))
            .map(|spec| spec.index)
            .collect();
        std::thread::spawn(move || {
            let deadline = Instant::now() + scaled(SUBMIT_PATIENCE + SETTLE_DEADLINE);
            let mut left = cancel_indexes;
            while !left.is_empty() && Instant::now() < deadline {
                left.retain(|index| {
                    let id = results
                        .lock()
                        .unwrap()
                        .get(index)
                        .and_then(|s| s.job_id.clone());
                    let Some(id) = id else { return true };
                    let status = run_bounded(
                        command_for(&["status", &id, "--json"]),
                        None,
                        Duration::from_secs(60),
                    );
                    let state: Option<String> =
                        serde_json::from_slice::<serde_json::Value>(&status.stdout)
                            .ok()
                            .and_then(|value| value["state"].as_str().map(str::to_owned));
                    match state.as_deref() {
                        Some("running") => {
                            // Retried on the next pass if a fault refused it.
                            run_bounded(
                                command_for(&["cancel", &id]),
                                None,
                                Duration::from_secs(60),
                            )
                            .code()
                                != 0
                        }
                        Some("queued" | "starting") | None => true,
                        Some(_) => false,
                    }
                });
                std::thread::sleep(Duration::from_millis(300));
            }
        })
    };

    // The faults, spread over the submissions: each waits until more jobs
    // have ended since the last one, so that every fault meets running jobs.
    let faults = [
        "worker", "broker", "worker", "database", "worker", "broker", "worker", "worker",
    ];
    let step = (jobs / (faults.len() + 2)).max(1);
    let mut done_faults: HashMap<&str, usize> = HashMap::new();
    for (round, fault) in faults.iter().enumerate() {
        let target = step * (round + 1);
        let reached = poll_until(scaled(SUBMIT_PATIENCE), || {
            (env.db_count_terminal_jobs() >= target as i64).then_some(())
        });
        if reached.is_none() {
            eprintln!("soak: {target} jobs had not ended before fault {round} ({fault})");
        }
        match *fault {
            "worker" => {
                // Interactive runs included: their stdin goes on through
                // the shim, where the restarted worker finds it.
                INTERACTIVE_AT_KILLS.fetch_add(
                    INTERACTIVE_IN_FLIGHT.load(Ordering::SeqCst),
                    Ordering::SeqCst,
                );
                env.kill_worker();
                env.restart_worker();
            }
            "broker" => {
                env.rabbit().stop();
                env.rabbit().start_again();
            }
            "database" => env.postgres().restart(),
            other => unreachable!("{other}"),
        }
        *done_faults.entry(fault).or_default() += 1;
    }
    let faults_over = started.elapsed();

    for submitter in submitters {
        submitter.join().expect("a submitter thread");
    }
    cancels.join().expect("the cancel thread");
    let results = results.lock().unwrap().clone();
    let ids: Vec<String> = results
        .values()
        .flat_map(|s| s.job_id.iter().chain(&s.tasks).cloned())
        .collect();
    poll_until(scaled(SETTLE_DEADLINE), || {
        ids.iter()
            .all(|id| env.db_job(id).is_some_and(|job| job.is_terminal()))
            .then_some(())
    });

    let mut counts = Counts::default();
    let mut problems: Vec<String> = Vec::new();
    let executions = starts_per_job(&starts);
    for spec in &specs {
        let Some(submitted) = results.get(&spec.index) else {
            counts.lost_submissions += 1;
            problems.push(format!("job {}: never submitted", spec.index));
            continue;
        };
        if let Some((stdout, code)) = &submitted.interactive {
            let (lost, repeated) = byte_difference(&spec.expected_stdout, stdout);
            counts.lost_stdin_bytes += lost;
            counts.repeated_stdin_bytes += repeated;
            if *code != 2 {
                counts.wrong_exit_codes += 1;
                problems.push(format!("interactive job {}: exit {code}", spec.index));
            }
            if lost + repeated > 0 {
                problems.push(format!(
                    "interactive job {}: {lost} stdin bytes lost, {repeated} repeated",
                    spec.index
                ));
            }
            continue;
        }
        // A job, or each task of a group as a job whose code is its index.
        let checked: Vec<(String, Kind)> = match (&submitted.job_id, &spec.kind) {
            (Some(id), kind) => vec![(id.clone(), kind.clone())],
            (None, Kind::Group(tasks)) if submitted.tasks.len() == *tasks as usize => submitted
                .tasks
                .iter()
                .zip(0..)
                .map(|(id, code)| (id.clone(), Kind::Exit(code)))
                .collect(),
            (None, _) => {
                counts.lost_submissions += 1;
                problems.push(format!("job {}: never accepted", spec.index));
                continue;
            }
        };
        for (id, kind) in &checked {
            let Some(stored) = env.db_job(id) else {
                counts.lost_submissions += 1;
                problems.push(format!(
                    "job {} ({id}): accepted, then not stored",
                    spec.index
                ));
                continue;
            };
            let runs = executions.get(id).copied().unwrap_or(0);
            if runs > 1 {
                counts.duplicate_executions += runs - 1;
                problems.push(format!("job {} ({id}): ran {runs} times", spec.index));
            }
            if !stored.is_terminal() {
                counts.non_terminal += 1;
                problems.push(format!("job {} ({id}): left {}", spec.index, stored.state));
                continue;
            }
            let logs = env.jobs(&["logs", id]);
            let (lost, duplicated) = byte_difference(&spec.expected_stdout, &logs.stdout);
            counts.lost_log_bytes += lost;
            counts.duplicated_log_bytes += duplicated;
            if lost + duplicated > 0 {
                problems.push(format!(
                    "job {} ({id}, {:?}): {lost} log bytes lost, {duplicated} duplicated",
                    spec.index, kind
                ));
            }
            let right_end = match kind {
                Kind::Exit(0) | Kind::Output(_) => {
                    stored.state == "succeeded" && stored.exit_code == Some(0)
                }
                Kind::Exit(code) => stored.state == "failed" && stored.exit_code == Some(*code),
                Kind::Timeout => stored.state == "timed_out",
                Kind::Cancel => stored.state == "canceled",
                Kind::Interactive(_) | Kind::Group(_) => unreachable!(),
            };
            if !right_end {
                counts.wrong_exit_codes += 1;
                problems.push(format!(
                    "job {} ({id}, {:?}): ended {} exit {:?} ({:?})",
                    spec.index, kind, stored.state, stored.exit_code, stored.reason
                ));
            }
        }
    }

    println!(
        "\nsoak: {jobs} jobs, faults: {} worker kills (SIGKILL, restarted within the lease), \
         {} broker restarts, {} database restart; faults over after {:.0?}, total {:.0?}; \
         interactive runs in flight at the worker kills: {}",
        done_faults.get("worker").copied().unwrap_or(0),
        done_faults.get("broker").copied().unwrap_or(0),
        done_faults.get("database").copied().unwrap_or(0),
        faults_over,
        started.elapsed(),
        INTERACTIVE_AT_KILLS.load(Ordering::SeqCst),
    );
    println!("| count | value |\n|---|---|");
    for (name, value) in counts.rows() {
        println!("| {name} | {value} |");
    }
    for problem in &problems {
        println!("  {problem}");
    }
    let failing: Vec<_> = counts.rows().into_iter().filter(|(_, v)| *v > 0).collect();
    assert!(
        failing.is_empty(),
        "soak counts that are not 0: {failing:?}"
    );
    env.finish();
}
