//! `jobs workers [list]` and `jobs workers drain [--undo] ID`.

use crate::args::{WorkersArgs, WorkersCommand};
use crate::commands::Context;
use crate::error::CliError;
use crate::output;

pub async fn workers(context: &Context, args: WorkersArgs) -> Result<u8, CliError> {
    let client = &context.client;
    match args.command.unwrap_or(WorkersCommand::List) {
        WorkersCommand::List => {
            let list = client.list_workers().await?;
            output::print_worker_list(context.format, &list.workers)?;
        }
        WorkersCommand::Drain(drain) => {
            let worker = client.set_worker_draining(&drain.id, !drain.undo).await?;
            output::print_worker_drain(context.format, &worker)?;
        }
    }
    Ok(0)
}
