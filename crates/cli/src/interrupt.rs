//! SIGINT (Ctrl-C) and SIGTERM (a CI runner stopping its step) while the
//! CLI watches a job, and what `--on-interrupt` makes of them.
//!
//! `detach` leaves the job running and says how to get back to it.
//! `cancel` cancels the job and keeps watching until it ends (its output
//! and exit code included), for at most [`CANCEL_WAIT`]; a second signal
//! stops the wait.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::signal::unix::{Signal, SignalKind, signal};

use jobs_core::exit::EXIT_PLATFORM;

use crate::args::OnInterrupt;
use crate::client::ApiClient;
use crate::error::CliError;
use crate::output;

/// How long `cancel` waits for the job's end: a worker's default stop
/// grace (10 s, between SIGTERM and SIGKILL) and time for the end to be
/// recorded, well within what CI runners give a step after SIGTERM.
pub const CANCEL_WAIT: Duration = Duration::from_secs(30);

/// A signal that asks the CLI to stop watching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interrupt(pub i32);

impl Interrupt {
    /// 128 + the signal's number, as a shell reports a process it ended:
    /// 130 after Ctrl-C, 143 after SIGTERM.
    pub fn exit_code(self) -> u8 {
        128u8.saturating_add(u8::try_from(self.0).unwrap_or(0))
    }

    pub fn name(self) -> &'static str {
        match self.0 {
            libc::SIGINT => "SIGINT",
            libc::SIGTERM => "SIGTERM",
            libc::SIGHUP => "SIGHUP",
            _ => "a signal",
        }
    }
}

/// The CLI's handlers of SIGINT and SIGTERM. Once installed, neither
/// signal ends the process by itself any more: the CLI decides.
pub struct Interrupts {
    interrupt: Option<Signal>,
    terminate: Option<Signal>,
}

impl Interrupts {
    /// A handler that cannot be installed leaves its signal's default
    /// effect, ending the process, in place.
    pub fn install() -> Self {
        Self {
            interrupt: signal(SignalKind::interrupt()).ok(),
            terminate: signal(SignalKind::terminate()).ok(),
        }
    }

    /// The next SIGINT or SIGTERM.
    pub async fn next(&mut self) -> Interrupt {
        async fn recv(signal: Option<&mut Signal>) {
            match signal {
                Some(signal) => {
                    if signal.recv().await.is_none() {
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            () = recv(self.interrupt.as_mut()) => Interrupt(libc::SIGINT),
            () = recv(self.terminate.as_mut()) => Interrupt(libc::SIGTERM),
        }
    }
}

/// How watching a job came out.
#[derive(Debug)]
pub enum Watched<T> {
    /// The watching future finished: the job ended, or watching failed.
    Completed(T),
    /// A signal ended the watch; the job goes on.
    Detached(Interrupt),
    /// A second signal ended the wait for a canceled job's end.
    StoppedWaiting(Interrupt),
    /// The job was canceled and did not end within [`CANCEL_WAIT`].
    CancelUnanswered,
}

/// Runs `watching` until it completes or a signal comes. On a signal, with
/// `cancel`, the job is canceled and `watching` goes on until the job's end.
pub async fn watch<F: Future>(
    client: &ApiClient,
    job_id: &str,
    on_interrupt: OnInterrupt,
    watching: F,
) -> Watched<F::Output> {
    let mut interrupts = Interrupts::install();
    let mut watching = std::pin::pin!(watching);
    let interrupt = tokio::select! {
        output = &mut watching => return Watched::Completed(output),
        interrupt = interrupts.next() => interrupt,
    };
    match on_interrupt {
        OnInterrupt::Detach => Watched::Detached(interrupt),
        OnInterrupt::Cancel => {
            cancel_and_watch(client, job_id, interrupt, &mut interrupts, watching).await
        }
    }
}

/// Cancels the job after `interrupt`, then watches for its end.
pub async fn cancel_and_watch<F: Future>(
    client: &ApiClient,
    job_id: &str,
    interrupt: Interrupt,
    interrupts: &mut Interrupts,
    mut watching: Pin<&mut F>,
) -> Watched<F::Output> {
    output::print_canceling(job_id, interrupt.name(), CANCEL_WAIT);
    let cancel = async {
        if let Err(err) = client.cancel_job_or_group(job_id).await {
            output::print_cancel_failed(job_id, &err);
        }
        std::future::pending::<()>().await;
    };
    tokio::select! {
        output = &mut watching => Watched::Completed(output),
        interrupt = interrupts.next() => Watched::StoppedWaiting(interrupt),
        () = tokio::time::sleep(CANCEL_WAIT) => Watched::CancelUnanswered,
        () = cancel => unreachable!("the cancel future never completes"),
    }
}

/// The exit code after watching with work that gives one: the job's, or
/// 128 + the signal after a detach, or 125 when a cancel went unanswered.
pub fn exit_code(job_id: &str, watched: Watched<Result<u8, CliError>>) -> Result<u8, CliError> {
    match watched {
        Watched::Completed(result) => result,
        Watched::Detached(interrupt) => {
            output::print_detached(job_id);
            Ok(interrupt.exit_code())
        }
        Watched::StoppedWaiting(interrupt) => {
            output::print_stopped_waiting(job_id);
            Ok(interrupt.exit_code())
        }
        Watched::CancelUnanswered => {
            output::print_cancel_unanswered(job_id, CANCEL_WAIT);
            Ok(EXIT_PLATFORM)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interrupt_exits_as_a_shell_reports_the_signal() {
        assert_eq!(Interrupt(libc::SIGINT).exit_code(), 130);
        assert_eq!(Interrupt(libc::SIGTERM).exit_code(), 143);
        assert_eq!(Interrupt(libc::SIGTERM).name(), "SIGTERM");
    }
}
