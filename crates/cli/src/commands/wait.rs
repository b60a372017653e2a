//! `jobs wait ID [--timeout DUR]`: block until the job ends, then exit with
//! its exit code.

use std::time::Duration;

use jobs_core::exit::EXIT_PLATFORM;
use jobs_core::wire::Job;
use tokio::time::Instant;

use crate::args::WaitArgs;
use crate::backoff::Backoff;
use crate::client::ApiClient;
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
    match poll_until_ended(&context.client, &args.id, args.timeout).await? {
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

/// How polling a job came out.
enum Polled {
    Ended(Job),
    /// The timeout ran out first; the job as last seen, and the timeout.
    GaveUp(Job, Duration),
}

/// Polls the job until it ends or `timeout` runs out.
async fn poll_until_ended(
    client: &ApiClient,
    id: &str,
    timeout: Option<Duration>,
) -> Result<Polled, CliError> {
    let deadline = timeout.map(|timeout| Instant::now() + timeout);
    let mut polls = Backoff::new(POLL_FIRST_DELAY, POLL_MAX_DELAY);

    // The first answer must come, so that an unknown id, a refused token or
    // a wrong address fails at once (an API restarting under it is waited
    // for). Later polls ride out API restarts.
    let mut job = client.get_job_first(id).await?;
    loop {
        if job.state.is_terminal() {
            return Ok(Polled::Ended(job));
        }
        let mut delay = polls.next_delay();
        if let (Some(deadline), Some(waited)) = (deadline, timeout) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Polled::GaveUp(job, waited));
            }
            delay = delay.min(left);
        }
        tokio::time::sleep(delay).await;
        match client.get_job(id).await {
            Ok(latest) => job = latest,
            Err(err) if err.is_retryable() => {}
            Err(err) => return Err(err),
        }
    }
}
