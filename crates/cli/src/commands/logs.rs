//! `jobs logs ID [--timestamps]`: the output stored so far, then exit 0.

use crate::args::LogsArgs;
use crate::commands::Context;
use crate::error::CliError;
use crate::line_timestamps::LineTimestamps;
use crate::log_cursor::LogCursor;
use crate::log_follow::chunk_bytes;
use crate::output::LogSink;

pub async fn logs(context: &Context, args: LogsArgs) -> Result<u8, CliError> {
    let mut sink = LogSink::new();
    let mut timestamps = args.timestamps.then(LineTimestamps::new);
    let mut cursor = LogCursor::from_start();
    loop {
        let after = cursor.last_seq();
        let page = context.client.log_page(&args.id, after).await?;
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
            return Ok(0);
        }
        // Resume after the page's own marker when it is further along than
        // the last chunk, and stop if the API makes no progress at all.
        let next = page.next_after.max(cursor.last_seq());
        if next <= after {
            return Ok(0);
        }
        cursor = LogCursor::after(next);
    }
}
