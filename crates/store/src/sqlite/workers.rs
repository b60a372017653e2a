//! The worker registry and direct starts of interactive runs.
//!
//! Each worker writes its free slots here on every slot change and on a
//! heartbeat; the API offers an interactive run to a live worker with a
//! free slot by a NOTIFY on [`JOB_DIRECT_CHANNEL`]. The offer is only a
//! wake-up: the worker still claims the job with the same fenced claim as a
//! queued one, so an offer seen twice, or by two workers, runs it once.

use std::time::Duration;

use jobs_core::wire::{Capacity, WorkerInfo};

use super::{
    SqliteStore, duration_micros,
    rows::{now, time},
};

use crate::{JOB_DIRECT_CHANNEL, StoreError, model::direct_offer};

impl SqliteStore {
    /// Records a worker's slots now, by the database clock.
    pub async fn upsert_worker(
        &self,
        worker_id: &str,
        slots: i32,
        free_slots: i32,
    ) -> Result<(), StoreError> {
        sqlx::query(concat!(
            "insert into workers (id, slots, free_slots, heartbeat_at) values ($1, $2, $3, ",
            now!(),
            ") on conflict (id) do update set slots = $2, free_slots = $3, heartbeat_at = ",
            now!()
        ))
        .bind(worker_id)
        .bind(slots)
        .bind(free_slots)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets a worker that shut down.
    pub async fn remove_worker(&self, worker_id: &str) -> Result<(), StoreError> {
        sqlx::query("delete from workers where id = $1")
            .bind(worker_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Workers heard from within `fresh` that have a free slot, the most
    /// free slots first.
    pub async fn free_workers(&self, fresh: Duration) -> Result<Vec<String>, StoreError> {
        let ids: Vec<(String,)> = sqlx::query_as(concat!(
            "select id from workers where free_slots > 0 and heartbeat_at > ",
            now!(),
            " - $1 order by free_slots desc, heartbeat_at desc"
        ))
        .bind(duration_micros(fresh))
        .fetch_all(&self.pool)
        .await?;
        Ok(ids.into_iter().map(|(id,)| id).collect())
    }

    /// Every worker in the registry, most recently heard from first.
    pub async fn list_workers(&self) -> Result<Vec<WorkerInfo>, StoreError> {
        let rows: Vec<(String, i32, i32, i64)> = sqlx::query_as(
            "select id, slots, free_slots, heartbeat_at from workers \
             order by heartbeat_at desc, id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, slots, free_slots, heartbeat_at)| WorkerInfo {
                id,
                slots,
                free_slots,
                heartbeat_at: time(heartbeat_at),
            })
            .collect())
    }

    /// Offers a queued interactive job to one worker.
    pub async fn offer_job(&self, worker_id: &str, job_id: &str) -> Result<(), StoreError> {
        self.notify(JOB_DIRECT_CHANNEL, &direct_offer(worker_id, job_id));
        Ok(())
    }

    /// The secret the worker of an interactive job shows when it dials back.
    pub async fn attach_secret(&self, job_id: &str) -> Result<Option<String>, StoreError> {
        let row: Option<(Option<String>,)> =
            sqlx::query_as("select attach_secret from jobs where id = $1")
                .bind(job_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.and_then(|(secret,)| secret))
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
        let fresh_micros = duration_micros(fresh);
        let row: Option<(i64, i64, i64, i64)> = sqlx::query_as(concat!(
            "with live as (select slots, free_slots from workers \
                 where heartbeat_at > ",
            now!(),
            " - $2) \
             select \
               (select count(*) from jobs q where q.state = 'queued' \
                  and (q.interactive_tty is null) = (j.interactive_tty is null) \
                  and (q.created_at, q.id) < (j.created_at, j.id)) + 1, \
               (select count(*) from live), \
               (select coalesce(sum(slots), 0) from live), \
               (select coalesce(sum(free_slots), 0) from live) \
             from jobs j where j.id = $1 and j.state = 'queued'"
        ))
        .bind(job_id)
        .bind(fresh_micros)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(position, workers, slots, free_slots)| {
            (
                position,
                Capacity {
                    workers,
                    slots,
                    free_slots,
                },
            )
        }))
    }
}
