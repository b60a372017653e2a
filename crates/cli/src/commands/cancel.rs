//! `jobs cancel ID` (alias `stop`).

use crate::args::JobIdArgs;
use crate::commands::Context;
use crate::error::CliError;
use crate::output;

pub async fn cancel(context: &Context, args: JobIdArgs) -> Result<u8, CliError> {
    if jobs_core::groups::is_group_id(&args.id) {
        return super::group::cancel(context, &args.id).await;
    }
    let job = context.client.cancel_job(&args.id).await?;
    output::print_canceled_job(context.format, &job)?;
    Ok(0)
}
