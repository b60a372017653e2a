//! The reaper's queries: expired leases, queue timeouts and unconfirmed
//! publishes.
//!
//! Whoever runs the reaper takes a transaction-scoped advisory lock first, so
//! that any number of processes may run it and only one acts at a time.

use super::PgStore;
use crate::model::ReapReport;
use crate::{JOB_EVENTS_CHANNEL, StoreError};

/// An arbitrary constant that names the reaper's advisory lock.
const REAPER_LOCK_KEY: i64 = 0x6a6f_6273_7265_6170; // "jobsreap"

impl PgStore {
    /// Resolves every expired lease, under the reaper lock.
    ///
    /// A job still `starting` with attempts left goes back to `queued`
    /// (nothing of it ran yet); anything else becomes `lost`, because its
    /// command may have had side effects and must not silently run twice.
    /// An interactive run is never re-queued: its client waits for it now,
    /// not later through a queue.
    pub async fn reap_expired_leases(&self) -> Result<ReapReport, StoreError> {
        let mut tx = self.pool.begin().await?;
        let (locked,): (bool,) = sqlx::query_as("select pg_try_advisory_xact_lock($1)")
            .bind(REAPER_LOCK_KEY)
            .fetch_one(&mut *tx)
            .await?;
        if !locked {
            return Ok(ReapReport::default());
        }
        let requeued: Vec<(String,)> = sqlx::query_as(
            "update jobs set state = 'queued', lease_owner = null, lease_expires_at = null, \
               published_at = null, updated_at = now() \
             where state = 'starting' and lease_expires_at < now() and attempt < max_attempts \
               and cancel_requested_at is null and start_requested_at is null and interactive_tty is null \
             returning id",
        )
        .fetch_all(&mut *tx)
        .await?;
        let lost: Vec<(String,)> = sqlx::query_as(
            "update jobs set state = case when cancel_requested_at is null then 'lost' else 'canceled' end, \
               reason = 'worker lost', finished_at = now(), updated_at = now(), \
               lease_expires_at = null \
             where state in ('starting', 'running') and lease_expires_at < now() \
             returning id",
        )
        .fetch_all(&mut *tx)
        .await?;
        // After the re-queue, so a job re-queued past its queue timeout
        // ends here rather than waiting again.
        let expired: Vec<(String,)> = sqlx::query_as(
            "update jobs set state = 'canceled', \
               reason = 'not started within its queue timeout of ' || queue_timeout_seconds || 's', \
               finished_at = now(), updated_at = now() \
             where state = 'queued' and queue_timeout_seconds is not null \
               and created_at + make_interval(secs => queue_timeout_seconds) < now() \
             returning id",
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let report = ReapReport {
            requeued: requeued.into_iter().map(|(id,)| id).collect(),
            lost: lost.into_iter().map(|(id,)| id).collect(),
            expired: expired.into_iter().map(|(id,)| id).collect(),
        };
        for id in report
            .requeued
            .iter()
            .chain(&report.lost)
            .chain(&report.expired)
        {
            self.notify(JOB_EVENTS_CHANNEL, id).await?;
        }
        Ok(report)
    }
}
