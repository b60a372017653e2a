//! `jobs wait ID [--timeout DUR]`: block until the job ends, then exit with
//! its exit code.

use jobs_core::exit::EXIT_PLATFORM;

use crate::args::WaitArgs;
use crate::commands::Context;
use crate::error::CliError;
use crate::interrupt;
use crate::job_end;
use crate::job_poll::{Polled, poll_until_ended};
use crate::output;

pub async fn wait(context: &Context, args: WaitArgs) -> Result<u8, CliError> {
    let waiting = wait_for_end(context, &args);
    let watched = interrupt::watch(
        &context.client,
        &args.id,
        args.interrupt.on_interrupt,
        waiting,
    )
    .await;
    interrupt::exit_code(&args.id, watched)
}

async fn wait_for_end(context: &Context, args: &WaitArgs) -> Result<u8, CliError> {
    match poll_until_ended(&context.client, &args.id, args.timeout).await? {
        Polled::Ended(job) => {
            output::print_job_end(&job);
            Ok(job_end::exit_code(&job))
        }
        Polled::GaveUp(job, waited) => {
            output::print_wait_gave_up(&job, waited);
            Ok(EXIT_PLATFORM)
        }
    }
}
