//! `jobs wait ID [--timeout DUR]`: block until the job ends, then exit with
//! its exit code.

use std::time::Duration;

use jobs_core::exit::{EXIT_DETACHED, EXIT_PLATFORM};
use tokio::time::Instant;

use crate::args::WaitArgs;
use crate::backoff::Backoff;
use crate::commands::Context;
use crate::detach::{UnlessDetached, unless_ctrl_c};
use crate::error::CliError;
use crate::job_end;
use crate::output;

/// Polls start quick, for short jobs, and slow down to spare the API during
/// long ones.
const POLL_FIRST_DELAY: Duration = Duration::from_millis(250);
const POLL_MAX_DELAY: Duration = Duration::from_secs(2);

pub async fn wait(context: &Context, args: WaitArgs) -> Result<u8, CliError> {
    match unless_ctrl_c(wait_for_end(context, &args)).await {
        UnlessDetached::Completed(result) => result,
        UnlessDetached::Detached => {
            output::print_detached(&args.id);
            Ok(EXIT_DETACHED)
        }
    }
}

async fn wait_for_end(context: &Context, args: &WaitArgs) -> Result<u8, CliError> {
    let deadline = args.timeout.map(|timeout| Instant::now() + timeout);
    let mut polls = Backoff::new(POLL_FIRST_DELAY, POLL_MAX_DELAY);

    // The first answer must come, so that an unknown id, a refused token or
    // a wrong address fails at once (an API restarting under it is waited
    // for). Later polls ride out API restarts.
    let mut job = context.client.get_job_first(&args.id).await?;
    loop {
        if job.state.is_terminal() {
            output::print_job_end(&job);
            return Ok(job_end::exit_code(&job));
        }
        let mut delay = polls.next_delay();
        if let (Some(deadline), Some(waited)) = (deadline, args.timeout) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                output::print_wait_gave_up(&job, waited);
                return Ok(EXIT_PLATFORM);
            }
            delay = delay.min(left);
        }
        tokio::time::sleep(delay).await;
        match context.client.get_job(&args.id).await {
            Ok(latest) => job = latest,
            Err(err) if err.is_retryable() => {}
            Err(err) => return Err(err),
        }
    }
}
