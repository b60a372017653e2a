//! Per-job log chunks: sequenced, binary, idempotent on `(job_id, seq)`.

use super::PgStore;
use crate::model::{NewChunk, RawOffsets, stream_code, stream_from_code};
use chrono::{DateTime, Utc};
use jobs_core::wire::LogChunk;

use crate::{JOB_EVENTS_CHANNEL, StoreError};

impl PgStore {
    /// Inserts a batch in one statement, then wakes followers.
    ///
    /// A replayed chunk (same job and seq) is ignored, so a retried batch
    /// is harmless.
    pub async fn append_logs(&self, job_id: &str, chunks: &[NewChunk]) -> Result<(), StoreError> {
        if chunks.is_empty() {
            return Ok(());
        }
        let seqs: Vec<i64> = chunks.iter().map(|c| c.seq).collect();
        let streams: Vec<i16> = chunks
            .iter()
            .map(|c| stream_code(c.stream) as i16)
            .collect();
        let times: Vec<DateTime<Utc>> = chunks.iter().map(|c| c.time).collect();
        let data: Vec<&[u8]> = chunks.iter().map(|c| c.data.as_slice()).collect();
        let raw_ends: Vec<Option<i64>> = chunks.iter().map(|c| c.raw_end).collect();
        // The followers' wake-up and the job's count of stored bytes (what
        // the app's storage quota sums; a retried chunk counts once) in the
        // same statement: one commit, so one WAL flush, per batch.
        sqlx::query(
            "with stored as ( \
               insert into job_logs (job_id, seq, stream, time, data, raw_end) \
               select $1, * from unnest($2::bigint[], $3::smallint[], $4::timestamptz[], $5::bytea[], $6::bigint[]) \
               on conflict (job_id, seq) do nothing \
               returning octet_length(data) as bytes \
             ), counted as ( \
               update jobs set output_bytes = output_bytes + (select sum(bytes) from stored) \
               where id = $1 and exists (select 1 from stored) \
             ) select pg_notify($7, $1)",
        )
        .bind(job_id)
        .bind(&seqs)
        .bind(&streams)
        .bind(&times)
        .bind(&data)
        .bind(&raw_ends)
        .bind(JOB_EVENTS_CHANNEL)
        .execute(&self.pool)
        .await?;
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
        let rows: Vec<(i64, i16, DateTime<Utc>, Vec<u8>)> = sqlx::query_as(
            "select seq, stream, time, data from ( \
               select seq, stream, time, data, \
                 sum(octet_length(data)) over (order by seq) - octet_length(data) as before \
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
            .map(|(seq, stream, time, data)| {
                LogChunk::new(seq, stream_from_code(stream.into()), time, &data)
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
