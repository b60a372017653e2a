//! Start-up, the consume loop over free slots, and shutdown.

use std::{collections::HashMap, io::Write, sync::Arc, time::Duration};

use anyhow::Context;
use jobs_core::JobState;
use jobs_dispatch::{AmqpConfig, ConsumerSession, Consumers};
use jobs_dispatch::{Signal, Signals};
use jobs_store::{ClaimedJob, HeldJob, Store};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    attempt,
    config::Config,
    host_firewall::HostFirewall,
    interactive,
    log_pump::OutputRules,
    metrics::WorkerMetrics,
    runtime::Runtime,
    runtime::app_network::NETWORK_IDLE,
    stop_signal::{RunningAttempts, StopReason},
    warm_pool::{self, WarmPool},
};

/// What every attempt on this worker shares.
pub struct WorkerContext {
    pub store: Store,
    pub runtime: Runtime,
    pub config: Config,
    pub worker_id: String,
    pub attempts: RunningAttempts,
    /// Dials back to the API for interactive runs.
    pub api_client: reqwest::Client,
    /// Where uploads come from and artifacts go.
    pub blobs: jobs_blobs::Blobs,
    pub metrics: WorkerMetrics,
    /// Whether an admin drained this worker, as its last registry write
    /// read back: while true it consumes no wake-up and takes no offer.
    pub draining: watch::Sender<bool>,
    /// Started containers waiting for a job, for apps that ask for them.
    pub warm_pool: WarmPool,
    /// Notified when an attempt ends and frees its slot.
    pub slot_freed: Notify,
}

impl WorkerContext {
    pub fn is_draining(&self) -> bool {
        *self.draining.borrow()
    }

    /// Records the drain flag read from the store, saying so when it changes.
    pub fn set_draining(&self, draining: bool) {
        let changed = self.draining.send_if_modified(|shown| {
            let changed = *shown != draining;
            *shown = draining;
            changed
        });
        if changed && draining {
            tracing::info!("draining: no new job is taken; running jobs go on to their end");
        } else if changed {
            tracing::info!("drain undone: taking jobs again");
        }
    }
}

/// Runs the worker on PostgreSQL and RabbitMQ until SIGTERM or SIGINT,
/// then drains.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let store = Store::connect(&config.database_url).await?;
    let broker = AmqpConfig::new(
        &config.amqp_url,
        config.amqp_queue.clone(),
        config.amqp_queue_type,
    )
    .map_err(|error| anyhow::anyhow!("--amqp-url (JOBS_AMQP_URL): {error}"))?
    .for_deployment(
        &store
            .deployment_id()
            .await
            .context("reading the deployment's name")?,
    );
    let consumers = Consumers::amqp(broker);
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    run_with(config, store, consumers, shutdown).await
}

/// Runs the worker on the given store and dispatcher until `shutdown` is
/// cancelled, then drains. `jobs dev` calls this with its embedded parts.
pub async fn run_with(
    config: Config,
    store: Store,
    consumers: Consumers,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let worker_id = config.worker_id();
    let deployment = store
        .deployment_id()
        .await
        .context("reading the deployment's name")?;
    let runtime = Runtime::connect(config.docker_host.as_deref(), config.pull)
        .await?
        .with_engine_grace(config.engine_grace)
        .with_deployment(&deployment);
    // In the background: an upgrade's first start need not wait for it.
    tokio::spawn({
        let runtime = runtime.clone();
        async move {
            runtime.remove_stale_shim_images().await;
            runtime.remove_stale_shim_volumes().await;
        }
    });
    let firewall = if config.host_firewall {
        Some(HostFirewall::install(&config.host_ports_allowed).context(
            "closing this host's ports to jobs (run the worker as root, or set \
                 JOBS_HOST_FIREWALL=false where jobs may reach the host)",
        )?)
    } else {
        tracing::warn!("JOBS_HOST_FIREWALL=false: jobs can reach this host's own ports");
        None
    };
    let blobs = jobs_blobs::Blobs::from_url(&config.object_store)
        .context("opening the object store (--object-store, JOBS_OBJECT_STORE)")?;
    let slots = Arc::new(Semaphore::new(usize::from(config.slots)));
    let api_client = config.api_client()?;
    let metrics = WorkerMetrics::new()?;
    metrics.slots.set(i64::from(config.slots));
    if let Some(address) = config.metrics_listen {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("listening for metrics on {address} (--metrics-listen)"))?;
        tracing::info!(address = %listener.local_addr()?, "serving metrics");
        tokio::spawn(crate::metrics::serve(listener, metrics.clone()));
    }
    let context = Arc::new(WorkerContext {
        store,
        runtime,
        config,
        worker_id,
        attempts: RunningAttempts::default(),
        api_client,
        blobs,
        metrics,
        draining: watch::Sender::new(false),
        warm_pool: WarmPool::default(),
        slot_freed: Notify::new(),
    });
    // Cancels, drains and interactive offers come through the broker, not
    // NOTIFY: PostgreSQL would wake each worker's listening connection for
    // every job's every event.
    let signals = consumers.signals().await;
    forward_cancels(&context, &signals);
    follow_drains(&context, &signals);
    let tracker = TaskTracker::new();
    reconcile(&context, &tracker, &slots).await?;
    // Registered before consuming, so that a drain that outlived a restart
    // holds from the first wake-up on (the claim refuses anyway).
    interactive::advertise(&context, &slots).await;
    // Interactive runs come as direct offers, not from the queue.
    let advertising = tokio::spawn(interactive::advertise_slots(
        context.clone(),
        slots.clone(),
        shutdown.clone(),
    ));
    interactive::take_offers(&context, &tracker, &slots, &shutdown, &signals);
    let warming = tokio::spawn(warm_pool::keep_filled(context.clone(), shutdown.clone()));
    tokio::spawn(remove_idle_networks(context.clone(), shutdown.clone()));
    let claiming = tokio::spawn(claim_for_free_slots(
        context.clone(),
        tracker.clone(),
        slots.clone(),
        shutdown.clone(),
    ));
    consume(&context, &consumers, &tracker, &slots, &shutdown).await;
    let _ = claiming.await;
    let _ = advertising.await;
    let _ = warming.await;
    drain(&context, tracker).await;
    context.runtime.remove_idle_networks(Duration::ZERO).await;
    if let Some(firewall) = firewall {
        firewall.remove();
    }
    Ok(())
}

/// Removes, every minute, the app networks no container used for
/// [`NETWORK_IDLE`].
async fn remove_idle_networks(context: Arc<WorkerContext>, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = every.tick() => context.runtime.remove_idle_networks(NETWORK_IDLE).await,
            () = shutdown.cancelled() => return,
        }
    }
}

/// Makes the engine agree with the store after a restart. A container of a
/// job this worker still holds is taken over: its exit code is recorded as
/// if the worker had never stopped, and so is its output (under the shim).
/// A created container whose start was recorded is started. Every other
/// labelled container is removed; a held job with no container to take
/// over goes back to the queue if its start was never recorded, and is
/// `lost` otherwise.
async fn reconcile(
    context: &Arc<WorkerContext>,
    tracker: &TaskTracker,
    slots: &Arc<Semaphore>,
) -> anyhow::Result<()> {
    let store = &context.store;
    let mut held: HashMap<String, HeldJob> = store
        .jobs_held_by(&context.worker_id)
        .await?
        .into_iter()
        .map(|job| (job.fence.job_id.clone(), job))
        .collect();
    for container in context
        .runtime
        .containers_of_worker(&context.worker_id)
        .await?
    {
        let owner = container
            .job_id
            .as_ref()
            .and_then(|job_id| held.get(job_id))
            .filter(|job| Some(job.fence.attempt) == container.attempt);
        // A container the dead worker was about to start is started here:
        // its start was recorded, so the job may not be queued again, and
        // the shim runs the command at most once, should the dead worker's
        // start reach Docker after all.
        let adoptable =
            owner.is_some_and(|job| container.started || (job.start_requested && container.shim));
        if !adoptable {
            tracing::info!(
                container = container.id,
                "removing a container no held job owns"
            );
            // Not fatal: a worker that cannot start because of one stray
            // container would leave every held job to the reaper.
            if let Err(error) = context.runtime.remove(&container.id).await {
                tracing::warn!(container = container.id, %error, "removing the container failed");
            }
            continue;
        }
        let job = held
            .remove(container.job_id.as_deref().unwrap_or_default())
            .expect("adoptable means held");
        tracing::info!(
            job_id = job.fence.job_id,
            "taking over the container of a held job"
        );
        context.metrics.takeovers.inc();
        // A slot for it if one is free; an operator who lowered the slots
        // gets the excess finished rather than killed.
        let permit = slots.clone().try_acquire_owned().ok();
        let context = context.clone();
        tracker.spawn(async move {
            let rules = OutputRules::new(&job.secret_values, job.max_output);
            let stopping = attempt::stop_from_intent(job.stop_reason.as_deref());
            attempt::resume(
                context,
                job.fence,
                container.id,
                container.started,
                container.warm,
                job.timeout_left,
                rules,
                stopping,
            )
            .await;
            drop(permit);
        });
    }
    context.runtime.remove_unused_app_networks().await;
    // Not fatal either: a leftover volume only takes disk.
    if let Err(error) = context
        .runtime
        .remove_leftover_uploads_volumes(&context.worker_id)
        .await
    {
        tracing::warn!(
            error = format!("{error:#}"),
            "removing leftover uploads' volumes failed"
        );
    }
    for job in held.into_values() {
        if !job.running && store.requeue_unstarted(&job.fence).await? {
            tracing::info!(
                job_id = job.fence.job_id,
                "a held job never started; queued again"
            );
            continue;
        }
        tracing::warn!(
            job_id = job.fence.job_id,
            "a held job's container is gone; the job is lost"
        );
        store
            .finish(
                &job.fence,
                JobState::Lost,
                None,
                Some("worker lost: its container is gone"),
            )
            .await?;
    }
    Ok(())
}

/// Routes cancel signals to the attempts this worker runs.
fn forward_cancels(context: &Arc<WorkerContext>, signals: &Signals) {
    let mut cancels = signals.subscribe();
    let signals = signals.clone();
    let attempts = context.attempts.clone();
    tokio::spawn(async move {
        let _keep_listening = signals;
        loop {
            match cancels.recv().await {
                Ok(Signal::Cancel { job_id }) => attempts.stop(&job_id, StopReason::Canceled),
                Ok(_) => {}
                // Missed cancels are caught by the next heartbeat.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}

/// Takes in an admin's drain (or its undoing) as soon as it is committed;
/// the registry heartbeat reads it back too, for a missed signal.
fn follow_drains(context: &Arc<WorkerContext>, signals: &Signals) {
    let mut drains = signals.subscribe();
    let signals = signals.clone();
    let context = context.clone();
    tokio::spawn(async move {
        let _keep_listening = signals;
        loop {
            match drains.recv().await {
                Ok(Signal::Drain { worker_id }) if worker_id == context.worker_id => {
                    match context.store.worker_draining(&context.worker_id).await {
                        Ok(draining) => context.set_draining(draining),
                        Err(error) => tracing::warn!(%error, "reading the drain failed"),
                    }
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}

async fn stop_on_signal(shutdown: CancellationToken) {
    wait_for_signal().await;
    tracing::info!("shutting down: no new jobs are taken");
    shutdown.cancel();
}

async fn wait_for_signal() {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
                return;
            }
        };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Consumes wake-ups while slots are free and the worker is not drained.
/// The consumer's prefetch equals the free slots when it opens; when a
/// wake-up arrives with no slot free, or the worker is drained, the
/// consumer is closed, which hands every unacked wake-up back to the queue
/// for other workers, and reopened once a slot frees up or the drain is
/// undone. (Holding such a wake-up for a slot to free was tried, and is
/// faster under a backlog; but since the ack comes at the claim, the broker
/// goes on sending to a full worker while it holds one, and those would
/// wait too, while other workers may be idle.)
async fn consume(
    context: &Arc<WorkerContext>,
    consumers: &Consumers,
    tracker: &TaskTracker,
    slots: &Arc<Semaphore>,
    shutdown: &CancellationToken,
) {
    let mut announced = false;
    let mut backoff = Duration::from_millis(100);
    while !shutdown.is_cancelled() {
        // A worker whose slots are all taken by the jobs it took over is
        // ready too, even though it does not consume yet.
        // So is a drained one (a drain outlives a restart).
        if !announced && (slots.available_permits() == 0 || context.is_draining()) {
            announced = true;
            announce_ready(context);
        }
        if !wait_until_taking_jobs(context, shutdown).await {
            return;
        }
        let free = tokio::select! {
            () = shutdown.cancelled() => return,
            free = wait_for_free_slot(slots) => free,
        };
        let prefetch = u16::try_from(free).unwrap_or(u16::MAX);
        let opened = tokio::select! {
            () = shutdown.cancelled() => return,
            opened = consumers.open(&context.worker_id, prefetch) => opened,
        };
        let session = match opened {
            Ok(session) => session,
            Err(error) => {
                tracing::warn!("cannot consume, retrying in {backoff:?}: {error:#}");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        if !announced {
            announced = true;
            announce_ready(context);
        }
        if consume_session(context, tracker, shutdown, slots, session).await == Session::Broken {
            consumers.reset().await;
        }
    }
}

/// Waits while the worker is drained; false when it shuts down meanwhile.
async fn wait_until_taking_jobs(context: &WorkerContext, shutdown: &CancellationToken) -> bool {
    let mut draining = context.draining.subscribe();
    tokio::select! {
        () = shutdown.cancelled() => false,
        taking = draining.wait_for(|draining| !draining) => taking.is_ok(),
    }
}

/// Waits until at least one slot is free and returns how many are.
async fn wait_for_free_slot(slots: &Semaphore) -> usize {
    loop {
        let free = slots.available_permits();
        if free > 0 {
            return free;
        }
        // Acquiring and releasing at once is only a wake-up on a freed slot.
        if let Ok(permit) = slots.acquire().await {
            drop(permit);
        }
    }
}

/// How a consumer session ended.
#[derive(PartialEq, Eq, Debug)]
enum Session {
    /// Closed by this worker: slots ran out, a drain, a shutdown.
    Closed,
    /// Broken by the broker or the connection.
    Broken,
}

/// Takes wake-ups from one consumer session until it breaks, slots run
/// out, the worker is drained, or it shuts down.
async fn consume_session(
    context: &Arc<WorkerContext>,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
    slots: &Arc<Semaphore>,
    mut session: ConsumerSession,
) -> Session {
    let mut draining = context.draining.subscribe();
    loop {
        let next = tokio::select! {
            () = shutdown.cancelled() => break,
            _ = draining.wait_for(|draining| *draining) => break,
            next = session.next() => next,
        };
        let wake_up = match next {
            Some(Ok(wake_up)) => wake_up,
            Some(Err(error)) => {
                tracing::warn!("broker connection lost: {error:#}");
                return Session::Broken;
            }
            None => {
                tracing::warn!("the broker ended the consumer");
                return Session::Broken;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            // Full: hand this wake-up back, and close the session, which
            // hands back any other unacked one, for a worker that has room.
            if let Err(error) = wake_up.requeue().await {
                tracing::warn!("handing a wake-up back failed: {error:#}");
            }
            break;
        };
        // The wake-up says that there is work; the store picks the job.
        match context
            .store
            .claim_next(&context.worker_id, context.config.lease)
            .await
        {
            Ok(Some(claimed)) => {
                // The claim is committed: ack now, not when the job ends, or
                // the broker would close the channel after its consumer timeout.
                if let Err(error) = wake_up.ack().await {
                    tracing::warn!("acking a claimed wake-up failed: {error:#}");
                }
                start_claimed(context, tracker, claimed, permit);
            }
            Ok(None) => {
                drop(permit);
                if still_queued(context, wake_up.job_id()).await
                    && refused_for_a_drain(context).await
                {
                    // This worker was drained before its heartbeat told it.
                    // Hand the wake-up back.
                    if let Err(error) = wake_up.requeue().await {
                        tracing::warn!("handing a wake-up back failed: {error:#}");
                    }
                    break;
                }
                // A duplicate or stale wake-up, or work that a cap holds
                // back: a freed slot or the poll claims it when it may start.
                if let Err(error) = wake_up.ack().await {
                    tracing::warn!("acking a wake-up with nothing to claim failed: {error:#}");
                }
            }
            Err(error) => {
                tracing::warn!(job_id = wake_up.job_id(), %error, "claiming failed; requeueing");
                let _ = wake_up.requeue().await;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    session.close().await;
    Session::Closed
}

// Which queued job a free slot takes. A wake-up from the queue says that
// there is work; the store decides which job, by the apps' shares and caps
// and the jobs' places in line (`Store::claim_next`). A wake-up may so
// start another job than the one it was published for, or none when a cap
// holds the work back: a freed slot, and a poll, claim what is left.

/// How often a worker with a free slot looks for work no wake-up brought:
/// jobs a cap held back when their wake-up came.
const CLAIM_POLL: Duration = Duration::from_secs(2);

/// The most jobs one claim takes for free slots: several at once save
/// round trips and commits, and a few at a time keep the share between
/// apps close to their weights.
const CLAIM_BATCH: usize = 4;

/// Runs a claimed job's attempt on its slot; the slot's release wakes
/// [`claim_for_free_slots`].
fn start_claimed(
    context: &Arc<WorkerContext>,
    tracker: &TaskTracker,
    claimed: ClaimedJob,
    permit: OwnedSemaphorePermit,
) {
    tracing::info!(
        job_id = claimed.fence.job_id,
        attempt = claimed.fence.attempt,
        "claimed"
    );
    let context = context.clone();
    tracker.spawn(async move {
        attempt::run(context.clone(), claimed).await;
        drop(permit);
        context.slot_freed.notify_one();
    });
}

/// Claims jobs for the free slots, up to [`CLAIM_BATCH`] at once, each
/// time a slot frees and every [`CLAIM_POLL`], until no queued job may
/// start or the slots are full.
async fn claim_for_free_slots(
    context: Arc<WorkerContext>,
    tracker: TaskTracker,
    slots: Arc<Semaphore>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = context.slot_freed.notified() => {}
            () = tokio::time::sleep(CLAIM_POLL) => {}
        }
        if context.is_draining() {
            continue;
        }
        loop {
            let free = slots.available_permits().min(CLAIM_BATCH);
            if free == 0 {
                break;
            }
            let Ok(mut permits) = slots.clone().try_acquire_many_owned(free as u32) else {
                break;
            };
            match context
                .store
                .claim_batch(&context.worker_id, context.config.lease, free as u32)
                .await
            {
                Ok(claimed) if claimed.is_empty() => break,
                Ok(claimed) => {
                    // The store claims at most `free`: a permit for each.
                    debug_assert!(claimed.len() <= free);
                    for job in claimed {
                        // One permit per claimed job; the rest go back.
                        let Some(permit) = permits.split(1) else {
                            break;
                        };
                        start_claimed(&context, &tracker, job, permit);
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "claiming for free slots failed");
                    break;
                }
            }
        }
    }
}

/// Whether the store drains this worker, which the worker then learns.
/// False when unsure: the wake-up is dropped, and the poll finds its job.
async fn refused_for_a_drain(context: &WorkerContext) -> bool {
    match context.store.worker_draining(&context.worker_id).await {
        Ok(draining) => {
            context.set_draining(draining);
            draining
        }
        Err(error) => {
            tracing::warn!(%error, "reading the drain failed");
            false
        }
    }
}

/// Whether a job whose claim was refused is still queued (then it was not
/// a duplicate, and its wake-up must not be dropped). True when unsure.
async fn still_queued(context: &WorkerContext, job_id: &str) -> bool {
    match context.store.get_job(job_id).await {
        Ok(job) => job.state == JobState::Queued,
        Err(jobs_store::StoreError::JobNotFound(_)) => false,
        Err(error) => {
            tracing::warn!(job_id, %error, "reading a refused job failed");
            true
        }
    }
}

fn announce_ready(context: &WorkerContext) {
    let worker_id = &context.worker_id;
    tracing::info!(worker_id, "consuming");
    if !context.config.print_ready {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "worker {worker_id} ready");
    let _ = stdout.flush();
}

/// Lets running jobs finish for the drain period, then stops the rest.
async fn drain(context: &WorkerContext, tracker: TaskTracker) {
    tracker.close();
    if context.attempts.is_empty() && tracker.is_empty() {
        return;
    }
    tracing::info!(
        running = context.attempts.len(),
        "waiting for running jobs to finish"
    );
    tokio::select! {
        () = tracker.wait() => return,
        () = tokio::time::sleep(context.config.drain_timeout) => {}
        () = wait_for_signal() => {}
    }
    tracing::warn!("stopping the jobs still running");
    context.attempts.stop_all(StopReason::WorkerShutdown);
    tracker.wait().await;
}
