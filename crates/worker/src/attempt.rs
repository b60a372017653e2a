//! One attempt of one job: from a fresh claim to its terminal state.

use std::{collections::HashMap, sync::Arc, time::Duration};

use jobs_core::JobState;
use jobs_store::{ClaimedJob, Fence, Heartbeat, Store};
use tracing::Instrument;

use crate::{
    artifacts, capture, interactive,
    log_pump::{self, OutputRules},
    runtime::{
        ContainerExit, ContainerSpec, LABEL_ATTEMPT, LABEL_JOB_ID, LABEL_WORKER_ID, StartError,
        disk::LABEL_SIZE, warm,
    },
    stop_signal::{StopReason, StopSignal},
    uploads,
    worker::WorkerContext,
};

/// The end of an attempt, as the store records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ending {
    state: JobState,
    exit_code: Option<i32>,
    reason: Option<String>,
}

impl Ending {
    pub(crate) fn failed(exit_code: Option<i32>, reason: String) -> Self {
        Self {
            state: JobState::Failed,
            exit_code,
            reason: Some(reason),
        }
    }
}

/// What an attempt's body hands back to [`supervise`]: its end (`None` when
/// the fence was lost), and the container to remove once that end is
/// recorded. The removal comes last: a worker that dies between the two
/// leaves a container the next one can still read the end from.
pub(crate) struct Outcome {
    pub(crate) ending: Option<Ending>,
    pub(crate) container_id: Option<String>,
}

impl Outcome {
    /// An end with no container to remove (it was never created).
    pub(crate) fn without_container(ending: Option<Ending>) -> Self {
        Self {
            ending,
            container_id: None,
        }
    }
}

/// Runs a claimed job to its end and records the outcome, fenced.
pub async fn run(context: Arc<WorkerContext>, claimed: ClaimedJob) {
    let context = &*context;
    let fence = claimed.fence.clone();
    context
        .metrics
        .queued_for(claimed.job.priority, claimed.queued_for);
    supervise(context, &fence, Lease::JustClaimed, |stop| async move {
        drive(context, &claimed, &stop).await
    })
    .await;
}

/// Takes over the container of a job this worker held before it restarted:
/// starts it if the dead worker had not (`started`), follows its output,
/// waits for its end, and records its exit code. `timeout` is what is left
/// of the job's timeout; `rules` apply to the output, as in [`run`];
/// `stopping` is the stop the dead worker had begun (a timeout, a cancel),
/// if any. A `warm` container counts as not `started`: its job is sent to
/// it again, which its shim ignores if it had it already.
#[allow(clippy::too_many_arguments)]
pub async fn resume(
    context: Arc<WorkerContext>,
    fence: Fence,
    container_id: String,
    started: bool,
    warm: bool,
    timeout: Duration,
    rules: OutputRules,
    stopping: Option<StopReason>,
) {
    let context = &*context;
    let job_fence = fence.clone();
    supervise(context, &fence, Lease::Inherited, |stop| async move {
        // A held job's claim is not at hand: its command and artifact
        // paths are read back.
        let job = retry_until_ok("reading the job", || {
            context.store.get_job(&job_fence.job_id)
        })
        .await;
        // The stop the dead worker had begun goes on: the container is
        // stopped if it still runs, and the end is recorded as that stop's.
        if let Some(reason) = stopping {
            stop.request(reason);
        }
        if !started {
            let not_started = if stop.reason().is_some() {
                // Stopped before it ever started: nothing ran.
                Some(ending_for_stop(stop.reason(), None, timeout))
            } else {
                start_taken_over(context, &container_id, &job, warm)
                    .await
                    .err()
                    .map(|error| Some(start_failure(context, error)))
            };
            if let Some(ending) = not_started {
                return Outcome {
                    ending,
                    container_id: Some(container_id),
                };
            }
        }
        // Its run time is counted from the takeover.
        stop.mark_started();
        // A worker that died between the container's start and recording
        // it left the job `starting`: it runs (a no-op for a running job).
        retry_until_ok("marking the job running", || {
            context.store.mark_running(&job_fence)
        })
        .await;
        // An interactive run under the shim is bridged to its API again:
        // its stdin goes on where the shim stands.
        let shim = context
            .runtime
            .has_shim(&container_id)
            .await
            .unwrap_or(false);
        let (live, bridging) = if job.interactive.is_some() && shim {
            let (live, receiver) = interactive::live_channel();
            let bridging =
                interactive::bridge_taken_over(context, &job_fence, &container_id, &stop, receiver)
                    .await;
            (bridging.is_some().then_some(live), bridging)
        } else {
            (None, None)
        };
        let ending = follow_container(
            context,
            &job_fence,
            &stop,
            &container_id,
            timeout,
            rules,
            shim,
            live,
        )
        .await;
        if let Some(bridging) = bridging {
            interactive::finish_bridge(bridging).await;
        }
        if ending.is_some() {
            artifacts::collect_artifacts(context, &job_fence, &job.artifact_paths, &container_id)
                .await;
        }
        Outcome {
            ending,
            container_id: Some(container_id),
        }
    })
    .await;
}

/// Starts the container a dead worker had recorded the start of but not
/// started (or whose start it had not seen through). Only under the shim:
/// its output is read back from the shim's log, so nothing written before
/// the follow begins is missed.
async fn start_taken_over(
    context: &WorkerContext,
    container_id: &str,
    job: &jobs_core::wire::Job,
    warm: bool,
) -> Result<(), StartError> {
    tracing::info!(
        container_id,
        "starting the container a dead worker was about to start"
    );
    context.runtime.start(container_id, &job.command).await?;
    if warm {
        send_spec_again(context, container_id, job)
            .await
            .map_err(|error| {
                StartError::Other(format!(
                    "sending the job to its warm container failed: {error}"
                ))
            })?;
    }
    Ok(())
}

/// How long sending a taken-over warm container its job may take.
const SEND_SPEC_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends a taken-over warm container its job, rebuilt from the store as
/// the claim built it (the app's env under the job's), should the dead
/// worker have died before sending it. If it had, the shim has its job
/// and reads its stdin no more: this does nothing.
async fn send_spec_again(
    context: &WorkerContext,
    container_id: &str,
    job: &jobs_core::wire::Job,
) -> anyhow::Result<()> {
    let app = context.store.get_app(&job.app).await?;
    let mut env = app.env;
    env.extend(job.env.clone());
    let env: Vec<(String, String)> = env.into_iter().collect();
    let command = context
        .runtime
        .container_image_command(container_id)
        .await?
        .with(&job.command);
    let message = crate::shim::spec_message(&env, &job.artifact_paths, job.interactive, command)?;
    let (_output, mut input) = context.runtime.attach_stdin(container_id).await?;
    tokio::time::timeout(SEND_SPEC_TIMEOUT, warm::send_spec(&mut input, &message)).await??;
    Ok(())
}

/// Where the lease of an attempt stands when its supervision begins.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Lease {
    /// Set by the claim a moment ago: the first renewal is due a third of
    /// the lease later (renewing at once would only cost every job a write).
    JustClaimed,
    /// Left by a worker that died: renewed at once, since it may be close
    /// to its end.
    Inherited,
}

/// Heartbeats while `body` runs, makes the attempt stoppable by job id,
/// records the ending that `body` returns, then removes its container.
pub(crate) async fn supervise<Body, Fut>(
    context: &WorkerContext,
    fence: &Fence,
    lease: Lease,
    body: Body,
) where
    Body: FnOnce(Arc<StopSignal>) -> Fut,
    Fut: std::future::Future<Output = Outcome>,
{
    // Every log line of the attempt names its job, as the API's lines of
    // the same job do, so one job can be followed across both.
    let span = tracing::info_span!("job", job_id = %fence.job_id, attempt = fence.attempt);
    supervised(context, fence, lease, body)
        .instrument(span)
        .await;
}

async fn supervised<Body, Fut>(context: &WorkerContext, fence: &Fence, lease: Lease, body: Body)
where
    Body: FnOnce(Arc<StopSignal>) -> Fut,
    Fut: std::future::Future<Output = Outcome>,
{
    let stop = context.attempts.register(&fence.job_id);
    let metrics = &context.metrics;
    metrics.slots_used.inc();
    let heartbeat = tokio::spawn(heartbeat_loop(
        context.store.clone(),
        fence.clone(),
        context.config.lease,
        lease,
        stop.clone(),
        metrics.leases_lost.clone(),
    ));
    let outcome = body(stop.clone()).await;
    heartbeat.abort();
    context.attempts.unregister(&fence.job_id);
    if let Some(ending) = &outcome.ending
        && record(&context.store, fence, ending).await
    {
        metrics.ended(ending.state, stop.ran_for());
    }
    metrics.slots_used.dec();
    if let Some(container_id) = &outcome.container_id {
        remove_container(context, fence, container_id).await;
    }
}

/// Creates, starts and follows the container. Returns `None` when the
/// fence was lost and the job belongs to someone else.
async fn drive(context: &WorkerContext, claimed: &ClaimedJob, stop: &StopSignal) -> Outcome {
    let spec = container_spec(context, claimed);
    let (container_id, warm_spec) = match take_warm(context, claimed, &spec).await {
        Some((id, message)) => (id, Some(message)),
        None => match context.runtime.create(&spec).await {
            Ok(id) => (id, None),
            Err(error) => return Outcome::without_container(Some(start_failure(context, error))),
        },
    };
    let ending = run_with_files(context, claimed, stop, &container_id, || {
        start_and_follow(context, claimed, stop, &container_id, warm_spec.as_deref())
    })
    .await;
    Outcome {
        ending,
        container_id: Some(container_id),
    }
}

/// A warm container of the pool given to this job (renamed after it), and
/// the spec that runs the job in it, if the pool has one for it.
pub(crate) async fn take_warm(
    context: &WorkerContext,
    claimed: &ClaimedJob,
    spec: &ContainerSpec,
) -> Option<(String, Vec<u8>)> {
    let warm = context
        .warm_pool
        .take(context, &claimed.job.app, claimed.size, spec)
        .await?;
    match context.runtime.bind_warm(&warm, spec).await {
        Ok(message) => Some((warm.id, message)),
        Err(error) => {
            tracing::warn!(%error, "giving a warm container to the job failed; making one of its own");
            remove_container(context, &claimed.fence, &warm.id).await;
            None
        }
    }
}

/// Runs a created container with `start_and_follow`, with the job's files
/// around it: the uploads copied in first, the artifacts collected after.
/// The caller removes the container ([`Outcome`]), after the end is recorded.
pub(crate) async fn run_with_files<Fut>(
    context: &WorkerContext,
    claimed: &ClaimedJob,
    stop: &StopSignal,
    container_id: &str,
    start_and_follow: impl FnOnce() -> Fut,
) -> Option<Ending>
where
    Fut: std::future::Future<Output = Option<Ending>>,
{
    match copy_uploads(context, claimed, stop, container_id).await {
        Err(ending) => ending,
        Ok(()) => {
            let ending = start_and_follow().await;
            // Before the terminal state: a job seen as ended has its
            // artifacts complete. Not when the lease was lost (`None`):
            // the job is someone else's then.
            if ending.is_some() {
                artifacts::collect_artifacts(
                    context,
                    &claimed.fence,
                    &claimed.job.artifact_paths,
                    container_id,
                )
                .await;
            }
            ending
        }
    }
}

/// Copies the uploads into the created container; a failed copy fails the
/// job with its reason, and a stop (cancel, shutdown) interrupts it.
async fn copy_uploads(
    context: &WorkerContext,
    claimed: &ClaimedJob,
    stop: &StopSignal,
    container_id: &str,
) -> Result<(), Option<Ending>> {
    if claimed.job.uploads.is_empty() {
        return Ok(());
    }
    tokio::select! {
        copied = uploads::prepare_uploads(context, claimed, container_id) => {
            copied.map_err(|reason| Some(Ending::failed(None, reason)))
        }
        () = stop.requested() => Err(ending_for_stop(stop.reason(), None, claimed.timeout)),
    }
}

/// A created container's output, attached before its start so that no
/// byte written at start-up is missed; and a warm one's stdin, where its
/// job goes.
pub(crate) struct Attached {
    pub output: crate::runtime::OutputStream,
    pub input: Option<crate::runtime::ContainerInput>,
}

pub(crate) async fn attach_before_start(
    context: &WorkerContext,
    container_id: &str,
    warm_spec: Option<&[u8]>,
) -> Result<Attached, Ending> {
    let attached = match warm_spec {
        None => context
            .runtime
            .attach_output(container_id)
            .await
            .map(|output| Attached {
                output,
                input: None,
            }),
        Some(_) => context
            .runtime
            .attach_stdin(container_id)
            .await
            .map(|(output, input)| Attached {
                output,
                input: Some(input),
            }),
    };
    attached.map_err(attach_failure)
}

/// Starts a created container, or sends a warm one (attached with its
/// stdin as `input`) its job's `warm_spec`.
pub(crate) async fn start_or_send_spec(
    context: &WorkerContext,
    container_id: &str,
    command: &[String],
    warm_spec: Option<&[u8]>,
    input: Option<crate::runtime::ContainerInput>,
) -> Result<(), StartError> {
    match (warm_spec, input) {
        (Some(message), Some(mut input)) => {
            warm::send_spec(&mut input, message).await.map_err(|error| {
                StartError::Other(format!(
                    "sending the job to its warm container failed: {error}"
                ))
            })
        }
        _ => context.runtime.start(container_id, command).await,
    }
}

/// Starts the created container (or, for a warm one, sends it the job's
/// `warm_spec`) and follows it to its end.
async fn start_and_follow(
    context: &WorkerContext,
    claimed: &ClaimedJob,
    stop: &StopSignal,
    container_id: &str,
    warm_spec: Option<&[u8]>,
) -> Option<Ending> {
    let fence = &claimed.fence;
    if stop.reason().is_some() {
        return ending_for_stop(stop.reason(), None, claimed.timeout);
    }
    let rules = OutputRules::new(&claimed.secret_values, claimed.max_output);
    let attached = match attach_before_start(context, container_id, warm_spec).await {
        Ok(attached) => attached,
        Err(ending) => return Some(ending),
    };
    let pump = pump_output(
        context,
        fence,
        attached.output,
        rules.clone(),
        claimed.last_log_seq,
    );
    if !record_start(context, fence).await {
        pump.abort();
        return None;
    }
    let started = start_or_send_spec(
        context,
        container_id,
        &claimed.job.command,
        warm_spec,
        attached.input,
    )
    .await;
    if let Err(error) = started {
        pump.abort();
        return Some(start_failure(context, error));
    }
    let latency = stop.mark_started();
    context.metrics.start_latency.observe(latency.as_secs_f64());
    // Retried through a database outage: a job left `starting` with its
    // container running would look unstarted to a restarted worker.
    if !retry_until_ok("marking the job running", || {
        context.store.mark_running(fence)
    })
    .await
    {
        stop.request(StopReason::LeaseLost);
    }
    let exit = wait_or_stop(context, fence, stop, container_id, claimed.timeout).await;
    let _ = pump.await;
    if exit.as_ref().is_ok_and(|exit| exit.engine_lost)
        && context
            .runtime
            .has_shim(container_id)
            .await
            .unwrap_or(false)
    {
        // The attach broke with the engine: what it missed is in the
        // shim's log.
        let _ = recover_output(context, fence, container_id, rules, None)
            .await
            .await;
    }
    let mut ending = ending_of(stop, exit, claimed.timeout);
    if let Some(ending) = ending.as_mut().filter(|ending| {
        ending.state == JobState::Failed && matches!(ending.exit_code, Some(126 | 127))
    }) && let Some(reason) = capture::exec_failure(&context.runtime, container_id).await
    {
        // Under the shim, Docker no longer sees a command it cannot run.
        ending.reason = Some(reason);
    }
    ending
}

#[allow(clippy::too_many_arguments)]
async fn follow_container(
    context: &WorkerContext,
    fence: &Fence,
    stop: &StopSignal,
    container_id: &str,
    timeout: Duration,
    rules: OutputRules,
    shim: bool,
    live: Option<tokio::sync::mpsc::Sender<jobs_store::NewChunk>>,
) -> Option<Ending> {
    // Docker holds an attach to a stopped container open until the
    // container starts again, so a container that already ended is only
    // inspected.
    let running = match context.runtime.is_running(container_id).await {
        Ok(running) => running,
        Err(error) => {
            return Some(Ending::failed(
                None,
                format!("inspecting the container failed: {error}"),
            ));
        }
    };
    if shim {
        // The shim kept every byte: what was not stored is read back from
        // its log, live while the container runs.
        let pump = recover_output(context, fence, container_id, rules, live).await;
        return finish_following(context, fence, stop, container_id, pump, timeout, None).await;
    }
    if !running {
        return ending_of(stop, context.runtime.wait(container_id).await, timeout);
    }
    let pump = match start_pump(context, fence, container_id, rules).await {
        Ok(pump) => pump,
        Err(ending) => return Some(ending),
    };
    // If the container ended between the inspect and the attach, the
    // attach never ends: the pump gets a bounded time to drain instead.
    finish_following(
        context,
        fence,
        stop,
        container_id,
        pump,
        timeout,
        Some(RESUMED_PUMP_DRAIN),
    )
    .await
}

/// How long the pump of a taken-over container may drain after its end.
const RESUMED_PUMP_DRAIN: Duration = Duration::from_secs(5);

pub(crate) type PumpTask = tokio::task::JoinHandle<log_pump::PumpReport>;

/// Attaches to the container's output and starts storing it, under
/// `rules`, after the job's last stored chunk.
async fn start_pump(
    context: &WorkerContext,
    fence: &Fence,
    container_id: &str,
    rules: OutputRules,
) -> Result<PumpTask, Ending> {
    let output = context
        .runtime
        .attach_output(container_id)
        .await
        .map_err(attach_failure)?;
    let last_seq = retry_until_ok("reading the last log sequence", || {
        context.store.last_log_seq(&fence.job_id)
    })
    .await;
    Ok(pump_output(context, fence, output, rules, last_seq))
}

fn attach_failure(error: anyhow::Error) -> Ending {
    Ending::failed(None, format!("attaching to the container failed: {error}"))
}

/// Stores `output`, under `rules`, after the job's chunk `last_seq`.
fn pump_output(
    context: &WorkerContext,
    fence: &Fence,
    output: crate::runtime::OutputStream,
    rules: OutputRules,
    last_seq: i64,
) -> PumpTask {
    tokio::spawn(log_pump::pump(
        context.store.clone(),
        fence.job_id.clone(),
        last_seq,
        rules,
        output,
        log_pump::PumpOptions::default(),
    ))
}

/// Stores what a shim-run container wrote after the job's stored output:
/// from its output log ([`capture`]), to its end; and sends it to `live`
/// (an interactive run's client) as it is cut.
async fn recover_output(
    context: &WorkerContext,
    fence: &Fence,
    container_id: &str,
    rules: OutputRules,
    live: Option<tokio::sync::mpsc::Sender<jobs_store::NewChunk>>,
) -> PumpTask {
    let job_id = &fence.job_id;
    let last_seq = retry_until_ok("reading the last log sequence", || {
        context.store.last_log_seq(job_id)
    })
    .await;
    let from = retry_until_ok("reading where the stored output ends", || {
        context.store.log_raw_offsets(job_id)
    })
    .await;
    tracing::info!(job_id, ?from, "reading back the output written meanwhile");
    let (sender, receiver) = tokio::sync::mpsc::channel(RECOVER_QUEUE);
    tokio::spawn(capture::recover(
        context.runtime.clone(),
        container_id.to_owned(),
        from,
        sender,
    ));
    let pieces: log_pump::Pieces =
        Box::pin(futures::stream::unfold(receiver, |mut receiver| async {
            receiver.recv().await.map(|piece| (piece, receiver))
        }));
    tokio::spawn(log_pump::pump_pieces(
        context.store.clone(),
        job_id.clone(),
        last_seq,
        from,
        rules,
        pieces,
        match live {
            // A client waits on every byte.
            Some(live) => log_pump::PumpOptions {
                flush_interval: Duration::ZERO,
                live: Some(live),
            },
            None => log_pump::PumpOptions::default(),
        },
    ))
}

/// Pieces read back from an output log that may wait for the pump.
const RECOVER_QUEUE: usize = 16;

/// Waits for the end (or stops the container), then for the pump.
pub(crate) async fn finish_following(
    context: &WorkerContext,
    fence: &Fence,
    stop: &StopSignal,
    container_id: &str,
    mut pump: PumpTask,
    timeout: Duration,
    drain_limit: Option<Duration>,
) -> Option<Ending> {
    let exit = wait_or_stop(context, fence, stop, container_id, timeout).await;
    // Every byte is stored before the terminal state, so that a follower
    // that sees the end has already seen all the output.
    match drain_limit {
        None => {
            let _ = pump.await;
        }
        Some(limit) => {
            if tokio::time::timeout(limit, &mut pump).await.is_err() {
                tracing::warn!(
                    container_id,
                    "the output of a taken-over container did not end; stopped reading"
                );
                pump.abort();
            }
        }
    }
    ending_of(stop, exit, timeout)
}

/// The ending of a container that has stopped, or of a failed wait.
fn ending_of(
    stop: &StopSignal,
    exit: anyhow::Result<ContainerExit>,
    timeout: Duration,
) -> Option<Ending> {
    let exit = match exit {
        Ok(exit) => exit,
        Err(error) => {
            // The end can never be known: `lost`, with the reason, rather
            // than an invented exit code.
            if let Some(lost) = error.downcast_ref::<crate::runtime::EngineLost>() {
                return Some(Ending {
                    state: JobState::Lost,
                    exit_code: None,
                    reason: Some(lost.to_string()),
                });
            }
            return Some(Ending::failed(
                None,
                format!("waiting for the container failed: {error}"),
            ));
        }
    };
    match stop.reason() {
        Some(reason) => ending_for_stop(Some(reason), Some(exit), timeout),
        None => Some(ending_for_exit(exit)),
    }
}

pub(crate) async fn remove_container(context: &WorkerContext, fence: &Fence, container_id: &str) {
    if let Err(error) = context.runtime.remove(container_id).await {
        tracing::warn!(job_id = fence.job_id, %error, "removing the container failed");
    }
}

/// Waits for the container, stopping it (SIGTERM, then SIGKILL after the
/// grace period) on a timeout, a cancel, a lost lease or a shutdown.
async fn wait_or_stop(
    context: &WorkerContext,
    fence: &Fence,
    stop: &StopSignal,
    container_id: &str,
    timeout: Duration,
) -> anyhow::Result<ContainerExit> {
    let waiting = context.runtime.wait(container_id);
    tokio::pin!(waiting);
    tokio::select! {
        exit = &mut waiting => return exit,
        () = stop.requested() => {}
        reason = crate::disk_cap::over_cap(&context.runtime, container_id) => {
            stop.request(reason);
        }
        () = tokio::time::sleep(timeout) => {
            stop.request(StopReason::TimedOut);
            // Before the signal: if this worker dies while the command winds
            // down, the one that takes the container over must record the
            // timeout, not the exit status of the SIGTERM. One try: during a
            // database outage the stop must not wait for it.
            if let Err(error) = context.store.record_stop(fence, TIMED_OUT_INTENT).await {
                tracing::warn!(%error, "recording the timeout before the stop failed");
            }
        }
    }
    if matches!(stop.reason(), Some(StopReason::DiskLimit { .. })) {
        // No grace: the command would go on writing through it.
        context.runtime.kill(container_id, "SIGKILL").await?;
        return waiting.await;
    }
    if context
        .runtime
        .has_shim(container_id)
        .await
        .unwrap_or(false)
    {
        return stop_under_shim(context, container_id, waiting).await;
    }
    context
        .runtime
        .stop(container_id, context.config.stop_grace)
        .await?;
    waiting.await
}

/// Records, before the engine is asked to start the container, that the
/// command may run from now on, so that no one queues the job again if this
/// worker dies. `false` when the fence was lost: the job is someone else's.
pub(crate) async fn record_start(context: &WorkerContext, fence: &Fence) -> bool {
    retry_until_ok("recording the start", || context.store.record_start(fence)).await
}

/// The stop intent a timeout records (see [`jobs_store::Store::record_stop`]).
const TIMED_OUT_INTENT: &str = "timed_out";

/// The stop a taken-over job was under when its worker died, from the
/// intent its store row holds.
pub(crate) fn stop_from_intent(intent: Option<&str>) -> Option<StopReason> {
    match intent? {
        TIMED_OUT_INTENT => Some(StopReason::TimedOut),
        "canceled" => Some(StopReason::Canceled),
        _ => None,
    }
}

/// How long the shim may take, once told the grace is over, to kill the
/// command and copy its artifacts out of /tmp (at most /tmp's cap).
const SHIM_FINISH_GRACE: Duration = Duration::from_secs(60);

/// Stops a container that runs under the shim: SIGTERM to the command,
/// then after the grace the shim's own signal (it SIGKILLs the command and
/// copies the artifacts), and SIGKILL to the container only as a last
/// resort.
async fn stop_under_shim(
    context: &WorkerContext,
    container_id: &str,
    mut waiting: std::pin::Pin<
        &mut impl std::future::Future<Output = anyhow::Result<ContainerExit>>,
    >,
) -> anyhow::Result<ContainerExit> {
    let runtime = &context.runtime;
    runtime.kill(container_id, "SIGTERM").await?;
    if let Ok(exit) = tokio::time::timeout(context.config.stop_grace, &mut waiting).await {
        return exit;
    }
    runtime.kill(container_id, crate::shim::KILL_SIGNAL).await?;
    if let Ok(exit) = tokio::time::timeout(SHIM_FINISH_GRACE, &mut waiting).await {
        return exit;
    }
    tracing::warn!(container_id, "the shim did not end; killing the container");
    runtime.kill(container_id, "SIGKILL").await?;
    waiting.await
}

/// Retries a store operation through outages: the attempt cannot go on
/// without its answer, and giving up would lose the job's logs or code.
pub(crate) async fn retry_until_ok<T, Fut>(what: &str, mut operation: impl FnMut() -> Fut) -> T
where
    Fut: std::future::Future<Output = Result<T, jobs_store::StoreError>>,
{
    let mut backoff = Duration::from_millis(100);
    loop {
        match operation().await {
            Ok(value) => return value,
            Err(error) => {
                tracing::warn!(%error, "{what} failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

pub(crate) fn container_spec(context: &WorkerContext, claimed: &ClaimedJob) -> ContainerSpec {
    let fence = &claimed.fence;
    ContainerSpec {
        name: crate::runtime::warm::container_name(&fence.job_id, fence.attempt),
        image: claimed.image.clone(),
        command: claimed.job.command.clone(),
        env: claimed.env.clone().into_iter().collect(),
        labels: HashMap::from([
            (LABEL_JOB_ID.to_string(), fence.job_id.clone()),
            (LABEL_ATTEMPT.to_string(), fence.attempt.to_string()),
            (LABEL_WORKER_ID.to_string(), fence.worker_id.clone()),
            (LABEL_SIZE.to_string(), claimed.size.to_string()),
        ]),
        limits: context.config.limits_for(claimed.size),
        hardening: claimed.hardening.clone(),
        network: context
            .runtime
            .network_mode(&claimed.job.app, &claimed.hardening),
        interactive: claimed.job.interactive,
        uploads: !claimed.job.uploads.is_empty(),
        shim: Some(claimed.job.artifact_paths.clone()),
        warm: false,
    }
}

pub(crate) fn start_failure(context: &WorkerContext, error: StartError) -> Ending {
    context.metrics.container_start_failures.inc();
    Ending::failed(error.exit_code(), error.to_string())
}

fn ending_for_exit(exit: ContainerExit) -> Ending {
    let code = i32::try_from(exit.exit_code).unwrap_or(-1);
    if exit.oom_killed {
        return Ending::failed(Some(137), "oom killed".into());
    }
    if code == 0 {
        return Ending {
            state: JobState::Succeeded,
            exit_code: Some(0),
            reason: None,
        };
    }
    Ending::failed(Some(code), format!("exit status {code}"))
}

/// The ending of a stopped attempt; `None` when the lease was lost.
pub(crate) fn ending_for_stop(
    reason: Option<StopReason>,
    exit: Option<ContainerExit>,
    timeout: Duration,
) -> Option<Ending> {
    let exit_code = exit.and_then(|e| i32::try_from(e.exit_code).ok());
    let (state, text) = match reason? {
        StopReason::Canceled => (JobState::Canceled, "canceled".to_string()),
        StopReason::TimedOut => (
            JobState::TimedOut,
            format!("timed out after {}", humantime::format_duration(timeout)),
        ),
        StopReason::WorkerShutdown => (JobState::Lost, "worker shut down".to_string()),
        StopReason::Abandoned => (
            JobState::Canceled,
            "no client attached within the grace period".to_string(),
        ),
        StopReason::ApiUnreachable => (
            JobState::Lost,
            "the worker could not reach the API of this interactive run".to_string(),
        ),
        StopReason::DiskLimit {
            area,
            size,
            cap,
            job_size,
        } => (
            JobState::Failed,
            crate::disk_cap::disk_limit_reason(area, size, cap, job_size),
        ),
        StopReason::LeaseLost => return None,
    };
    Some(Ending {
        state,
        exit_code,
        reason: Some(text),
    })
}

/// Writes the terminal state, retrying through database outages: losing a
/// job's exit code is never acceptable.
/// Returns whether the end was recorded (the fence still held).
async fn record(store: &Store, fence: &Fence, ending: &Ending) -> bool {
    let mut backoff = Duration::from_millis(100);
    loop {
        match store
            .finish(
                fence,
                ending.state,
                ending.exit_code,
                ending.reason.as_deref(),
            )
            .await
        {
            Ok(true) => {
                tracing::info!(job_id = fence.job_id, state = %ending.state, exit_code = ?ending.exit_code, "job ended");
                return true;
            }
            Ok(false) => {
                tracing::warn!(
                    job_id = fence.job_id,
                    "the job's fence moved on; its ending was not recorded"
                );
                return false;
            }
            Err(error) => {
                tracing::warn!(job_id = fence.job_id, %error, "recording the job's end failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Renews the lease every third of its length. A cancel found here is the
/// fallback for a missed notification; a lost lease stops the container.
async fn heartbeat_loop(
    store: Store,
    fence: Fence,
    lease: Duration,
    standing: Lease,
    stop: Arc<StopSignal>,
    leases_lost: prometheus::IntCounter,
) {
    let first = match standing {
        Lease::JustClaimed => tokio::time::Instant::now() + lease / 3,
        Lease::Inherited => tokio::time::Instant::now(),
    };
    let mut ticks = tokio::time::interval_at(first, lease / 3);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match store.heartbeat(&fence, lease).await {
            Ok(Heartbeat::Renewed {
                cancel_requested: true,
            }) => stop.request(StopReason::Canceled),
            Ok(Heartbeat::Renewed {
                cancel_requested: false,
            }) => {}
            Ok(Heartbeat::Lost) => {
                tracing::warn!(job_id = fence.job_id, "lease lost; stopping the container");
                leases_lost.inc();
                stop.request(StopReason::LeaseLost);
                return;
            }
            Err(error) => tracing::warn!(job_id = fence.job_id, %error, "heartbeat failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_map_to_states_and_reasons() {
        let ok = ending_for_exit(ContainerExit {
            exit_code: 0,
            oom_killed: false,
            engine_lost: false,
        });
        assert_eq!(ok.state, JobState::Succeeded);
        let failed = ending_for_exit(ContainerExit {
            exit_code: 3,
            oom_killed: false,
            engine_lost: false,
        });
        assert_eq!(failed, Ending::failed(Some(3), "exit status 3".into()));
        let oom = ending_for_exit(ContainerExit {
            exit_code: 137,
            oom_killed: true,
            engine_lost: false,
        });
        assert_eq!(oom, Ending::failed(Some(137), "oom killed".into()));
    }

    #[test]
    fn stops_map_to_states() {
        let exit = Some(ContainerExit {
            exit_code: 143,
            oom_killed: false,
            engine_lost: false,
        });
        let timeout = Duration::from_secs(90);
        let timed_out = ending_for_stop(Some(StopReason::TimedOut), exit, timeout).unwrap();
        assert_eq!(timed_out.state, JobState::TimedOut);
        assert_eq!(timed_out.reason.as_deref(), Some("timed out after 1m 30s"));
        let canceled = ending_for_stop(Some(StopReason::Canceled), exit, timeout).unwrap();
        assert_eq!(canceled.state, JobState::Canceled);
        assert_eq!(
            ending_for_stop(Some(StopReason::LeaseLost), exit, timeout),
            None
        );
        let shutdown = ending_for_stop(Some(StopReason::WorkerShutdown), None, timeout).unwrap();
        assert_eq!(shutdown.state, JobState::Lost);
        let unreachable = ending_for_stop(Some(StopReason::ApiUnreachable), None, timeout).unwrap();
        assert_eq!(unreachable.state, JobState::Lost);
        let abandoned = ending_for_stop(Some(StopReason::Abandoned), exit, timeout).unwrap();
        assert_eq!(abandoned.state, JobState::Canceled);
    }
}
