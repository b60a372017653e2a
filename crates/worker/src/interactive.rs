//! Interactive runs on this worker: the slots it advertises, the direct
//! offers it takes, and the attempt that bridges a container's stdin and
//! output to the API.

use std::{sync::Arc, time::Duration};

use jobs_dispatch::{Signal, Signals};
use jobs_store::ClaimedJob;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    attempt::{self, Ending},
    dial_back::Bridge,
    log_pump::{self, OutputRules, PumpOptions},
    shim_input::ShimInput,
    stop_signal::{StopReason, StopSignal},
    worker::WorkerContext,
};

/// How often the free slots are compared with what the registry shows.
const SLOT_CHECK: Duration = Duration::from_millis(100);
/// How often the registry row is renewed when nothing changes; also how
/// long a drain (or its undoing) may take to reach the consumer.
const REGISTRY_HEARTBEAT: Duration = Duration::from_secs(5);
/// The version this worker writes into the registry.
const WORKER_VERSION: &str = env!("CARGO_PKG_VERSION");
/// Live output chunks that wait for the API before they are dropped from
/// the live view (never from the store).
const LIVE_CHUNKS: usize = 256;
/// How long the bridge may take to send its last output after the end.
const BRIDGE_DRAIN: Duration = Duration::from_secs(5);

/// Keeps this worker's row in the `workers` table true: its free slots on
/// every change, its version, and a heartbeat, which also reads back
/// whether an admin drained it. Removes it when `shutdown` fires (the store
/// keeps the row of a drained worker, so that the drain outlives a restart).
pub async fn advertise_slots(
    context: Arc<WorkerContext>,
    slots: Arc<Semaphore>,
    shutdown: CancellationToken,
) {
    let mut shown = None;
    let mut renewed = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(SLOT_CHECK) => {}
        }
        let free = slots.available_permits();
        if shown != Some(free) || renewed.elapsed() >= REGISTRY_HEARTBEAT {
            shown = advertise(&context, &slots).await.then_some(free);
            renewed = tokio::time::Instant::now();
        }
    }
    if let Err(error) = context.store.remove_worker(&context.worker_id).await {
        tracing::warn!(%error, "removing this worker from the registry failed");
    }
}

/// Writes this worker's row once and takes in whether it is drained;
/// returns whether the write went through.
pub async fn advertise(context: &WorkerContext, slots: &Semaphore) -> bool {
    let total = i32::from(context.config.slots);
    let free_slots = i32::try_from(slots.available_permits()).unwrap_or(total);
    match context
        .store
        .upsert_worker(&context.worker_id, total, free_slots, WORKER_VERSION)
        .await
    {
        Ok(draining) => {
            context.set_draining(draining);
            true
        }
        Err(error) => {
            tracing::warn!(%error, "advertising free slots failed");
            false
        }
    }
}

/// Takes the interactive runs offered to this worker while it has a free
/// slot. An offer it cannot take is ignored: the API offers it elsewhere.
pub fn take_offers(
    context: &Arc<WorkerContext>,
    tracker: &TaskTracker,
    slots: &Arc<Semaphore>,
    shutdown: &CancellationToken,
    signals: &Signals,
) {
    let mut offers = signals.subscribe();
    let signals = signals.clone();
    let context = context.clone();
    let tracker_for_runs = tracker.clone();
    let slots = slots.clone();
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        let _keep_listening = signals;
        loop {
            let signal = tokio::select! {
                () = shutdown.cancelled() => return,
                offer = offers.recv() => match offer {
                    Ok(signal) => signal,
                    // A missed offer is offered again.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
            };
            let Signal::Offer { worker_id, job_id } = signal else {
                continue;
            };
            let job_id = job_id.as_str();
            // A drained worker takes no offer (its claim would be refused).
            if worker_id != context.worker_id || context.is_draining() {
                continue;
            }
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                tracing::debug!(job_id, "offered an interactive run with no free slot");
                continue;
            };
            match context
                .store
                .claim(job_id, &context.worker_id, context.config.lease)
                .await
            {
                Ok(Some(claimed)) => {
                    tracing::info!(job_id, "claimed an interactive run");
                    let context = context.clone();
                    tracker_for_runs.spawn(async move {
                        run(context, claimed).await;
                        drop(permit);
                    });
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(job_id, %error, "claiming an interactive run failed"),
            }
        }
    });
}

/// Runs a claimed interactive job to its end and records the outcome.
pub async fn run(context: Arc<WorkerContext>, claimed: ClaimedJob) {
    let context = &*context;
    let fence = claimed.fence.clone();
    attempt::supervise(
        context,
        &fence,
        attempt::Lease::JustClaimed,
        |stop| async move { drive(context, &claimed, &stop).await },
    )
    .await;
}

async fn drive(
    context: &WorkerContext,
    claimed: &ClaimedJob,
    stop: &Arc<StopSignal>,
) -> attempt::Outcome {
    let spec = attempt::container_spec(context, claimed);
    let (container_id, warm_spec) = match attempt::take_warm(context, claimed, &spec).await {
        Some((id, message)) => (id, Some(message)),
        None => match context.runtime.create(&spec).await {
            Ok(id) => (id, None),
            Err(error) => {
                return attempt::Outcome::without_container(Some(attempt::start_failure(
                    context, error,
                )));
            }
        },
    };
    let ending = attempt::run_with_files(context, claimed, stop, &container_id, || {
        start_and_bridge(context, claimed, stop, &container_id, warm_spec.as_deref())
    })
    .await;
    attempt::Outcome {
        ending,
        container_id: Some(container_id),
    }
}

/// Starts the container (or sends a warm one its `warm_spec`) and bridges
/// it to the API until its end. Its command runs under the shim, whose
/// socket takes its stdin once the container runs ([`crate::shim_input`]).
async fn start_and_bridge(
    context: &WorkerContext,
    claimed: &ClaimedJob,
    stop: &Arc<StopSignal>,
    container_id: &str,
    warm_spec: Option<&[u8]>,
) -> Option<Ending> {
    let fence = &claimed.fence;
    let Some(endpoint) = claimed.attach.clone() else {
        return Some(Ending::failed(
            None,
            "an interactive run without an attach endpoint".into(),
        ));
    };
    if stop.reason().is_some() {
        return attempt::ending_for_stop(stop.reason(), None, claimed.timeout);
    }
    let attached = match attempt::attach_before_start(context, container_id, warm_spec).await {
        Ok(attached) => attached,
        Err(ending) => return Some(ending),
    };
    let last_seq = claimed.last_log_seq;
    let (live_sender, live) = live_channel();
    let pump = tokio::spawn(log_pump::pump(
        context.store.clone(),
        fence.job_id.clone(),
        last_seq,
        OutputRules::new(&claimed.secret_values, claimed.max_output),
        attached.output,
        // A terminal wants every byte at once, not after a flush interval.
        PumpOptions {
            flush_interval: Duration::ZERO,
            live: Some(live_sender),
        },
    ));
    if !attempt::record_start(context, fence).await {
        pump.abort();
        return None;
    }
    if let Err(error) = attempt::start_or_send_spec(
        context,
        container_id,
        &claimed.job.command,
        warm_spec,
        attached.input,
    )
    .await
    {
        pump.abort();
        return Some(attempt::start_failure(context, error));
    }
    let latency = stop.mark_started();
    context.metrics.start_latency.observe(latency.as_secs_f64());
    match context.store.mark_running(fence).await {
        Ok(true) => {}
        Ok(false) => stop.request(StopReason::LeaseLost),
        Err(error) => {
            tracing::warn!(job_id = fence.job_id, %error, "marking the job running failed");
        }
    }
    // Input typed meanwhile waits with the API and the client, unacknowledged.
    let bridging = spawn_bridge(context, endpoint, fence, container_id, stop, live).await;
    let ending = attempt::finish_following(
        context,
        &claimed.fence,
        stop,
        container_id,
        pump,
        claimed.timeout,
        None,
    )
    .await;
    finish_bridge(bridging).await;
    ending
}

/// The pump has ended, which closes the live view: the bridge sends what
/// is left and hangs up.
pub(crate) async fn finish_bridge(mut bridging: tokio::task::JoinHandle<()>) {
    if tokio::time::timeout(BRIDGE_DRAIN, &mut bridging)
        .await
        .is_err()
    {
        bridging.abort();
    }
}

/// Bridges a started run to its API: its output from `live`, its stdin
/// through the shim's socket (none when the run is already over).
async fn spawn_bridge(
    context: &WorkerContext,
    endpoint: jobs_store::AttachEndpoint,
    fence: &jobs_store::Fence,
    container_id: &str,
    stop: &Arc<StopSignal>,
    live: mpsc::Receiver<jobs_store::NewChunk>,
) -> tokio::task::JoinHandle<()> {
    let input = match ShimInput::connect(context.runtime.clone(), container_id.to_owned()).await {
        Ok(input) => Some(Box::new(input)),
        Err(error) => {
            tracing::info!(container_id, %error, "no input to the run's shim");
            None
        }
    };
    let bridge = Bridge {
        client: context.api_client.clone(),
        endpoint,
        job_id: fence.job_id.clone(),
        attempt: fence.attempt,
        input,
        grace: context.config.attach_grace,
    };
    let stop = stop.clone();
    tokio::spawn(async move { bridge.run(live, &stop).await })
}

/// Bridges a taken-over interactive run under the shim to its API again:
/// its stdin goes on where the shim stands, and `live` (its output, read
/// back and followed) reaches the client. `None` when its API endpoint is
/// gone.
pub(crate) async fn bridge_taken_over(
    context: &WorkerContext,
    fence: &jobs_store::Fence,
    container_id: &str,
    stop: &Arc<StopSignal>,
    live: mpsc::Receiver<jobs_store::NewChunk>,
) -> Option<tokio::task::JoinHandle<()>> {
    let endpoint = attempt::retry_until_ok("reading the run's attach endpoint", || {
        context.store.attach_endpoint(&fence.job_id)
    })
    .await?;
    Some(spawn_bridge(context, endpoint, fence, container_id, stop, live).await)
}

/// Live output chunks of a run that wait for the API.
pub(crate) fn live_channel() -> (
    mpsc::Sender<jobs_store::NewChunk>,
    mpsc::Receiver<jobs_store::NewChunk>,
) {
    mpsc::channel(LIVE_CHUNKS)
}
