//! `jobs follow ID [--tail N] [--task I]`: a job's output, or a group's.

use jobs_core::groups::is_group_id;

use crate::args::FollowArgs;
use crate::commands::{Context, group};
use crate::error::CliError;
use crate::job_output;

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
    job_output::follow_job(
        &context.client,
        &args.id,
        args.tail,
        args.interrupt.on_interrupt,
    )
    .await
}
