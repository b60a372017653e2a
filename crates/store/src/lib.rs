//! The store: PostgreSQL, the single source of truth.
//!
//! This crate is the only home of SQL in the project.
//! - [`apps`]: app rows;
//! - [`jobs`]: job rows, creation with the outbox column, listing, cancel;
//! - [`lease`]: the fenced claim, heartbeat and finish a worker performs;
//! - [`logs`]: the per-job, sequenced, binary log chunks;
//! - [`reaper`]: expired leases and unconfirmed publishes;
//! - [`events`]: LISTEN/NOTIFY wake-ups for followers and cancels.
//!
//! Every state change is a compare-and-set fenced on `(state, attempt,
//! lease_owner)`, and lease times come from the database clock.

pub mod apps;
pub mod events;
pub mod jobs;
pub mod lease;
pub mod logs;
pub mod reaper;
mod rows;

use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};

pub use jobs::CancelOutcome;
pub use lease::{ClaimedJob, Fence, Heartbeat, HeldJob};
pub use logs::NewChunk;

/// The channel that carries a job id whenever its logs or state change.
pub const JOB_EVENTS_CHANNEL: &str = "jobs_job_events";
/// The channel that carries a job id when a cancel of a running job is asked.
pub const JOB_CANCEL_CHANNEL: &str = "jobs_job_cancel";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("app {0:?} not found")]
    AppNotFound(String),
    #[error("app {0:?} already exists")]
    AppExists(String),
    #[error("job {0:?} not found")]
    JobNotFound(String),
    #[error("app {app:?} still has {active} active jobs: cancel them or wait")]
    AppBusy { app: String, active: i64 },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// A handle on the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    /// Connects and runs the migrations.
    pub async fn connect(database_url: &str) -> anyhow::Result<Self> {
        use anyhow::Context;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect(database_url)
            .await
            .context("connecting to the database")?;
        sqlx::migrate!("../../migrations/postgres")
            .run(&pool)
            .await
            .context("running database migrations")?;
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("select 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// A new opaque, URL-safe, time-ordered job id.
pub fn new_job_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}
