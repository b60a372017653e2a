//! `jobs list [--state S] [--limit N]` (alias `ps`).

use crate::args::ListArgs;
use crate::commands::Context;
use crate::error::CliError;
use crate::output;

pub async fn list(context: &Context, args: ListArgs) -> Result<u8, CliError> {
    let app = context.require_app().await?;
    let list = context
        .client
        .list_jobs(&app, args.state, args.limit)
        .await?;
    output::print_job_list(context.format, &list.jobs)?;
    Ok(0)
}
