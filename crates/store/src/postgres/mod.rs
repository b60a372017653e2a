//! The PostgreSQL store, for production.
//!
//! Lease times come from the database clock (`now()`), and the reaper takes
//! a transaction-scoped advisory lock, so any number of processes may share
//! one database.

mod apps;
mod events;
mod groups;
mod jobs;
mod lease;
mod logs;
mod reaper;
mod rows;
mod tokens;
mod uploads;
mod workers;

use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::StoreError;

#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects and runs the migrations.
    pub async fn connect(database_url: &str) -> anyhow::Result<Self> {
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

    /// Wake-ups for every NOTIFY on each of `channels`, in their order, on
    /// one connection.
    pub async fn notifications(
        &self,
        channels: &[&'static str],
    ) -> Result<Vec<tokio::sync::broadcast::Sender<String>>, StoreError> {
        Ok(events::listen(self, channels).await?)
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("select 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn deployment_id(&self) -> Result<String, StoreError> {
        let (id,): (String,) = sqlx::query_as("select id from deployment")
            .fetch_one(&self.pool)
            .await?;
        Ok(id)
    }
}
