//! `jobs status ID` (alias `show`).

use crate::args::JobIdArgs;
use crate::commands::Context;
use crate::error::CliError;
use crate::output;

pub async fn status(context: &Context, args: JobIdArgs) -> Result<u8, CliError> {
    if jobs_core::groups::is_group_id(&args.id) {
        return super::group::status(context, &args.id).await;
    }
    let job = context.client.get_job(&args.id).await?;
    output::print_job(context.format, &job)?;
    Ok(0)
}
