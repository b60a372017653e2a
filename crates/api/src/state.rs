//! What every handler shares. Cloning is cheap: every field is a handle.

use std::sync::Arc;

use jobs_dispatch::Publisher;
use jobs_store::{JobNotifications, Store};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::{
    attach::AttachHub, config::AdminToken, metrics::Metrics, objects::ObjectSettings,
    token_slots::TokenSlots,
};

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub publisher: Arc<Publisher>,
    /// Records confirmed publishes in the outbox, in batches.
    pub published: crate::relay::PublishedMarks,
    /// Job ids whose logs or state changed, from the database's NOTIFY.
    pub notifications: Arc<JobNotifications>,
    pub metrics: Metrics,
    pub admin_token: Arc<AdminToken>,
    /// Cancelled when the server stops, so that endless log streams end and
    /// the graceful shutdown does not wait for them forever.
    pub shutdown: CancellationToken,
    /// Bounds the log streams open at once; each holds a task and wakes on
    /// every change of its job.
    pub followers: Arc<Semaphore>,
    /// Interactive runs: the line for workers and the attach bridges.
    pub attach: Arc<AttachHub>,
    /// Where uploads and artifacts live, and their limits.
    pub objects: Arc<ObjectSettings>,
    /// How long an idempotency key names its job (`JOBS_IDEMPOTENCY_TTL`).
    pub idempotency_ttl: std::time::Duration,
    /// Log streams open per token (`JOBS_MAX_LOG_STREAMS_PER_TOKEN`).
    pub log_streams_per_token: Arc<TokenSlots>,
    /// Attach sockets open per token (`JOBS_MAX_ATTACH_SOCKETS_PER_TOKEN`).
    pub attach_sockets_per_token: Arc<TokenSlots>,
}
