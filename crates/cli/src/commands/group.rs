//! A group of tasks (`jobs run --tasks N`) in `run`, `follow`, `logs`,
//! `status` and `cancel`; `wait` polls it in `wait.rs`.

use std::collections::HashSet;
use std::time::Duration;

use clap::error::ErrorKind;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use jobs_core::JobState;
use jobs_core::exit::EXIT_PLATFORM;
use jobs_core::wire::{Group, GroupCreate, GroupTask};

use crate::args::{OnInterrupt, usage_error};
use crate::backoff::Backoff;
use crate::commands::Context;
use crate::error::CliError;
use crate::interrupt;
use crate::job_output;
use crate::output::{self, LogSink};

/// How many tasks' streams `follow` reads at once; the others wait their
/// turn, losing nothing.
const FOLLOWED_AT_ONCE: usize = 32;
const POLL_FIRST_DELAY: Duration = Duration::from_millis(250);
const POLL_MAX_DELAY: Duration = Duration::from_secs(1);

/// `jobs run --tasks N`: creates the group, then prints its id (`-d`) or
/// follows every task to the group's end.
pub async fn run(
    context: &Context,
    app: &str,
    create: &GroupCreate,
    detached: bool,
    on_interrupt: OnInterrupt,
) -> Result<u8, CliError> {
    let group = context.client.create_group(app, create).await?;
    if detached {
        output::print_queued_group(context.format, &group)?;
        return Ok(0);
    }
    follow_group(context, group, None, on_interrupt).await
}

/// `jobs follow GROUP [--task I]`.
pub async fn follow(
    context: &Context,
    id: &str,
    task: Option<u32>,
    tail: Option<usize>,
    on_interrupt: OnInterrupt,
) -> Result<u8, CliError> {
    let group = context.client.get_group_first(id).await?;
    match task {
        Some(index) => {
            let job_id = &task_of(&group, index)?.job_id;
            job_output::follow_job(&context.client, job_id, tail, on_interrupt).await
        }
        None => follow_group(context, group, tail, on_interrupt).await,
    }
}

/// Prints every task's output, each line behind `[i] `, as the tasks start,
/// until every task ended; then exits as `jobs_core::groups` says.
async fn follow_group(
    context: &Context,
    group: Group,
    tail: Option<usize>,
    on_interrupt: OnInterrupt,
) -> Result<u8, CliError> {
    let id = group.id.clone();
    let following = follow_every_task(context, group, tail);
    let watched = interrupt::watch(&context.client, &id, on_interrupt, following).await;
    interrupt::exit_code(&id, watched)
}

async fn follow_every_task(
    context: &Context,
    mut group: Group,
    tail: Option<usize>,
) -> Result<u8, CliError> {
    let client = &context.client;
    let mut taken: HashSet<u32> = HashSet::new();
    let mut followers = FuturesUnordered::new();
    let mut polls = Backoff::new(POLL_FIRST_DELAY, POLL_MAX_DELAY);
    loop {
        for task in &group.tasks {
            if followers.len() >= FOLLOWED_AT_ONCE {
                break;
            }
            if task.state == JobState::Queued || taken.contains(&task.index) {
                continue;
            }
            taken.insert(task.index);
            // A task that ended without starting has no output; the
            // group's end says what became of it.
            if task.state.is_terminal() && task.started_at.is_none() {
                continue;
            }
            let (job_id, index) = (task.job_id.clone(), task.index);
            followers.push(async move {
                let mut sink = LogSink::for_task(index);
                job_output::print_until_end(client, &job_id, tail, &mut sink)
                    .await
                    .map(drop)
            });
        }
        if followers.is_empty() && group.ended() && taken.len() == group.tasks.len() {
            break;
        }
        tokio::select! {
            Some(followed) = followers.next() => followed?,
            () = tokio::time::sleep(polls.next_delay()) => {}
        }
        match client.get_group(&group.id).await {
            Ok(latest) => group = latest,
            Err(err) if err.is_retryable() => {}
            Err(err) => return Err(err),
        }
    }
    output::print_group_end(&group);
    Ok(group.cli_exit_code().unwrap_or(EXIT_PLATFORM))
}

/// `jobs logs GROUP [--task I]`: every task's stored output in index
/// order, each line behind `[i] `; or one task's, as a job's.
pub async fn logs(
    context: &Context,
    id: &str,
    task: Option<u32>,
    timestamps: bool,
) -> Result<u8, CliError> {
    let group = context.client.get_group(id).await?;
    if let Some(index) = task {
        let job_id = &task_of(&group, index)?.job_id;
        job_output::print_stored(&context.client, job_id, timestamps, &mut LogSink::new()).await?;
        return Ok(0);
    }
    for task in group.tasks.iter().filter(|task| task.started_at.is_some()) {
        let mut sink = LogSink::for_task(task.index);
        job_output::print_stored(&context.client, &task.job_id, timestamps, &mut sink).await?;
        if sink.stdout_closed() {
            break;
        }
    }
    Ok(0)
}

/// `jobs status GROUP`.
pub async fn status(context: &Context, id: &str) -> Result<u8, CliError> {
    let group = context.client.get_group(id).await?;
    output::print_group(context.format, &group)?;
    Ok(0)
}

/// `jobs cancel GROUP`: every task.
pub async fn cancel(context: &Context, id: &str) -> Result<u8, CliError> {
    let group = context.client.cancel_group(id).await?;
    output::print_canceled_group(context.format, &group)?;
    Ok(0)
}

/// Task `index` of the group, or a usage error naming the range.
fn task_of(group: &Group, index: u32) -> Result<&GroupTask, CliError> {
    group
        .tasks
        .iter()
        .find(|task| task.index == index)
        .ok_or_else(|| {
            usage_error(
                ErrorKind::ValueValidation,
                format!(
                    "invalid value '{index}' for '--task <INDEX>': group {} has tasks 0 to {}",
                    group.id,
                    group.tasks.len().saturating_sub(1)
                ),
            )
            .into()
        })
}

/// `--task` picks a task of a group: with a job's id it is a mistake.
pub fn refuse_task_of_a_job(task: Option<u32>, id: &str) -> Result<(), CliError> {
    match task {
        Some(_) => Err(usage_error(
            ErrorKind::ArgumentConflict,
            format!("--task picks a task of a group (grp_…), and {id} is a job's id"),
        )
        .into()),
        None => Ok(()),
    }
}
