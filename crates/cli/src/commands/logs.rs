//! `jobs logs ID [--timestamps]`: the output stored so far, then exit 0.

use jobs_core::groups::is_group_id;

use crate::args::LogsArgs;
use crate::client::ApiClient;
use crate::commands::{Context, group};
use crate::error::CliError;
use crate::line_timestamps::LineTimestamps;
use crate::log_cursor::LogCursor;
use crate::log_follow::chunk_bytes;
use crate::output::LogSink;

pub async fn logs(context: &Context, args: LogsArgs) -> Result<u8, CliError> {
    if is_group_id(&args.id) {
        return group::logs(context, &args.id, args.task, args.timestamps).await;
    }
    group::refuse_task_of_a_job(args.task, &args.id)?;
    print_stored(
        &context.client,
        &args.id,
        args.timestamps,
        &mut LogSink::new(),
    )
    .await?;
    Ok(0)
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
