//! Polling a job until it ends: `jobs wait`, and an interactive run being
//! canceled after its session ended.

use std::time::Duration;

use jobs_core::wire::Job;
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::client::ApiClient;
use crate::error::CliError;

/// Polls start quick, for short jobs, and slow down to spare the API during
/// long ones.
const POLL_FIRST_DELAY: Duration = Duration::from_millis(250);
const POLL_MAX_DELAY: Duration = Duration::from_secs(2);

/// How polling a job came out.
pub enum Polled {
    Ended(Job),
    /// The timeout ran out first; the job as last seen, and the timeout.
    GaveUp(Job, Duration),
}

/// Polls the job until it ends or `timeout` runs out.
pub async fn poll_until_ended(
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
