//! Which queued job a free slot takes. A wake-up from the queue says that
//! there is work; the store decides which job, by the apps' shares and
//! caps and the jobs' places in line (`Store::claim_next`). A wake-up may
//! so start another job than the one it was published for, or none when a
//! cap holds the work back: a freed slot, and a poll every [`POLL`], claim
//! what is left.

use std::sync::Arc;
use std::time::Duration;

use jobs_store::ClaimedJob;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::attempt;
use crate::worker::WorkerContext;

/// How often a worker with a free slot looks for work no wake-up brought:
/// jobs a cap held back when their wake-up came.
pub const POLL: Duration = Duration::from_secs(2);

/// Runs a claimed job's attempt on its slot; the slot's release wakes
/// [`claim_for_free_slots`].
pub fn start(
    context: &Arc<WorkerContext>,
    tracker: &TaskTracker,
    claimed: ClaimedJob,
    permit: OwnedSemaphorePermit,
) {
    tracing::info!(
        job_id = claimed.fence.job_id,
        attempt = claimed.fence.attempt,
        "claimed"
    );
    let context = context.clone();
    tracker.spawn(async move {
        attempt::run(context.clone(), claimed).await;
        drop(permit);
        context.slot_freed.notify_one();
    });
}

/// Claims jobs for the free slots each time a slot frees, and every
/// [`POLL`], until no queued job may start or the slots are full.
pub async fn claim_for_free_slots(
    context: Arc<WorkerContext>,
    tracker: TaskTracker,
    slots: Arc<Semaphore>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = context.slot_freed.notified() => {}
            () = tokio::time::sleep(POLL) => {}
        }
        if context.is_draining() {
            continue;
        }
        while let Ok(permit) = slots.clone().try_acquire_owned() {
            match context
                .store
                .claim_next(&context.worker_id, context.config.lease)
                .await
            {
                Ok(Some(claimed)) => start(&context, &tracker, claimed, permit),
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!(%error, "claiming for a free slot failed");
                    break;
                }
            }
        }
    }
}
