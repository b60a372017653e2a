//! The outbox relay, the reaper loop and the purge.
//!
//! A job's wake-up is published after its row commits. When the broker does
//! not confirm it (down, blocked, or the API died in between), the row keeps
//! `published_at` null, and this loop publishes it again. The same loop runs
//! the reaper, whose re-queued jobs also need a new wake-up. Any number of
//! API processes may run it: the reaper takes an advisory lock, and a
//! duplicate wake-up is harmless because a worker's claim is fenced.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use jobs_dispatch::Publisher;
use jobs_store::Store;
use tokio::time::{MissedTickBehavior, interval};
use tokio_util::sync::CancellationToken;

use crate::{
    metrics::Metrics,
    objects::{ObjectSettings, purge_pass},
};

/// How long a publish may wait for the broker's confirm. A blocked broker
/// (memory alarm) accepts publishes but never confirms them.
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the relay looks for unconfirmed wake-ups.
pub const RELAY_INTERVAL: Duration = Duration::from_secs(1);
/// How old an unconfirmed job must be before the relay takes it, so that it
/// does not race the request that is publishing it right now.
pub const UNPUBLISHED_MIN_AGE: Duration = Duration::from_secs(2);
/// How many unconfirmed jobs one relay pass takes.
pub const RELAY_BATCH: i64 = 100;
/// How often the reaper resolves expired leases, unless configured
/// (`JOBS_REAPER_INTERVAL`). A dead worker's job ends `lost` within its
/// lease plus this.
pub const REAPER_INTERVAL: Duration = Duration::from_secs(2);
/// How long a worker not heard from stays listed as stale before it is
/// forgotten, unless configured (`JOBS_FORGET_WORKERS_AFTER`).
pub const FORGET_WORKERS_AFTER: Duration = Duration::from_secs(24 * 3600);
/// How often the purge looks for jobs past their retention and uploads no
/// job took (crate::objects::purge_pass).
pub const PURGE_INTERVAL: Duration = Duration::from_secs(5);

/// How many confirmed publishes one write records at most.
const MARK_BATCH: usize = 512;

/// Publishes one wake-up and waits for the broker's confirm, for at most
/// [`PUBLISH_TIMEOUT`].
pub async fn publish_confirmed(publisher: &Publisher, job_id: &str) -> anyhow::Result<()> {
    tokio::time::timeout(PUBLISH_TIMEOUT, publisher.publish(job_id))
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "the broker did not confirm within {}s",
                PUBLISH_TIMEOUT.as_secs()
            )
        })?
}

/// Records confirmed publishes in the outbox, many per write: the marks of
/// concurrent submissions share one statement and one commit, taken as
/// soon as the previous write is done (no timer), instead of a commit each.
/// A mark is not awaited by the request: the wake-up is already durable,
/// and one that is never recorded (the API died, the database failed) only
/// makes the relay publish it again, which is harmless.
#[derive(Clone)]
pub struct PublishedMarks {
    sender: tokio::sync::mpsc::UnboundedSender<String>,
}

impl PublishedMarks {
    /// Starts the writer; it stops once every handle is dropped.
    pub fn start(store: Store) -> Self {
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MARK_BATCH);
            while receiver.recv_many(&mut batch, MARK_BATCH).await > 0 {
                if let Err(error) = store.mark_published(&batch).await {
                    tracing::warn!(
                        jobs = batch.len(),
                        %error,
                        "recording confirmed publishes failed; the relay publishes them again"
                    );
                }
                batch.clear();
            }
        });
        Self { sender }
    }

    /// Queues the mark of a confirmed publish.
    pub fn record(&self, job_id: &str) {
        let _ = self.sender.send(job_id.to_owned());
    }
}

pub struct Relay {
    store: Store,
    publisher: Arc<Publisher>,
    metrics: Metrics,
    objects: Arc<ObjectSettings>,
    reaper_interval: Duration,
    forget_workers_after: Duration,
    /// Whether the last publish failed, so that an outage logs one warning
    /// when it starts and one line when it ends, not one per second.
    broker_failing: bool,
}

impl Relay {
    pub fn new(
        store: Store,
        publisher: Arc<Publisher>,
        metrics: Metrics,
        objects: Arc<ObjectSettings>,
    ) -> Self {
        Self {
            store,
            publisher,
            metrics,
            objects,
            reaper_interval: REAPER_INTERVAL,
            forget_workers_after: FORGET_WORKERS_AFTER,
            broker_failing: false,
        }
    }

    /// How often the reaper runs (instead of [`REAPER_INTERVAL`]).
    pub fn with_reaper_interval(mut self, interval: Duration) -> Self {
        self.reaper_interval = interval;
        self
    }

    /// How long a silent worker stays listed (instead of
    /// [`FORGET_WORKERS_AFTER`]).
    pub fn with_forget_workers_after(mut self, after: Duration) -> Self {
        self.forget_workers_after = after;
        self
    }

    /// Runs both loops until `shutdown` is cancelled. A pass cut short by the
    /// shutdown is safe: whatever it did not publish stays in the outbox.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut relay_tick = interval(RELAY_INTERVAL);
        relay_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut reaper_tick = interval(self.reaper_interval);
        reaper_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut purge_tick = interval(PURGE_INTERVAL);
        purge_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let finished = tokio::select! {
                _ = relay_tick.tick() => {
                    shutdown.run_until_cancelled(self.republish_unconfirmed()).await
                }
                _ = reaper_tick.tick() => {
                    shutdown.run_until_cancelled(self.reap_expired_leases()).await
                }
                _ = purge_tick.tick() => {
                    shutdown.run_until_cancelled(self.purge()).await
                }
                _ = shutdown.cancelled() => None,
            };
            if finished.is_none() {
                break;
            }
        }
        tracing::debug!("relay stopped");
    }

    async fn republish_unconfirmed(&mut self) {
        let ids = match self
            .store
            .unpublished_jobs(UNPUBLISHED_MIN_AGE, RELAY_BATCH)
            .await
        {
            Ok(ids) => ids,
            Err(error) => {
                tracing::warn!(%error, "relay: listing unconfirmed wake-ups failed");
                return;
            }
        };
        if !ids.is_empty() {
            tracing::debug!(count = ids.len(), "relay: publishing unconfirmed wake-ups");
        }
        self.publish_all(&ids).await;
    }

    async fn reap_expired_leases(&mut self) {
        let report = match self.store.reap_expired_leases().await {
            Ok(report) => report,
            Err(error) => {
                tracing::warn!(%error, "reaper: resolving expired leases failed");
                return;
            }
        };
        for job_id in &report.lost {
            tracing::warn!(
                job_id,
                "reaper: lease expired after the job started; job ended"
            );
        }
        for job_id in &report.requeued {
            tracing::info!(
                job_id,
                "reaper: lease expired before the job started; queued again"
            );
        }
        self.metrics.reaper_lost.inc_by(report.lost.len() as u64);
        self.metrics
            .reaper_requeued
            .inc_by(report.requeued.len() as u64);
        // Re-queued jobs have `published_at` cleared, so any publish that
        // fails here is retried by the relay.
        self.publish_all(&report.requeued).await;
    }

    async fn purge(&mut self) {
        match purge_pass(&self.store, &self.objects).await {
            Ok(report) => {
                if report.jobs > 0 || report.objects > 0 {
                    tracing::info!(
                        jobs = report.jobs,
                        objects = report.objects,
                        "purge: deleted jobs past their retention and their objects"
                    );
                }
                self.metrics.purged_jobs.inc_by(report.jobs as u64);
                self.metrics.purged_objects.inc_by(report.objects as u64);
            }
            Err(error) => tracing::warn!(error = format!("{error:#}"), "purge failed"),
        }
        match self
            .store
            .forget_stale_workers(self.forget_workers_after)
            .await
        {
            Ok(forgotten) => {
                for worker_id in forgotten {
                    tracing::info!(
                        worker_id,
                        "purge: forgot a worker not heard from within {}",
                        humantime::format_duration(self.forget_workers_after)
                    );
                }
            }
            Err(error) => tracing::warn!(%error, "purge: forgetting stale workers failed"),
        }
    }

    /// Publishes in order and stops at the first failure: when the broker is
    /// down, trying the rest would only wait for more timeouts.
    async fn publish_all(&mut self, ids: &[String]) {
        for job_id in ids {
            let published = match publish_confirmed(&self.publisher, job_id).await {
                Ok(()) => self
                    .store
                    .mark_published(std::slice::from_ref(job_id))
                    .await
                    .context("recording the confirmed publish"),
                Err(error) => Err(error),
            };
            match published {
                Ok(()) => {
                    self.metrics.relay_republished.inc();
                    if self.broker_failing {
                        tracing::info!("relay: the broker confirms wake-ups again");
                        self.broker_failing = false;
                    }
                }
                Err(error) => {
                    self.metrics.publish_failures.inc();
                    let error = format!("{error:#}");
                    if self.broker_failing {
                        tracing::debug!(job_id, error, "relay: publishing still fails");
                    } else {
                        tracing::warn!(
                            job_id,
                            error,
                            "relay: publishing fails; will retry every second"
                        );
                        self.broker_failing = true;
                    }
                    return;
                }
            }
        }
    }
}
