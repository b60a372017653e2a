//! The embedded SQLite store, for `jobs dev`: one process, one file.
//!
//! It keeps the contract of the PostgreSQL store statement for statement:
//! - every state change is the same compare-and-set, fenced on `(id,
//!   attempt, lease_owner, state)`;
//! - lease times come from SQLite's own clock (`unixepoch('subsec')`), never
//!   the caller's;
//! - timestamps are INTEGER microseconds since the Unix epoch (UTC), so they
//!   sort and compare as plain integers; the database clock itself has
//!   millisecond resolution;
//! - wake-ups are in-process broadcasts instead of LISTEN/NOTIFY, since only
//!   this process writes the file;
//! - every transaction that reads before it writes starts with `BEGIN
//!   IMMEDIATE`, so it takes the write lock first and waits on
//!   `busy_timeout` instead of failing on a stale snapshot.

mod apps;
mod groups;
mod jobs;
mod lease;
mod logs;
mod reaper;
mod rows;
mod tokens;
mod uploads;
mod workers;

use std::{str::FromStr, time::Duration};

use anyhow::Context;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::broadcast;

use crate::{JOB_EVENTS_CHANNEL, StoreError};

/// How many wake-ups a slow subscriber may lag behind before it misses some.
const NOTIFICATION_CAPACITY: usize = 1024;

/// The statement that opens a transaction which reads before it writes.
const BEGIN_IMMEDIATE: &str = "BEGIN IMMEDIATE";

#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Fires with a job id whenever the job's logs or state change.
    job_events: broadcast::Sender<String>,
}

impl SqliteStore {
    /// Opens (creating it if missing) the database at `database_url`, e.g.
    /// `sqlite:///var/lib/jobs/jobs.db` or `sqlite:jobs.db?mode=rwc`, and runs
    /// the migrations.
    pub async fn connect(database_url: &str) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(database_url)
            .with_context(|| format!("parsing the SQLite URL {database_url:?}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let in_memory = is_in_memory(database_url);
        if !in_memory {
            if let Some(dir) = options.get_filename().parent() {
                if !dir.as_os_str().is_empty() && !dir.exists() {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("creating {}", dir.display()))?;
                }
            }
        }
        if !in_memory {
            // Switching a new file to WAL needs the only connection to it:
            // the pool below opens its first connections concurrently, and
            // two of them switching at once fail with "database is locked".
            // Once the file is in WAL mode, asking for it again is a no-op.
            use sqlx::{ConnectOptions, Connection};
            let bootstrap = options
                .connect()
                .await
                .with_context(|| format!("opening the SQLite database {database_url:?}"))?;
            bootstrap.close().await?;
        }
        let pool = SqlitePoolOptions::new()
            // One writer at a time anyway; a few connections let reads
            // (followers, listings) go on while a write waits. An in-memory
            // database is shared through SQLite's shared cache, whose table
            // locks do not wait on `busy_timeout`: it gets one connection.
            .max_connections(if in_memory { 1 } else { 4 })
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            // An in-memory database lives as long as one connection to it.
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .with_context(|| format!("opening the SQLite database {database_url:?}"))?;
        sqlx::migrate!("../../migrations/sqlite")
            .run(&pool)
            .await
            .context("running database migrations")?;
        Ok(Self {
            pool,
            job_events: broadcast::channel(NOTIFICATION_CAPACITY).0,
        })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Wake-ups for `channel`, sent by this process's own writes.
    pub async fn notifications(
        &self,
        channel: &'static str,
    ) -> Result<broadcast::Sender<String>, StoreError> {
        Ok(match channel {
            JOB_EVENTS_CHANNEL => self.job_events.clone(),
            // Nothing is ever sent on another channel, as nothing NOTIFYs one
            // in PostgreSQL.
            _ => broadcast::channel(1).0,
        })
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

    /// Wakes the subscribers of `channel` with `job_id`. Having none is fine.
    fn notify(&self, channel: &str, job_id: &str) {
        let sender = match channel {
            JOB_EVENTS_CHANNEL => &self.job_events,
            _ => return,
        };
        let _ = sender.send(job_id.to_owned());
    }
}

fn is_in_memory(database_url: &str) -> bool {
    database_url.contains(":memory:") || database_url.contains("mode=memory")
}

/// Whether `error` is a violation of the unique key on exactly `columns`, as
/// SQLite names it (`table.column, table.column`). SQLite reports no
/// constraint names, so the message is all there is to go by.
fn is_unique_violation(error: &sqlx::Error, columns: &str) -> bool {
    match error {
        sqlx::Error::Database(e) => {
            e.kind() == sqlx::error::ErrorKind::UniqueViolation
                && e.message()
                    .strip_prefix("UNIQUE constraint failed: ")
                    .is_some_and(|failed| failed == columns)
        }
        _ => false,
    }
}

/// The longest duration added to a timestamp: about 31,700 years, far from
/// the overflow of a 64-bit count of microseconds (which SQLite would turn
/// into a REAL).
const MAX_MICROS: i64 = 1_000_000_000_000_000_000;

/// Microseconds of a duration, as the store's timestamps count them.
fn duration_micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).map_or(MAX_MICROS, |us| us.min(MAX_MICROS))
}

#[cfg(test)]
mod tests {
    //! What the contract suite (tests/contract.rs) cannot reach from outside:
    //! how SQLite words its errors, and the schema's defaults.

    use chrono::Utc;

    use super::{SqliteStore, is_unique_violation, rows::time};

    async fn store() -> SqliteStore {
        SqliteStore::connect("sqlite::memory:")
            .await
            .expect("in-memory store")
    }

    #[tokio::test]
    async fn unique_violations_are_told_apart_by_their_columns() {
        let store = store().await;
        let insert_app = "insert into apps (name, image) values ('web', 'alpine')";
        sqlx::query(insert_app).execute(store.pool()).await.unwrap();
        let error = sqlx::query(insert_app)
            .execute(store.pool())
            .await
            .unwrap_err();
        assert!(is_unique_violation(&error, "apps.name"), "{error}");
        assert!(!is_unique_violation(
            &error,
            "jobs.app, jobs.idempotency_key"
        ));

        let insert_job = "insert into jobs (id, app, command, size, timeout_seconds, \
                          idempotency_key) values ($1, 'web', '[]', 'M', 60, 'key')";
        sqlx::query(insert_job)
            .bind("a")
            .execute(store.pool())
            .await
            .unwrap();
        let error = sqlx::query(insert_job)
            .bind("b")
            .execute(store.pool())
            .await
            .unwrap_err();
        assert!(
            is_unique_violation(&error, "jobs.app, jobs.idempotency_key"),
            "{error}"
        );
        assert!(!is_unique_violation(&error, "apps.name"));
    }

    #[tokio::test]
    async fn defaults_and_the_clock_are_microseconds_since_the_epoch() {
        let store = store().await;
        sqlx::query("insert into apps (name, image) values ('web', 'alpine')")
            .execute(store.pool())
            .await
            .unwrap();
        let (created_at, now): (i64, i64) = sqlx::query_as(concat!(
            "select created_at, ",
            super::rows::now!(),
            " from apps where name = 'web'"
        ))
        .fetch_one(store.pool())
        .await
        .unwrap();
        for micros in [created_at, now] {
            let skew = (Utc::now() - time(micros)).num_seconds().abs();
            assert!(skew < 60, "{micros} is {skew} s away from now");
            assert_eq!(micros % 1000, 0, "the database clock counts milliseconds");
        }
        assert!(created_at <= now);
    }

    #[tokio::test]
    async fn constraints_hold() {
        let store = store().await;
        // Foreign keys are on: a job needs its app.
        let orphan = sqlx::query(
            "insert into jobs (id, app, command, size, timeout_seconds) \
             values ('a', 'nope', '[]', 'M', 60)",
        )
        .execute(store.pool())
        .await;
        assert!(orphan.is_err(), "a job without an app was stored");
        sqlx::query("insert into apps (name, image) values ('web', 'alpine')")
            .execute(store.pool())
            .await
            .unwrap();
        let bad_state = sqlx::query(
            "insert into jobs (id, app, command, size, timeout_seconds, state) \
             values ('a', 'web', '[]', 'M', 60, 'bogus')",
        )
        .execute(store.pool())
        .await;
        assert!(bad_state.is_err(), "an unknown state was stored");
    }
}
