//! `jobs run`: queue a job and follow it to its end (or print its id), or
//! start it directly and attach to it.

use std::io::IsTerminal;

use jobs_core::wire::Interactive;

use crate::args::{RunArgs, RunPath};
use crate::attach::{self, Target};
use crate::commands::{Context, group};
use crate::error::CliError;
use crate::{job_output, output, uploads};

pub async fn run(context: &Context, args: RunArgs) -> Result<u8, CliError> {
    let path = args.path(std::io::stdin().is_terminal())?;
    let mut request = args.job_create()?;
    let group = args.group_create()?;
    let local_uploads = args.local_uploads()?;
    let app = context.require_app().await?;
    // Uploaded first, on every path: the job takes them when it is created.
    if !local_uploads.is_empty() {
        request.uploads = uploads::upload_all(&context.client, &app, &local_uploads).await?;
    }

    if let Some(mut group) = group {
        // Uploaded once, shared by every task.
        group.job.uploads = request.uploads;
        let detached = path == RunPath::Detached;
        return group::run(context, &app, &group, detached, args.interrupt.on_interrupt).await;
    }

    if let RunPath::Interactive { tty } = path {
        request.interactive = Some(Interactive { tty });
        let job = context.client.create_job(&app, &request).await?;
        let target = Target {
            job_id: &job.id,
            tty,
            from_start: true,
            on_interrupt: args.interrupt.on_interrupt,
        };
        return attach::attach(&context.client, target).await;
    }

    let job = context.client.create_job(&app, &request).await?;
    if path == RunPath::Detached {
        output::print_queued_job(context.format, &job)?;
        return Ok(0);
    }
    job_output::follow_job(&context.client, &job.id, None, args.interrupt.on_interrupt).await
}
