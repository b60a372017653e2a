//! Everything the CLI prints: human views, `--json` views, and the job's own
//! output.
//!
//! Human views go to stdout and messages go to stderr with a `jobs:` prefix.
//! With `--json`, stdout holds exactly one JSON document. A job's output is
//! written byte for byte through [`LogSink`], never mixed with anything else
//! on stdout.

use std::io::{self, Write};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use jobs_core::hardening::Hardening;
use jobs_core::spec::describe_bytes;
use jobs_core::wire::{App, Job, LogStream, TokenCreated, TokenInfo};
use serde::Serialize;

use crate::error::CliError;
use crate::job_end;
use crate::shell;

mod groups;
mod workers;
pub use groups::{print_canceled_group, print_group, print_group_end, print_queued_group};
pub use workers::{print_worker_drain, print_worker_list};

/// Whether a command prints for people or for programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Human,
    Json,
}

impl OutputFormat {
    pub fn from_json_flag(json: bool) -> Self {
        if json {
            OutputFormat::Json
        } else {
            OutputFormat::Human
        }
    }
}

/// Writes a job's stdout and stderr chunks to the CLI's own stdout and
/// stderr, raw and flushed per chunk, so that the output appears as the job
/// writes it and a pipe receives exactly the job's bytes.
///
/// When the reader of one of the streams goes away (`jobs run ... | head`),
/// that stream's further output is dropped quietly, so that the CLI can still
/// see the job end and exit with its code.
#[derive(Debug, Default)]
pub struct LogSink {
    stdout_closed: bool,
    stderr_closed: bool,
    /// Set for one task of a group: each line goes out whole, after it.
    lines: Option<PrefixedLines>,
}

/// A task's output, line by line behind its `[i] ` prefix, so that the
/// lines of tasks followed at once never mix. A line longer than
/// [`MAX_PENDING_LINE`] is broken there.
#[derive(Debug, Default)]
struct PrefixedLines {
    prefix: Vec<u8>,
    /// The unfinished last line of stdout and of stderr.
    pending: [Vec<u8>; 2],
}

/// How much of an unfinished line a prefixed sink holds back.
const MAX_PENDING_LINE: usize = 64 * 1024;

impl PrefixedLines {
    /// The whole lines `bytes` completes, each behind the prefix.
    fn complete(&mut self, stream: LogStream, bytes: &[u8]) -> Vec<u8> {
        let pending = &mut self.pending[stream_slot(stream)];
        pending.extend_from_slice(bytes);
        let cut = match pending.iter().rposition(|byte| *byte == b'\n') {
            Some(last_newline) => last_newline + 1,
            None if pending.len() >= MAX_PENDING_LINE => pending.len(),
            None => return Vec::new(),
        };
        let whole: Vec<u8> = pending.drain(..cut).collect();
        let mut out = Vec::with_capacity(whole.len() + self.prefix.len() * 4);
        for line in whole.split_inclusive(|byte| *byte == b'\n') {
            out.extend_from_slice(&self.prefix);
            out.extend_from_slice(line);
            if !line.ends_with(b"\n") {
                out.push(b'\n');
            }
        }
        out
    }

    /// The unfinished last line of `stream`, ended.
    fn rest(&mut self, stream: LogStream) -> Vec<u8> {
        let pending = std::mem::take(&mut self.pending[stream_slot(stream)]);
        if pending.is_empty() {
            return pending;
        }
        let mut out = self.prefix.clone();
        out.extend_from_slice(&pending);
        out.push(b'\n');
        out
    }
}

fn stream_slot(stream: LogStream) -> usize {
    match stream {
        LogStream::Stdout => 0,
        LogStream::Stderr => 1,
    }
}

impl LogSink {
    pub fn new() -> Self {
        Self::default()
    }

    /// A sink for task `index` of a group: every line goes out whole,
    /// behind `[index] `.
    pub fn for_task(index: u32) -> Self {
        Self {
            lines: Some(PrefixedLines {
                prefix: format!("[{index}] ").into_bytes(),
                pending: Default::default(),
            }),
            ..Self::default()
        }
    }

    pub fn write(&mut self, stream: LogStream, bytes: &[u8]) -> Result<(), CliError> {
        match self.lines.as_mut() {
            Some(lines) => {
                let whole = lines.complete(stream, bytes);
                self.write_raw(stream, &whole)
            }
            None => self.write_raw(stream, bytes),
        }
    }

    /// Writes out what a prefixed sink still holds, as ended lines.
    pub fn finish(&mut self) -> Result<(), CliError> {
        for stream in [LogStream::Stdout, LogStream::Stderr] {
            if let Some(rest) = self.lines.as_mut().map(|lines| lines.rest(stream)) {
                self.write_raw(stream, &rest)?;
            }
        }
        Ok(())
    }

    fn write_raw(&mut self, stream: LogStream, bytes: &[u8]) -> Result<(), CliError> {
        if bytes.is_empty() {
            return Ok(());
        }
        let closed = match stream {
            LogStream::Stdout => &mut self.stdout_closed,
            LogStream::Stderr => &mut self.stderr_closed,
        };
        if *closed {
            return Ok(());
        }
        let result = match stream {
            LogStream::Stdout => write_and_flush(&mut io::stdout().lock(), bytes),
            LogStream::Stderr => write_and_flush(&mut io::stderr().lock(), bytes),
        };
        match result {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == io::ErrorKind::BrokenPipe => {
                *closed = true;
                Ok(())
            }
            Err(err) => Err(CliError::LocalOutput(format!(
                "cannot write the job's {}: {err}",
                stream.as_str()
            ))),
        }
    }

    /// Whether the reader of our stdout has gone away.
    pub fn stdout_closed(&self) -> bool {
        self.stdout_closed
    }
}

fn write_and_flush(out: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    out.write_all(bytes)?;
    out.flush()
}

/// Prints one JSON document on stdout.
pub fn print_json(value: &impl Serialize) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|err| CliError::LocalOutput(format!("cannot encode JSON: {err}")))?;
    print_stdout(&format!("{text}\n"))
}

/// Prints text on stdout, treating a closed pipe as the reader having seen
/// enough rather than as a failure.
pub fn print_stdout(text: &str) -> Result<(), CliError> {
    match write_and_flush(&mut io::stdout().lock(), text.as_bytes()) {
        Err(err) if err.kind() != io::ErrorKind::BrokenPipe => Err(CliError::LocalOutput(format!(
            "cannot write to stdout: {err}"
        ))),
        _ => Ok(()),
    }
}

/// `jobs run -d`: the id alone, so that `id=$(jobs run -d ...)` works.
pub fn print_queued_job(format: OutputFormat, job: &Job) -> Result<(), CliError> {
    match format {
        OutputFormat::Json => print_json(job),
        OutputFormat::Human => print_stdout(&format!("{}\n", job.id)),
    }
}

pub fn print_job(format: OutputFormat, job: &Job) -> Result<(), CliError> {
    if format == OutputFormat::Json {
        return print_json(job);
    }
    let mut rows: Vec<(&str, String)> = vec![
        ("id", job.id.clone()),
        ("app", job.app.clone()),
        ("state", job.state.to_string()),
        ("exit code", optional(job.exit_code)),
        ("reason", job.reason.clone().unwrap_or_else(|| "-".into())),
        ("attempt", job.attempt.to_string()),
        ("priority", job.priority.to_string()),
        ("size", job.size.to_string()),
        ("timeout", seconds(job.timeout_seconds)),
        ("command", display_command(&job.command)),
        ("created", timestamp(&job.created_at)),
        (
            "created by",
            job.created_by.clone().unwrap_or_else(|| "-".into()),
        ),
        (
            "started",
            job.started_at.as_ref().map_or("-".into(), timestamp),
        ),
        (
            "finished",
            job.finished_at.as_ref().map_or("-".into(), timestamp),
        ),
    ];
    if let (Some(started), Some(finished)) = (job.started_at, job.finished_at) {
        let ran_for = (finished - started).to_std().unwrap_or_default();
        rows.push(("ran for", whole_seconds(ran_for)));
    }
    if let Some(place) = &job.queue {
        rows.push((
            "queue",
            format!("position {}: {}", place.position, place.waiting_for),
        ));
    }
    if job.cancel_requested && !job.state.is_terminal() {
        rows.push(("cancel", "requested".into()));
    }
    if !job.env.is_empty() {
        let names: Vec<&str> = job.env.keys().map(String::as_str).collect();
        rows.push(("env", names.join(", ")));
    }
    for upload in &job.uploads {
        rows.push((
            "upload",
            format!("/tmp/uploads/{} ({} bytes)", upload.name, upload.size),
        ));
    }
    for (index, path) in job.artifact_paths.iter().enumerate() {
        let line = match job.artifacts.get(index) {
            Some(artifact) => match (&artifact.error, artifact.size) {
                (Some(error), _) => format!("{path}: not collected: {error}"),
                (None, Some(size)) => format!("{path} ({size} bytes)"),
                (None, None) => format!("{path}: not collected"),
            },
            None if job.state.is_terminal() => format!("{path}: not collected"),
            None => format!("{path}: collected when the job ends"),
        };
        rows.push(("artifact", line));
    }
    print_stdout(&key_value_block(&rows))
}

/// An artifact that `jobs artifacts` cannot download: it was not collected.
pub fn warn_artifact_not_collected(path: &str, error: &str) {
    eprintln!("jobs: artifact {path} was not collected: {error}");
}

/// `jobs artifacts`: what landed where.
pub fn print_artifacts_downloaded(
    format: OutputFormat,
    dir: &std::path::Path,
    downloaded: &[(&jobs_core::wire::Artifact, crate::archive::Extracted)],
) -> Result<(), CliError> {
    if format == OutputFormat::Json {
        let list: Vec<_> = downloaded
            .iter()
            .map(|(artifact, extracted)| {
                serde_json::json!({
                    "path": artifact.path,
                    "size": artifact.size,
                    "files": extracted.names.iter().map(|name| dir.join(name)).collect::<Vec<_>>(),
                })
            })
            .collect();
        return print_json(&serde_json::json!({ "artifacts": list }));
    }
    let mut text = String::new();
    for (artifact, extracted) in downloaded {
        for name in &extracted.names {
            text.push_str(&format!(
                "{} -> {}\n",
                artifact.path,
                dir.join(name).display()
            ));
        }
    }
    print_stdout(&text)
}

pub fn print_job_list(format: OutputFormat, jobs: &[Job]) -> Result<(), CliError> {
    if format == OutputFormat::Json {
        return print_json(&serde_json::json!({ "jobs": jobs }));
    }
    if jobs.is_empty() {
        return print_stdout("no jobs\n");
    }
    let header = ["ID", "STATE", "EXIT", "CREATED", "COMMAND"].map(String::from);
    let rows = jobs.iter().map(|job| {
        [
            job.id.clone(),
            job.state.to_string(),
            optional(job.exit_code),
            timestamp(&job.created_at),
            display_command(&job.command),
        ]
    });
    print_stdout(&table(std::iter::once(header).chain(rows)))
}

/// `jobs cancel`: the state the cancel left the job in.
pub fn print_canceled_job(format: OutputFormat, job: &Job) -> Result<(), CliError> {
    if format == OutputFormat::Json {
        return print_json(job);
    }
    let line = if job.state.is_terminal() {
        format!("job {} is {}\n", job.id, job.state)
    } else {
        format!(
            "job {} is {}; cancel requested, it stops after a grace period\n",
            job.id, job.state
        )
    };
    print_stdout(&line)
}

pub fn print_app(format: OutputFormat, app: &App) -> Result<(), CliError> {
    if format == OutputFormat::Json {
        return print_json(app);
    }
    print_stdout(&app_text(app))
}

/// An app as `apps show` prints it.
fn app_text(app: &App) -> String {
    let mut rows: Vec<(&str, String)> = vec![
        ("name", app.name.clone()),
        ("image", app.image.clone()),
        ("size", app.size.to_string()),
        ("timeout", seconds(app.timeout_seconds)),
        ("warm", app.warm.to_string()),
        (
            "max running",
            app.max_running
                .map_or_else(|| "- (no cap)".to_owned(), |cap| cap.to_string()),
        ),
        ("weight", app.weight.to_string()),
        ("max output", describe_bytes(app.max_output_bytes)),
        ("storage", storage_text(app)),
    ];
    rows.extend(hardening_rows(&app.hardening));
    rows.extend([
        ("created", timestamp(&app.created_at)),
        ("updated", timestamp(&app.updated_at)),
    ]);
    if app.env.is_empty() {
        rows.push(("env", "-".into()));
    }
    let mut text = key_value_block(&rows);
    if !app.env.is_empty() {
        text.push_str("env:\n");
        for (name, value) in &app.env {
            // The API already masks secret values; the mark says why.
            let secret = if app.secret_env.contains(name) {
                "  (secret)"
            } else {
                ""
            };
            text.push_str(&format!("  {name}={value}{secret}\n"));
        }
    }
    text
}

/// `3221225472 bytes (3 GiB) of 10737418240 bytes (10 GiB)`: the app's
/// use, when measured, and its quota.
fn storage_text(app: &App) -> String {
    let quota = app
        .storage_quota_bytes
        .map_or_else(|| "no quota".to_owned(), describe_bytes);
    match app.storage_used_bytes {
        Some(used) => format!("{} used of {quota}", describe_bytes(used)),
        None => quota,
    }
}

/// An app's container hardening, as `apps show` prints it.
fn hardening_rows(hardening: &Hardening) -> [(&'static str, String); 4] {
    let cap_add = if hardening.cap_add.is_empty() {
        "- (all capabilities dropped)".to_owned()
    } else {
        hardening.cap_add.join(",")
    };
    let user = hardening
        .user
        .clone()
        .unwrap_or_else(|| "- (the image's)".to_owned());
    let read_only_root = if hardening.read_only_root {
        "yes"
    } else {
        "no"
    };
    let network = match (&hardening.network, hardening.network_none) {
        (_, true) => "none".to_owned(),
        (Some(name), false) => name.clone(),
        (None, false) => "default (the app's own)".to_owned(),
    };
    [
        ("cap-add", cap_add),
        ("user", user),
        ("read-only root", read_only_root.to_owned()),
        ("network", network),
    ]
}

pub fn print_app_list(format: OutputFormat, apps: &[App]) -> Result<(), CliError> {
    if format == OutputFormat::Json {
        return print_json(&serde_json::json!({ "apps": apps }));
    }
    if apps.is_empty() {
        return print_stdout("no apps\n");
    }
    let header = ["NAME", "IMAGE", "SIZE", "TIMEOUT", "UPDATED"].map(String::from);
    let rows = apps.iter().map(|app| {
        [
            app.name.clone(),
            app.image.clone(),
            app.size.to_string(),
            seconds(app.timeout_seconds),
            timestamp(&app.updated_at),
        ]
    });
    print_stdout(&table(std::iter::once(header).chain(rows)))
}

pub fn print_app_deleted(format: OutputFormat, name: &str) -> Result<(), CliError> {
    match format {
        OutputFormat::Json => print_json(&serde_json::json!({ "deleted": name })),
        OutputFormat::Human => print_stdout(&format!("deleted app {name}\n")),
    }
}

/// A new token: its secret alone on stdout, so that `$(jobs tokens create
/// ...)` captures exactly the token, and a note on stderr that it is shown
/// once. `--json` prints the whole answer instead.
pub fn print_token_created(format: OutputFormat, created: &TokenCreated) -> Result<(), CliError> {
    if format == OutputFormat::Json {
        return print_json(created);
    }
    let token = &created.token;
    let scope = match &token.app {
        Some(app) => format!("app {app}"),
        None => "every app".to_owned(),
    };
    eprintln!(
        "jobs: created token {} ({} role, {scope}); its secret is shown only this once",
        token.id, token.role
    );
    print_stdout(&format!("{}\n", created.secret))
}

pub fn print_token_list(format: OutputFormat, tokens: &[TokenInfo]) -> Result<(), CliError> {
    if format == OutputFormat::Json {
        return print_json(&serde_json::json!({ "tokens": tokens }));
    }
    if tokens.is_empty() {
        return print_stdout("no tokens\n");
    }
    let header = [
        "ID",
        "APP",
        "ROLE",
        "CREATED",
        "EXPIRES",
        "REVOKED",
        "DESCRIPTION",
    ]
    .map(String::from);
    let optional_time = |time: &Option<DateTime<Utc>>| time.as_ref().map_or("-".into(), timestamp);
    let rows = tokens.iter().map(|token| {
        [
            token.id.clone(),
            token.app.clone().unwrap_or_else(|| "*".into()),
            token.role.to_string(),
            timestamp(&token.created_at),
            optional_time(&token.expires_at),
            optional_time(&token.revoked_at),
            token.description.clone().unwrap_or_default(),
        ]
    });
    print_stdout(&table(std::iter::once(header).chain(rows)))
}

pub fn print_token_revoked(format: OutputFormat, id: &str) -> Result<(), CliError> {
    match format {
        OutputFormat::Json => print_json(&serde_json::json!({ "revoked": id })),
        OutputFormat::Human => print_stdout(&format!("revoked token {id}\n")),
    }
}

/// Ctrl-C or SIGTERM while following: the job goes on, so say how to get
/// back to it, by a name that works where the user is.
pub fn print_detached(job_id: &str) {
    let cli = shell::command_name();
    eprintln!(
        "jobs: detached from {} {job_id}; it is still running.\n  \
         follow it: {cli} follow {job_id}\n  \
         cancel it: {cli} cancel {job_id}",
        job_or_group(job_id)
    );
}

/// "group" for a group id, else "job", for the sentences both share.
fn job_or_group(id: &str) -> &'static str {
    if jobs_core::groups::is_group_id(id) {
        "group"
    } else {
        "job"
    }
}

/// `--on-interrupt cancel` got a signal: the job is being canceled.
pub fn print_canceling(job_id: &str, signal: &str, wait: Duration) {
    eprintln!(
        "jobs: {signal}: canceling {} {job_id}; waiting up to {} s for its end \
         (a second signal stops waiting)",
        job_or_group(job_id),
        wait.as_secs()
    );
}

pub fn print_cancel_failed(job_id: &str, err: &CliError) {
    eprintln!(
        "jobs: could not cancel {} {job_id}: {err}",
        job_or_group(job_id)
    );
}

/// A second signal while a canceled job stops: the CLI leaves, the cancel
/// goes on.
pub fn print_stopped_waiting(job_id: &str) {
    eprintln!(
        "jobs: stopped waiting for {} {job_id}, which is being canceled; see: {} status {job_id}",
        job_or_group(job_id),
        shell::command_name()
    );
}

/// The canceled job did not end in time: it may still be stopping.
pub fn print_cancel_unanswered(job_id: &str, waited: Duration) {
    eprintln!(
        "jobs: {} {job_id} did not end within {} s of its cancel; see: {} status {job_id}",
        job_or_group(job_id),
        waited.as_secs(),
        shell::command_name()
    );
}

/// Ctrl-P Ctrl-Q (or Ctrl-C without a TTY) in an attached session: the job
/// goes on, so say how to get back to it. After a TTY session the cursor
/// may sit after a prompt: start on a fresh line.
pub fn print_attach_detached(job_id: &str, tty: bool) {
    let fresh_line = if tty { "\n" } else { "" };
    let cli = shell::command_name();
    eprintln!(
        "{fresh_line}jobs: detached from job {job_id}; it is still running.\n  \
         attach again: {cli} attach {job_id}\n  \
         cancel it: {cli} cancel {job_id}"
    );
}

/// Another client attached to the job, which only serves the newest one.
pub fn print_attach_replaced(job_id: &str, tty: bool) {
    let fresh_line = if tty { "\n" } else { "" };
    eprintln!(
        "{fresh_line}jobs: another client attached to job {job_id}; this one let go. \
         The job is still running there."
    );
}

/// SIGTERM or SIGHUP ended an attached session without a detach.
pub fn print_attach_signaled(job_id: &str, signal: i32) {
    eprintln!(
        "jobs: left job {job_id} on signal {signal}; it is stopped unless a client \
         attaches again within its grace period: {} attach {job_id}",
        shell::command_name()
    );
}

/// Why a job ended the way it did, when its exit code alone does not say.
pub fn print_job_end(job: &Job) {
    if let Some(line) = job_end::reason_line(job) {
        eprintln!("{line}");
    }
}

/// `jobs wait --timeout` ran out before the job ended.
pub fn print_wait_gave_up(job: &Job, waited: Duration) {
    eprintln!(
        "jobs: job {} is still {} after {}",
        job.id,
        job.state,
        humantime::format_duration(waited)
    );
}

/// `jobs wait --timeout` ran out before every task of the group ended.
pub fn print_group_wait_gave_up(group: &jobs_core::wire::Group, waited: Duration) {
    let left = group
        .tasks
        .iter()
        .filter(|task| !task.state.is_terminal())
        .count();
    eprintln!(
        "jobs: group {} still has {left} of {} tasks to end after {}",
        group.id,
        group.tasks.len(),
        humantime::format_duration(waited)
    );
}

/// A lost log stream, said once per outage and only to a person at a
/// terminal: in a pipeline, stderr carries nothing but the job's own stderr.
pub fn print_reconnecting(err: &CliError) {
    use std::io::IsTerminal;
    if io::stderr().is_terminal() {
        eprintln!("jobs: lost the log stream ({err}); reconnecting");
    }
}

/// A command as a person would type it. A single-argument run shows its
/// shell script rather than the `/bin/sh -c` wrapper the CLI added.
pub fn display_command(command: &[String]) -> String {
    match command {
        [shell, dash_c, script] if shell == "/bin/sh" && dash_c == "-c" => script.clone(),
        args => args
            .iter()
            .map(|arg| shell_quote(arg))
            .collect::<Vec<_>>()
            .join(" "),
    }
}

fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b));
    if plain {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

fn timestamp(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn optional(value: Option<i32>) -> String {
    value.map_or("-".into(), |value| value.to_string())
}

fn seconds(seconds: i64) -> String {
    whole_seconds(Duration::from_secs(seconds.max(0).unsigned_abs()))
}

fn whole_seconds(duration: Duration) -> String {
    humantime::format_duration(Duration::from_secs(duration.as_secs())).to_string()
}

fn key_value_block(rows: &[(&str, String)]) -> String {
    let width = rows.iter().map(|(key, _)| key.len()).max().unwrap_or(0) + 1;
    rows.iter()
        .map(|(key, value)| format!("{:<width$} {value}\n", format!("{key}:")))
        .collect()
}

/// Left-aligned columns two spaces apart; the last column is not padded.
fn table<const N: usize>(rows: impl Iterator<Item = [String; N]>) -> String {
    let rows: Vec<[String; N]> = rows.collect();
    let mut widths = [0usize; N];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for row in &rows {
        let mut line = String::new();
        for (column, cell) in row.iter().enumerate() {
            if column + 1 == N {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[column]));
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|arg| arg.to_string()).collect()
    }

    #[test]
    fn a_task_s_lines_go_out_whole_behind_its_prefix() {
        let mut lines = PrefixedLines {
            prefix: b"[3] ".to_vec(),
            pending: Default::default(),
        };
        assert_eq!(lines.complete(LogStream::Stdout, b"one\ntw"), b"[3] one\n");
        // The other stream keeps its own unfinished line.
        assert_eq!(lines.complete(LogStream::Stderr, b"err"), b"");
        assert_eq!(
            lines.complete(LogStream::Stdout, b"o\nthree\n"),
            b"[3] two\n[3] three\n"
        );
        assert_eq!(lines.rest(LogStream::Stdout), b"");
        assert_eq!(lines.rest(LogStream::Stderr), b"[3] err\n");
        // A line past the bound is broken there rather than held forever.
        let long = vec![b'x'; MAX_PENDING_LINE];
        let out = lines.complete(LogStream::Stdout, &long);
        assert_eq!(out.len(), MAX_PENDING_LINE + 5);
        assert!(out.starts_with(b"[3] x") && out.ends_with(b"x\n"));
    }

    #[test]
    fn commands_read_as_typed() {
        assert_eq!(
            display_command(&strings(&["/bin/sh", "-c", "ls | wc -l"])),
            "ls | wc -l"
        );
        assert_eq!(
            display_command(&strings(&["echo", "a b", "it's", ""])),
            r"echo 'a b' 'it'\''s' ''"
        );
        assert_eq!(
            display_command(&strings(&["rake", "db:migrate"])),
            "rake db:migrate"
        );
    }

    #[test]
    fn tables_align_their_columns() {
        let rows = [
            ["ID", "STATE", "COMMAND"].map(String::from),
            ["j1", "succeeded", "true"].map(String::from),
            ["j22", "failed", ""].map(String::from),
        ];
        assert_eq!(
            table(rows.into_iter()),
            "ID   STATE      COMMAND\nj1   succeeded  true\nj22  failed\n"
        );
    }

    #[test]
    fn apps_show_their_warm_pool() {
        let time = Utc::now();
        let app = App {
            name: "web".into(),
            image: "alpine:3".into(),
            env: Default::default(),
            secret_env: vec![],
            size: jobs_core::Size::M,
            timeout_seconds: 3600,
            warm: 2,
            max_running: Some(3),
            weight: 2,
            max_output_bytes: 1 << 30,
            storage_quota_bytes: None,
            storage_used_bytes: None,
            hardening: Hardening::default(),
            created_at: time,
            updated_at: time,
        };
        let text = app_text(&app);
        let lines: Vec<&str> = text.lines().collect();
        let timeout = lines.iter().position(|l| l.starts_with("timeout:"));
        let warm = lines.iter().position(|l| l.starts_with("warm:"));
        assert_eq!(warm, timeout.map(|t| t + 1), "{text}");
        let line = lines[warm.unwrap()];
        assert_eq!(line.split_whitespace().collect::<Vec<_>>(), ["warm:", "2"]);
        let off = app_text(&App { warm: 0, ..app });
        assert!(
            off.lines().any(|l| l.split_whitespace().eq(["warm:", "0"])),
            "{off}"
        );
    }

    #[test]
    fn key_values_align() {
        let rows = [("id", "j1".to_string()), ("exit code", "3".to_string())];
        assert_eq!(key_value_block(&rows), "id:        j1\nexit code: 3\n");
    }
}
