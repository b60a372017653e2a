//! `jobs wait ID [--timeout DUR]`: block until the job ends, then exit with
//! its exit code.

use std::time::Duration;

use jobs_core::exit::EXIT_PLATFORM;
use jobs_core::groups::is_group_id;
use jobs_core::wire::{Group, Job};
use tokio::time::Instant;

use crate::args::WaitArgs;
use crate::backoff::Backoff;
use crate::commands::Context;
use crate::error::CliError;
use crate::interrupt;
use crate::job_end;
use crate::output;

pub async fn wait(context: &Context, args: WaitArgs) -> Result<u8, CliError> {
    let waiting = wait_for_end(context, &args);
    let watched = interrupt::watch(
        &context.client,
        &args.id,
        args.interrupt.on_interrupt,
        waiting,
    )
    .await;
    interrupt::exit_code(&args.id, watched)
}

async fn wait_for_end(context: &Context, args: &WaitArgs) -> Result<u8, CliError> {
    let client = &context.client;
    if is_group_id(&args.id) {
        let first = client.get_group_first(&args.id).await?;
        let polled = poll_until(
            first,
            || client.get_group(&args.id),
            Group::ended,
            args.timeout,
        );
        return match polled.await? {
            Polled::Ended(group) => {
                output::print_group_end(&group);
                Ok(group.cli_exit_code().unwrap_or(EXIT_PLATFORM))
            }
            Polled::GaveUp(group, waited) => {
                output::print_group_wait_gave_up(&group, waited);
                Ok(EXIT_PLATFORM)
            }
        };
    }
    // The first answer must come, so that an unknown id, a refused token or
    // a wrong address fails at once (an API restarting under it is waited
    // for). Later polls ride out API restarts.
    let first = client.get_job_first(&args.id).await?;
    let ended = |job: &Job| job.state.is_terminal();
    match poll_until(first, || client.get_job(&args.id), ended, args.timeout).await? {
        Polled::Ended(job) => {
            output::print_job_end(&job);
            Ok(job_end::exit_code(&job))
        }
        Polled::GaveUp(job, waited) => {
            output::print_wait_gave_up(&job, waited);
            Ok(EXIT_PLATFORM)
        }
    }
}

/// Polls start quick, for short jobs, and slow down to spare the API during
/// long ones.
const POLL_FIRST_DELAY: Duration = Duration::from_millis(250);
const POLL_MAX_DELAY: Duration = Duration::from_secs(2);

/// How polling a job or a group came out.
enum Polled<T> {
    Ended(T),
    /// The timeout ran out first; what was last seen, and the timeout.
    GaveUp(T, Duration),
}

/// Polls with `fetch` from `seen` on until `ended` or `timeout` runs out;
/// a poll the API failed in a way worth retrying is retried.
async fn poll_until<T, F, Fut>(
    mut seen: T,
    fetch: F,
    ended: impl Fn(&T) -> bool,
    timeout: Option<Duration>,
) -> Result<Polled<T>, CliError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, CliError>>,
{
    let deadline = timeout.map(|timeout| Instant::now() + timeout);
    let mut polls = Backoff::new(POLL_FIRST_DELAY, POLL_MAX_DELAY);
    loop {
        if ended(&seen) {
            return Ok(Polled::Ended(seen));
        }
        let mut delay = polls.next_delay();
        if let (Some(deadline), Some(waited)) = (deadline, timeout) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Polled::GaveUp(seen, waited));
            }
            delay = delay.min(left);
        }
        tokio::time::sleep(delay).await;
        match fetch().await {
            Ok(latest) => seen = latest,
            Err(err) if err.is_retryable() => {}
            Err(err) => return Err(err),
        }
    }
}
