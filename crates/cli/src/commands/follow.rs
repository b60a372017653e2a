//! `jobs follow ID [--tail N]`, and the following that `jobs run` shares.

use jobs_core::groups::is_group_id;

use crate::args::{FollowArgs, OnInterrupt};
use crate::client::ApiClient;
use crate::commands::{Context, group};
use crate::error::CliError;
use crate::interrupt;
use crate::job_end;
use crate::log_cursor::LogCursor;
use crate::log_follow;
use crate::output::{self, LogSink};
use crate::tail::TailBuffer;

pub async fn follow(context: &Context, args: FollowArgs) -> Result<u8, CliError> {
    if is_group_id(&args.id) {
        return group::follow(
            context,
            &args.id,
            args.task,
            args.tail,
            args.interrupt.on_interrupt,
        )
        .await;
    }
    group::refuse_task_of_a_job(args.task, &args.id)?;
    // Following retries forever while the API may come back. Asking for the
    // job once first turns an unknown id, a refused token or a wrong address
    // into an immediate error instead of an endless retry; an API that
    // restarts under that first request is waited for.
    context.client.get_job_first(&args.id).await?;
    follow_job(context, &args.id, args.tail, args.interrupt.on_interrupt).await
}

/// Prints the job's output (all of it, or its last `tail` lines first) until
/// the job ends, then returns its exit code. SIGINT or SIGTERM detaches and
/// leaves the job running, or cancels it and follows it to its end.
pub async fn follow_job(
    context: &Context,
    job_id: &str,
    tail: Option<usize>,
    on_interrupt: OnInterrupt,
) -> Result<u8, CliError> {
    let following = async {
        let job = print_until_end(&context.client, job_id, tail, &mut LogSink::new()).await?;
        Ok(job_end::exit_code(&job))
    };
    let watched = interrupt::watch(&context.client, job_id, on_interrupt, following).await;
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
