//! Interactive runs: the CLI's side of the attach WebSocket
//! (`GET /v1/jobs/{id}/attach`, protocol in `jobs_core::attach`).
//!
//! - [`session`]: one session across dropped connections, stdin to the
//!   job, output frames to stdout and stderr;
//! - [`terminal`]: raw mode and the window size of the local terminal;
//! - [`detach_keys`]: the Ctrl-P Ctrl-Q sequence that leaves a TTY session;
//! - [`incoming`]: what the API sends on the socket, decoded;
//! - [`stdin_reader`]: local stdin as a bounded stream of chunks;
//! - [`session_input`]: stdin not yet acknowledged, resent after a
//!   reconnect (exactly once);
//! - [`notice`]: the CLI's own lines on stderr during a session.

pub mod detach_keys;
pub mod incoming;
pub mod notice;
pub mod session;
pub mod session_input;
pub mod stdin_reader;
pub mod terminal;

use jobs_core::exit::EXIT_DETACHED;

use crate::args::OnInterrupt;
use crate::client::ApiClient;
use crate::error::CliError;
use crate::interrupt::{self, Interrupt, Interrupts};
use crate::log_cursor::LogCursor;
use crate::output::LogSink;
use crate::{job_end, log_follow, output};

pub use session::Target;

/// Attaches to an interactive job until it ends, and returns the CLI's
/// exit code: the job's own, mapped as for queued runs; 130 after a detach.
/// With `--on-interrupt cancel`, SIGINT or SIGTERM cancels the job and
/// waits for its end.
pub async fn attach(client: &ApiClient, target: Target<'_>) -> Result<u8, CliError> {
    // The terminal is out of raw mode again once `run` returns, whatever
    // the outcome, so everything below prints as usual.
    let left = session::run(client, target).await?;
    let cancel = target.on_interrupt == OnInterrupt::Cancel;
    match left.end {
        session::SessionEnd::Ended {
            state,
            exit_code,
            reason,
        } => {
            if let Some(line) =
                job_end::reason_line_of(target.job_id, state, exit_code, reason.as_deref())
            {
                eprintln!("{line}");
            }
            Ok(job_end::exit_code_of(state, exit_code))
        }
        session::SessionEnd::Interrupted if cancel => {
            cancel_after(client, target.job_id, Interrupt(libc::SIGINT), left.cursor).await
        }
        session::SessionEnd::Detached | session::SessionEnd::Interrupted => {
            output::print_attach_detached(target.job_id, target.tty);
            Ok(EXIT_DETACHED)
        }
        session::SessionEnd::Replaced => {
            output::print_attach_replaced(target.job_id, target.tty);
            Ok(EXIT_DETACHED)
        }
        session::SessionEnd::Signaled(libc::SIGTERM) if cancel => {
            cancel_after(client, target.job_id, Interrupt(libc::SIGTERM), left.cursor).await
        }
        session::SessionEnd::Signaled(signal) => {
            output::print_attach_signaled(target.job_id, signal);
            Ok(Interrupt(signal).exit_code())
        }
    }
}

/// Cancels the job whose session a signal ended, and follows its output on
/// from the session's last chunk to the job's end.
async fn cancel_after(
    client: &ApiClient,
    job_id: &str,
    interrupt: Interrupt,
    cursor: Option<LogCursor>,
) -> Result<u8, CliError> {
    let mut interrupts = Interrupts::install();
    let mut cursor = cursor.unwrap_or_else(LogCursor::from_start);
    let mut sink = LogSink::new();
    let ending = async {
        let job = log_follow::follow_until_end(client, job_id, &mut cursor, &mut sink).await?;
        output::print_job_end(&job);
        Ok(job_end::exit_code(&job))
    };
    let ending = std::pin::pin!(ending);
    let watched =
        interrupt::cancel_and_watch(client, job_id, interrupt, &mut interrupts, ending).await;
    interrupt::exit_code(job_id, watched)
}
