//! `jobs attach ID`: back into a running interactive job, after a detach
//! or from another terminal.

use crate::args::{JobIdArgs, OnInterrupt};
use crate::attach::{self, Target, terminal};
use crate::commands::Context;
use crate::error::CliError;

pub async fn attach(context: &Context, args: JobIdArgs) -> Result<u8, CliError> {
    // The job says whether it has a TTY; an unknown id (or another app's
    // job under a bound token) is the API's 404 here. An ended or queued
    // job is refused by the attach route itself, in the API's words.
    let job = context.client.get_job(&args.id).await?;
    let job_tty = job.interactive.is_some_and(|interactive| interactive.tty);
    let target = Target {
        job_id: &job.id,
        tty: job_tty && terminal::is_terminal(libc::STDIN_FILENO),
        // What the job printed before is in `jobs logs`; a full-screen
        // program redraws on the resize sent at connect.
        from_start: false,
        on_interrupt: OnInterrupt::Detach,
    };
    attach::attach(&context.client, target).await
}
