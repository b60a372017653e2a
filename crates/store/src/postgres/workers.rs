//! The worker registry and direct starts of interactive runs.
//!
//! Each worker writes its free slots here on every slot change and on a
//! heartbeat; the API offers an interactive run to a live worker with a
//! free slot by a signal through the broker (`jobs_dispatch::Signal`). The
//! offer is only a wake-up: the worker still claims the job with the same fenced claim as a
//! queued one, so an offer seen twice, or by two workers, runs it once.
//!
//! A draining worker (`draining_since` set by an admin) is offered nothing
//! and its claims are refused (`claim` checks it in the same statement), so
//! that a drain holds from its commit on, whatever the worker has seen.

use chrono::{DateTime, Utc};
use jobs_core::wire::WorkerInfo;
use std::{collections::HashMap, time::Duration};

use super::PgStore;
use jobs_core::wire::Capacity;

use crate::{
    AttachEndpoint, StoreError,
    shared_rows::{QueuePlaceRow, with_running_jobs},
};

impl PgStore {
    /// Records a worker's slots and version now, by the database clock, and
    /// returns whether it is draining (the one thing the worker reads back).
    pub async fn upsert_worker(
        &self,
        worker_id: &str,
        slots: i32,
        free_slots: i32,
        version: &str,
    ) -> Result<bool, StoreError> {
        let (draining,): (bool,) = sqlx::query_as(
            "insert into workers (id, slots, free_slots, version, heartbeat_at) \
             values ($1, $2, $3, $4, now()) \
             on conflict (id) do update set slots = $2, free_slots = $3, version = $4, \
               heartbeat_at = now() \
             returning draining_since is not null",
        )
        .bind(worker_id)
        .bind(slots)
        .bind(free_slots)
        .bind(version)
        .fetch_one(&self.pool)
        .await?;
        Ok(draining)
    }

    /// Forgets a worker that shut down, unless it is draining: a drain
    /// outlives a restart, until an admin undoes it.
    pub async fn remove_worker(&self, worker_id: &str) -> Result<(), StoreError> {
        sqlx::query("delete from workers where id = $1 and draining_since is null")
            .bind(worker_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets the workers not heard from within `older_than` that hold no
    /// starting or running job and are not draining; returns their ids.
    pub async fn forget_stale_workers(
        &self,
        older_than: Duration,
    ) -> Result<Vec<String>, StoreError> {
        let ids: Vec<(String,)> = sqlx::query_as(
            "delete from workers w \
             where heartbeat_at <= now() - make_interval(secs => $1) \
               and draining_since is null \
               and not exists (select 1 from jobs \
                 where lease_owner = w.id and state in ('starting', 'running')) \
             returning id",
        )
        .bind(older_than.as_secs_f64())
        .fetch_all(&self.pool)
        .await?;
        Ok(ids.into_iter().map(|(id,)| id).collect())
    }

    /// Whether the worker is draining; false for one not in the registry.
    pub async fn worker_draining(&self, worker_id: &str) -> Result<bool, StoreError> {
        let row: Option<(bool,)> =
            sqlx::query_as("select draining_since is not null from workers where id = $1")
                .bind(worker_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.is_some_and(|(draining,)| draining))
    }

    /// Starts (`true`) or undoes a worker's drain, as one compare-and-set:
    /// a repeated drain keeps the time of the first. Returns the worker as
    /// it stands then, or `None` when there is no such worker.
    pub async fn set_worker_draining(
        &self,
        worker_id: &str,
        draining: bool,
        fresh: Duration,
    ) -> Result<Option<WorkerInfo>, StoreError> {
        let updated: Option<(String,)> = sqlx::query_as(
            "update workers set draining_since = \
               case when $2 then coalesce(draining_since, now()) end \
             where id = $1 returning id",
        )
        .bind(worker_id)
        .bind(draining)
        .fetch_optional(&self.pool)
        .await?;
        if updated.is_none() {
            return Ok(None);
        }
        Ok(self.workers(Some(worker_id), fresh).await?.pop())
    }

    /// Workers heard from within `fresh` that have a free slot and are not
    /// draining, the most free slots first.
    pub async fn free_workers(&self, fresh: Duration) -> Result<Vec<String>, StoreError> {
        let ids: Vec<(String,)> = sqlx::query_as(
            "select id from workers where free_slots > 0 and draining_since is null \
               and heartbeat_at > now() - make_interval(secs => $1) \
             order by free_slots desc, heartbeat_at desc",
        )
        .bind(fresh.as_secs_f64())
        .fetch_all(&self.pool)
        .await?;
        Ok(ids.into_iter().map(|(id,)| id).collect())
    }

    /// Every worker in the registry, most recently heard from first; those
    /// not heard from within `fresh` are `stale`.
    pub async fn list_workers(&self, fresh: Duration) -> Result<Vec<WorkerInfo>, StoreError> {
        self.workers(None, fresh).await
    }

    /// The registry's workers (only `only` when given), with their jobs.
    async fn workers(
        &self,
        only: Option<&str>,
        fresh: Duration,
    ) -> Result<Vec<WorkerInfo>, StoreError> {
        type Row = (
            String,
            i32,
            i32,
            DateTime<Utc>,
            bool,
            Option<String>,
            Option<DateTime<Utc>>,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "select id, slots, free_slots, heartbeat_at, \
               heartbeat_at <= now() - make_interval(secs => $1), version, draining_since \
             from workers where $2::text is null or id = $2 \
             order by heartbeat_at desc, id",
        )
        .bind(fresh.as_secs_f64())
        .bind(only)
        .fetch_all(&self.pool)
        .await?;
        let held: Vec<(String, String)> = sqlx::query_as(
            "select lease_owner, id from jobs \
             where state in ('starting', 'running') and lease_owner is not null \
               and ($1::text is null or lease_owner = $1) \
             order by created_at, id",
        )
        .bind(only)
        .fetch_all(&self.pool)
        .await?;
        let workers = rows
            .into_iter()
            .map(
                |(id, slots, free_slots, heartbeat_at, stale, version, draining_since)| {
                    WorkerInfo {
                        id,
                        slots,
                        free_slots,
                        heartbeat_at,
                        stale,
                        version,
                        draining_since,
                        running_jobs: Vec::new(),
                    }
                },
            )
            .collect();
        Ok(with_running_jobs(workers, held))
    }

    /// The secret the worker of an interactive job shows when it dials back.
    pub async fn attach_endpoint(
        &self,
        job_id: &str,
    ) -> Result<Option<AttachEndpoint>, StoreError> {
        let row: Option<(Option<String>, Option<String>)> =
            sqlx::query_as("select attach_url, attach_secret from jobs where id = $1")
                .bind(job_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.and_then(|(url, secret)| {
            Some(AttachEndpoint {
                url: url?,
                secret: secret?,
            })
        }))
    }

    /// Interactive jobs still queued, oldest first: the line of an API that
    /// restarted, to put back.
    pub async fn queued_interactive_jobs(&self) -> Result<Vec<String>, StoreError> {
        let ids: Vec<(String,)> = sqlx::query_as(
            "select id from jobs where state = 'queued' and interactive_tty is not null \
             order by created_at",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(ids.into_iter().map(|(id,)| id).collect())
    }

    /// Where a queued job stands: its place among the queued jobs of its
    /// kind (queued or interactive) and the capacity of the workers heard
    /// from within `fresh`. `None` when the job is not queued.
    pub async fn queue_place(
        &self,
        job_id: &str,
        fresh: Duration,
    ) -> Result<Option<(i64, Capacity)>, StoreError> {
        let mut places = self.queue_places(&[job_id.to_owned()], fresh).await?;
        Ok(places.remove(job_id))
    }

    /// [`Self::queue_place`] of several jobs, in one query.
    pub async fn queue_places(
        &self,
        job_ids: &[String],
        fresh: Duration,
    ) -> Result<HashMap<String, (i64, Capacity)>, StoreError> {
        if job_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let rows: Vec<QueuePlaceRow> = sqlx::query_as(
            "with live as (select slots, free_slots, draining_since is not null as draining \
                 from workers where heartbeat_at > now() - make_interval(secs => $2)) \
             select j.id, \
               case when j.interactive_tty is null then \
                 (select count(*) from jobs q where q.state = 'queued' \
                    and q.interactive_tty is null and q.app = j.app \
                    and (q.line_at, q.id) < (j.line_at, j.id)) + 1 \
               else \
                 (select count(*) from jobs q where q.state = 'queued' \
                    and q.interactive_tty is not null \
                    and (q.created_at, q.id) < (j.created_at, j.id)) + 1 \
               end as position, \
               (select count(*) from jobs r where r.app = j.app \
                  and r.state in ('starting', 'running')) as app_running, \
               (select a.max_running::bigint from apps a where a.name = j.app) as app_max_running, \
               (select count(*) from jobs t where t.group_id = j.group_id \
                  and t.state in ('starting', 'running')) as group_running, \
               (select g.parallelism::bigint from job_groups g where g.id = j.group_id) \
                 as group_parallelism, \
               (select count(*) from live) as workers, \
               (select count(*) from live where draining) as draining, \
               (select coalesce(sum(slots), 0)::bigint from live where not draining) as slots, \
               (select coalesce(sum(free_slots), 0)::bigint from live where not draining) as free_slots \
             from jobs j where j.id = any($1) and j.state = 'queued'",
        )
        .bind(job_ids)
        .bind(fresh.as_secs_f64())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(QueuePlaceRow::into_place).collect())
    }
}
