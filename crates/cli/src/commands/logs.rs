//! `jobs logs ID [--timestamps]`: the output stored so far, then exit 0.

use jobs_core::groups::is_group_id;

use crate::args::LogsArgs;
use crate::commands::{Context, group};
use crate::error::CliError;
use crate::job_output;
use crate::output::LogSink;

pub async fn logs(context: &Context, args: LogsArgs) -> Result<u8, CliError> {
    if is_group_id(&args.id) {
        return group::logs(context, &args.id, args.task, args.timestamps).await;
    }
    group::refuse_task_of_a_job(args.task, &args.id)?;
    job_output::print_stored(
        &context.client,
        &args.id,
        args.timestamps,
        &mut LogSink::new(),
    )
    .await?;
    Ok(0)
}
