//! A job's output on the terminal: followed to the job's end (`run`,
//! `follow`, and each task of a group), or as stored so far (`logs`).

use crate::args::OnInterrupt;
use crate::client::ApiClient;
use crate::error::CliError;
use crate::interrupt;
use crate::job_end;
use crate::line_timestamps::LineTimestamps;
use crate::log_cursor::LogCursor;
use crate::log_follow::{self, chunk_bytes};
use crate::output::{self, LogSink};
use crate::tail::TailBuffer;

/// Prints the job's output (all of it, or its last `tail` lines first) until
/// the job ends, then returns its exit code. SIGINT or SIGTERM detaches and
/// leaves the job running, or cancels it and follows it to its end.
pub async fn follow_job(
    client: &ApiClient,
    job_id: &str,
    tail: Option<usize>,
    on_interrupt: OnInterrupt,
) -> Result<u8, CliError> {
    let following = async {
        let job = print_until_end(client, job_id, tail, &mut LogSink::new()).await?;
        Ok(job_end::exit_code(&job))
    };
    let watched = interrupt::watch(client, job_id, on_interrupt, following).await;
    interrupt::exit_code(job_id, watched)
}

/// Prints the job's output through `sink` (all of it, or its last `tail`
/// lines first) until the job ends, then why it ended when its exit code
/// does not say; returns the ended job.
pub async fn print_until_end(
    client: &ApiClient,
    job_id: &str,
    tail: Option<usize>,
    sink: &mut LogSink,
) -> Result<jobs_core::wire::Job, CliError> {
    let mut cursor = match tail {
        Some(lines) => print_tail(client, job_id, lines, sink).await?,
        None => LogCursor::from_start(),
    };
    let job = log_follow::follow_until_end(client, job_id, &mut cursor, sink).await?;
    sink.finish()?;
    output::print_job_end(&job);
    Ok(job)
}

/// Prints the last `lines` lines of the output stored so far and returns
/// the cursor just after the last stored chunk, where following resumes.
async fn print_tail(
    client: &ApiClient,
    job_id: &str,
    lines: usize,
    sink: &mut LogSink,
) -> Result<LogCursor, CliError> {
    let mut tail = TailBuffer::new(lines);
    let mut last_seq = 0;
    let mut after = 0;
    loop {
        let page = client.log_page(job_id, after).await?;
        for chunk in &page.chunks {
            tail.push(chunk.stream, log_follow::chunk_bytes(chunk)?);
            last_seq = last_seq.max(chunk.seq);
        }
        // A page that does not move forward would loop forever; the stream
        // that follows picks up whatever is left.
        if !page.more || page.next_after <= after {
            break;
        }
        after = page.next_after;
    }
    for (stream, bytes) in tail.into_tail() {
        sink.write(stream, &bytes)?;
    }
    Ok(LogCursor::after(last_seq))
}

/// Prints the output the job stored so far through `sink`, each line after
/// its time with `timestamps`.
pub async fn print_stored(
    client: &ApiClient,
    job_id: &str,
    timestamps: bool,
    sink: &mut LogSink,
) -> Result<(), CliError> {
    let mut timestamps = timestamps.then(LineTimestamps::new);
    let mut cursor = LogCursor::from_start();
    loop {
        let after = cursor.last_seq();
        let page = client.log_page(job_id, after).await?;
        for chunk in &page.chunks {
            if !cursor.admit(chunk.seq) {
                continue;
            }
            let bytes = chunk_bytes(chunk)?;
            let bytes = match timestamps.as_mut() {
                Some(timestamps) => timestamps.prefix(chunk.stream, &chunk.time, &bytes),
                None => bytes,
            };
            sink.write(chunk.stream, &bytes)?;
        }
        // A reader that closed our stdout (`jobs logs ID | head`) has seen
        // enough; fetching the rest would be wasted.
        if sink.stdout_closed() || !page.more {
            return sink.finish();
        }
        // Resume after the page's own marker when it is further along than
        // the last chunk, and stop if the API makes no progress at all.
        let next = page.next_after.max(cursor.last_seq());
        if next <= after {
            return sink.finish();
        }
        cursor = LogCursor::after(next);
    }
}
