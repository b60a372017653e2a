//! Per-job log chunks: sequenced, binary, idempotent on `(job_id, seq)`.

use jobs_core::wire::LogChunk;

use super::{
    BEGIN_IMMEDIATE, SqliteStore,
    rows::{time, timestamp},
};
use crate::{
    JOB_EVENTS_CHANNEL, StoreError,
    model::{NewChunk, RawOffsets, stream_code, stream_from_code},
};

impl SqliteStore {
    /// Inserts a batch in one transaction (one prepared statement, run once
    /// per chunk), then wakes followers.
    ///
    /// A replayed chunk (same job and seq) is ignored, so a retried batch
    /// is harmless.
    pub async fn append_logs(&self, job_id: &str, chunks: &[NewChunk]) -> Result<(), StoreError> {
        if chunks.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin_with(BEGIN_IMMEDIATE).await?;
        let mut stored_bytes = 0i64;
        for chunk in chunks {
            let stored = sqlx::query(
                "insert into job_logs (job_id, seq, stream, time, data, raw_end) \
                 values ($1, $2, $3, $4, $5, $6) on conflict (job_id, seq) do nothing",
            )
            .bind(job_id)
            .bind(chunk.seq)
            .bind(stream_code(chunk.stream))
            .bind(timestamp(chunk.time))
            .bind(chunk.data.as_slice())
            .bind(chunk.raw_end)
            .execute(&mut *tx)
            .await?;
            if stored.rows_affected() > 0 {
                stored_bytes += chunk.data.len() as i64;
            }
        }
        // What the app's storage quota counts (a retried chunk only once).
        if stored_bytes > 0 {
            sqlx::query("update jobs set output_bytes = output_bytes + $2 where id = $1")
                .bind(job_id)
                .bind(stored_bytes)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.notify(JOB_EVENTS_CHANNEL, job_id);
        Ok(())
    }

    /// Chunks with `seq > after`, in order, up to `max_chunks` chunks or about
    /// `max_bytes` bytes (at least one chunk when there is one).
    pub async fn logs_after(
        &self,
        job_id: &str,
        after: i64,
        max_chunks: i64,
        max_bytes: i64,
    ) -> Result<Vec<LogChunk>, StoreError> {
        let rows: Vec<(i64, i64, i64, Vec<u8>)> = sqlx::query_as(
            "select seq, stream, time, data from ( \
               select seq, stream, time, data, \
                 sum(length(data)) over (order by seq) - length(data) as before \
               from (select * from job_logs where job_id = $1 and seq > $2 \
                     order by seq limit $3) page \
             ) sized where before < $4 order by seq",
        )
        .bind(job_id)
        .bind(after)
        .bind(max_chunks)
        .bind(max_bytes)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(seq, stream, at, data)| {
                LogChunk::new(seq, stream_from_code(stream), time(at), &data)
            })
            .collect())
    }

    /// The highest stored seq of a job, or 0.
    pub async fn last_log_seq(&self, job_id: &str) -> Result<i64, StoreError> {
        let (seq,): (Option<i64>,) =
            sqlx::query_as("select max(seq) from job_logs where job_id = $1")
                .bind(job_id)
                .fetch_one(&self.pool)
                .await?;
        Ok(seq.unwrap_or(0))
    }

    /// Where the stored output of each stream ends, in raw bytes: the
    /// `raw_end` of the stream's last chunk that has one, or 0.
    pub async fn log_raw_offsets(&self, job_id: &str) -> Result<RawOffsets, StoreError> {
        let (stdout, stderr): (Option<i64>, Option<i64>) = sqlx::query_as(
            "select \
               (select raw_end from job_logs where job_id = $1 and stream = 1 \
                  and raw_end is not null order by seq desc limit 1), \
               (select raw_end from job_logs where job_id = $1 and stream = 2 \
                  and raw_end is not null order by seq desc limit 1)",
        )
        .bind(job_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(RawOffsets {
            stdout: stdout.unwrap_or(0),
            stderr: stderr.unwrap_or(0),
        })
    }
}
