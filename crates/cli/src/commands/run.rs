//! `jobs run`: queue a job, then follow it to its end (or print its id).

use std::io::IsTerminal;

use crate::args::RunArgs;
use crate::commands::{Context, follow};
use crate::error::CliError;
use crate::{output, uploads};

pub async fn run(context: &Context, args: RunArgs) -> Result<u8, CliError> {
    if let Some(option) = args.unsupported_option() {
        return Err(CliError::NotSupportedYet { option });
    }
    let mut request = args.job_create()?;
    let local_uploads = args.local_uploads()?;
    let app = context.require_app().await?;

    // At a terminal the contract promises a direct attach. Until that path
    // exists, say so once and take the queued path, which behaves the same
    // for a command that reads no input.
    if !args.detached && !args.batch && std::io::stdin().is_terminal() {
        output::warn_interactive_unavailable();
    }

    if !local_uploads.is_empty() {
        request.uploads = uploads::upload_all(&context.client, &app, &local_uploads).await?;
    }
    let job = context.client.create_job(&app, &request).await?;
    if args.detached {
        output::print_queued_job(context.format, &job)?;
        return Ok(0);
    }
    follow::follow_job(context, &job.id, None).await
}
