//! The reaper's queries: expired leases and queue timeouts.
//!
//! Only this process writes the file, so no lock beyond SQLite's own write
//! lock is needed: the pass is one `BEGIN IMMEDIATE` transaction.

use super::{BEGIN_IMMEDIATE, SqliteStore, rows::now};
use crate::{JOB_EVENTS_CHANNEL, StoreError, model::ReapReport};

impl SqliteStore {
    /// Resolves every expired lease.
    ///
    /// A job still `starting` with attempts left goes back to `queued`
    /// (nothing of it ran yet); anything else becomes `lost`, because its
    /// command may have had side effects and must not silently run twice.
    pub async fn reap_expired_leases(&self) -> Result<ReapReport, StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_IMMEDIATE).await?;
        // One reading of the database clock for the whole pass, as
        // PostgreSQL's `now()` is one per transaction: a lease that expires
        // between the two statements must not skip the re-queue.
        let (now,): (i64,) = sqlx::query_as(concat!("select ", now!()))
            .fetch_one(&mut *tx)
            .await?;
        let requeued: Vec<(String,)> = sqlx::query_as(
            "update jobs set state = 'queued', lease_owner = null, lease_expires_at = null, \
               published_at = null, updated_at = $1 \
             where state = 'starting' and lease_expires_at < $1 \
               and attempt < max_attempts and cancel_requested_at is null and start_requested_at is null \
               and interactive_tty is null \
             returning id",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        let lost: Vec<(String,)> = sqlx::query_as(
            "update jobs set state = case when cancel_requested_at is null then 'lost' else 'canceled' end, \
               reason = 'worker lost', finished_at = $1, updated_at = $1, lease_expires_at = null \
             where state in ('starting', 'running') and lease_expires_at < $1 \
             returning id",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        let expired: Vec<(String,)> = sqlx::query_as(
            "update jobs set state = 'canceled', \
               reason = 'not started within its queue timeout of ' || queue_timeout_seconds || 's', \
               finished_at = $1, updated_at = $1 \
             where state = 'queued' and queue_timeout_seconds is not null \
               and created_at + queue_timeout_seconds * 1000000 < $1 \
             returning id",
        )
        .bind(now)
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
            self.notify(JOB_EVENTS_CHANNEL, id);
        }
        Ok(report)
    }
}
