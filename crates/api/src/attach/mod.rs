//! Interactive runs: the direct-start path that never enters the queue.
//!
//! 1. `POST /v1/apps/{app}/jobs` with `interactive` inserts the job already
//!    marked published (the relay leaves it alone) and puts it in this
//!    process's line ([`AttachHub::enqueue`]).
//! 2. The dispatcher loop offers the first runs in line to live workers with
//!    a free slot (the `workers` table), by a NOTIFY each. The worker claims
//!    the job with the usual fenced claim; an offer nobody claims in
//!    [`OFFER_TIMEOUT`] goes to the next worker. While no slot is free, each
//!    run's client is told its position.
//! 3. The worker starts the container and dials back to this API
//!    ([`worker`]); the client's socket ([`client`]) and the worker's meet in
//!    a [`Session`].
//! 4. A client that drops gets [`AttachHub::grace`] to come back; then the
//!    run is stopped. A client that detaches on purpose gets no deadline.

pub mod client;
pub mod relay;
pub mod session;
pub mod worker;

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use jobs_core::{JobState, attach::WorkerCommand};
use jobs_dispatch::{Publisher, Signal};
use jobs_store::{CancelOutcome, Store};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use session::{OutputChunk, Session};

/// How long an offer waits for its worker's claim before the next worker
/// gets it.
pub const OFFER_TIMEOUT: Duration = Duration::from_millis(1500);
/// A worker counts as alive this long after its last heartbeat.
pub const WORKER_FRESH: Duration = Duration::from_secs(15);
/// How often the line is looked at while runs wait, besides wake-ups.
const DISPATCH_TICK: Duration = Duration::from_millis(250);
/// How often sessions nobody uses are looked at.
const SESSION_SWEEP: Duration = Duration::from_secs(10);
/// How often queued runs of this API's sessions that left the line are put
/// back (a worker gave one back).
const RELINE_EVERY: Duration = Duration::from_secs(1);

/// Where the workers of this API's interactive runs dial back, and how long
/// an abandoned run waits for its client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachSettings {
    /// This API's base URL as workers reach it; `None` derives it from the
    /// address the API listens on.
    pub advertise_url: Option<String>,
    pub grace: Duration,
    /// CA certificates to trust, besides the system's, when a client is
    /// relayed to another API over HTTPS.
    pub peer_ca_cert: Option<std::path::PathBuf>,
}

impl Default for AttachSettings {
    fn default() -> Self {
        Self {
            advertise_url: None,
            grace: Duration::from_secs(jobs_core::attach::DEFAULT_ATTACH_GRACE_SECONDS),
            peer_ca_cert: None,
        }
    }
}

/// A run waiting for a worker, and its last offer.
struct Waiting {
    job_id: String,
    offers: usize,
    last_offer: Option<Instant>,
}

pub struct AttachHub {
    store: Store,
    /// Sends offers to workers, and cancels of abandoned runs.
    publisher: Arc<Publisher>,
    advertise_url: String,
    grace: Duration,
    /// Dials the API that holds a run, for a client that reached this one.
    relay_client: reqwest::Client,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    line: Mutex<VecDeque<Waiting>>,
    wake: Notify,
    /// The length of the line, for `/metrics`.
    waiting_gauge: prometheus::IntGauge,
}

impl AttachHub {
    pub fn new(
        store: Store,
        publisher: Arc<Publisher>,
        advertise_url: String,
        grace: Duration,
        relay_client: reqwest::Client,
        waiting_gauge: prometheus::IntGauge,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            publisher,
            advertise_url,
            grace,
            relay_client,
            sessions: Mutex::new(HashMap::new()),
            line: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            waiting_gauge,
        })
    }

    /// The base URL workers dial back to.
    pub fn advertise_url(&self) -> &str {
        &self.advertise_url
    }

    pub fn relay_client(&self) -> &reqwest::Client {
        &self.relay_client
    }

    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// The session of a job, made on first use (also after an API restart,
    /// when a client or a worker comes back).
    pub fn session(&self, job_id: &str) -> Arc<Session> {
        let mut sessions = self.sessions.lock().expect("sessions lock");
        sessions
            .entry(job_id.to_owned())
            .or_insert_with(|| Session::new(job_id.to_owned()))
            .clone()
    }

    /// Puts a queued interactive run in line for a worker (once), and gives
    /// it the grace period to be attached by a client.
    pub fn enqueue(self: &Arc<Self>, job_id: &str) {
        let session = self.session(job_id);
        // Queued: no worker wrote any of its stdin yet.
        session.place_input(0);
        {
            let mut line = self.line.lock().expect("line lock");
            if line.iter().any(|waiting| waiting.job_id == job_id) {
                return;
            }
            line.push_back(Waiting {
                job_id: job_id.to_owned(),
                offers: 0,
                last_offer: None,
            });
        }
        self.wake.notify_one();
        let generation = session.attach_client();
        if session.client_left(generation, false) {
            self.start_grace(session, generation);
        }
    }

    /// Stops the run if no client is back within the grace period.
    pub fn start_grace(self: &Arc<Self>, session: Arc<Session>, generation: u64) {
        let hub = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(hub.grace).await;
            if session.still_abandoned(generation) {
                hub.abandon(&session).await;
            }
        });
    }

    async fn abandon(&self, session: &Session) {
        let reason = format!(
            "no client attached for {}",
            humantime::format_duration(self.grace)
        );
        tracing::info!(job_id = %session.job_id, "{reason}; stopping the interactive run");
        // A queued run ends at once; a started one is stopped by its worker,
        // by command when it is connected, or through the store otherwise.
        let delivered = session.try_send_command(WorkerCommand::Terminate {
            reason: reason.clone(),
        });
        match self.store.get_job(&session.job_id).await {
            Ok(job) if job.state == JobState::Queued || !delivered => {
                match self.store.cancel_job(&session.job_id).await {
                    Ok(CancelOutcome::CanceledWhileQueued(_)) => self.wake.notify_one(),
                    Ok(CancelOutcome::StopRequested(_)) => {
                        self.publisher
                            .signal(Signal::Cancel {
                                job_id: session.job_id.clone(),
                            })
                            .await
                    }
                    Ok(CancelOutcome::AlreadyEnded(_)) => {}
                    Err(error) => {
                        tracing::warn!(job_id = %session.job_id, %error, "canceling an abandoned run failed")
                    }
                }
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(job_id = %session.job_id, %error, "reading an abandoned run failed")
            }
        }
    }

    /// Wakes the dispatcher: a slot may have freed, or a run was claimed.
    pub fn poke(&self) {
        if !self.line.lock().expect("line lock").is_empty() {
            self.wake.notify_one();
        }
    }

    /// Offers waiting runs to free workers until `shutdown`. Interactive
    /// runs still queued in the store (this API restarted) are put back in
    /// line first; they get the grace period for a client to come back.
    pub async fn run_dispatcher(self: Arc<Self>, shutdown: CancellationToken) {
        match self.store.queued_interactive_jobs().await {
            Ok(queued) => {
                for job_id in queued {
                    self.enqueue(&job_id);
                }
            }
            Err(error) => tracing::warn!(%error, "reading the queued interactive runs failed"),
        }
        let mut last_sweep = Instant::now();
        let mut last_relining = Instant::now();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(DISPATCH_TICK) => {}
            }
            if last_relining.elapsed() >= RELINE_EVERY {
                last_relining = Instant::now();
                self.reline_requeued().await;
            }
            if let Err(error) = self.dispatch_once().await {
                tracing::warn!(%error, "dispatching interactive runs failed");
            }
            if last_sweep.elapsed() >= SESSION_SWEEP {
                last_sweep = Instant::now();
                self.forget_idle_sessions().await;
            }
        }
    }

    /// Puts back in line the runs of this API's sessions that are queued
    /// again: a worker that died before starting one gave it back.
    async fn reline_requeued(&self) {
        // No session here: nothing of this API's to put back.
        if self.sessions.lock().expect("sessions lock").is_empty() {
            return;
        }
        let queued = match self.store.queued_interactive_jobs().await {
            Ok(queued) => queued,
            Err(error) => {
                tracing::warn!(%error, "reading the queued interactive runs failed");
                return;
            }
        };
        let mut put_back = false;
        {
            let sessions = self.sessions.lock().expect("sessions lock");
            let mut line = self.line.lock().expect("line lock");
            for job_id in queued {
                if sessions.contains_key(&job_id)
                    && !line.iter().any(|waiting| waiting.job_id == job_id)
                {
                    tracing::info!(%job_id, "an interactive run is queued again; back in line");
                    line.push_back(Waiting {
                        job_id,
                        offers: 0,
                        last_offer: None,
                    });
                    put_back = true;
                }
            }
        }
        if put_back {
            self.wake.notify_one();
        }
    }

    async fn dispatch_once(&self) -> Result<(), jobs_store::StoreError> {
        let waiting: Vec<String> = {
            let line = self.line.lock().expect("line lock");
            line.iter().map(|w| w.job_id.clone()).collect()
        };
        if waiting.is_empty() {
            return Ok(());
        }
        // Runs claimed, canceled or gone leave the line.
        let mut gone = Vec::new();
        for job_id in &waiting {
            match self.store.get_job(job_id).await {
                Ok(job) if job.state == JobState::Queued => {}
                Ok(_) | Err(jobs_store::StoreError::JobNotFound(_)) => gone.push(job_id.clone()),
                Err(error) => return Err(error),
            }
        }
        let free = if gone.len() < waiting.len() {
            self.store.free_workers(WORKER_FRESH).await?
        } else {
            Vec::new()
        };
        let mut offers = Vec::new();
        {
            let mut line = self.line.lock().expect("line lock");
            line.retain(|w| !gone.contains(&w.job_id));
            self.waiting_gauge
                .set(line.len().saturating_sub(free.len()) as i64);
            for (index, waiting) in line.iter_mut().enumerate() {
                let session = self.session(&waiting.job_id);
                if index >= free.len() {
                    session.set_position(Some(index as u32 + 1));
                    continue;
                }
                session.set_position(None);
                if waiting
                    .last_offer
                    .is_none_or(|at| at.elapsed() >= OFFER_TIMEOUT)
                {
                    let worker = free[(index + waiting.offers) % free.len()].clone();
                    waiting.offers += 1;
                    waiting.last_offer = Some(Instant::now());
                    offers.push((worker, waiting.job_id.clone()));
                }
            }
        }
        for job_id in &gone {
            self.session(job_id).set_position(None);
        }
        for (worker_id, job_id) in offers {
            tracing::debug!(%job_id, %worker_id, "offering an interactive run");
            self.publisher
                .signal(Signal::Offer { worker_id, job_id })
                .await;
        }
        Ok(())
    }

    /// Drops sessions no socket uses whose job ended.
    async fn forget_idle_sessions(&self) {
        let idle: Vec<String> = {
            let sessions = self.sessions.lock().expect("sessions lock");
            sessions
                .iter()
                .filter(|(_, session)| Arc::strong_count(session) == 1)
                .map(|(id, _)| id.clone())
                .collect()
        };
        for job_id in idle {
            let ended = match self.store.get_job(&job_id).await {
                Ok(job) => job.state.is_terminal(),
                Err(jobs_store::StoreError::JobNotFound(_)) => true,
                Err(_) => false,
            };
            if ended {
                self.sessions.lock().expect("sessions lock").remove(&job_id);
            }
        }
    }
}
