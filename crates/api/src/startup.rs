//! Building and running the server.
//!
//! [`Application::build`] connects to the database and binds its own
//! listener, so that a test can ask for port 0 and read the real address
//! back. [`Application::run_until_stopped`] serves until the shutdown token
//! is cancelled, then stops the relay and drains connections.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use jobs_dispatch::Publisher;
use jobs_store::{JOB_EVENTS_CHANNEL, Store};
use tokio::{net::TcpListener, sync::Semaphore};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    attach::{AttachHub, AttachSettings},
    config::{AdminToken, Config},
    connections::{ConnectionSettings, Tracker},
    follow::MAX_FOLLOWERS,
    metrics::Metrics,
    objects::ObjectSettings,
    quotas::Quotas,
    relay::Relay,
    routes,
    state::AppState,
    token_slots::TokenSlots,
};

/// How long open connections may take to finish once shutdown starts. Log
/// streams end at once; this only bounds a client that stopped reading.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub struct Application {
    listener: TcpListener,
    address: SocketAddr,
    state: AppState,
    /// Serve HTTPS with this configuration; plain HTTP when `None`.
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    quotas: Quotas,
    connections: ConnectionSettings,
    reaper_interval: Duration,
    forget_workers_after: Duration,
}

impl Application {
    /// Connects to the database (running its migrations), starts listening
    /// for job notifications, and binds the listener. The broker is reached
    /// lazily, so the API starts while it is down; jobs then wait for the
    /// relay.
    ///
    /// The TLS files, when given, are read first: a wrong path or a key of
    /// another certificate fails the start at once, naming the file.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let tls = config.tls.as_ref().map(|files| files.load()).transpose()?;
        let store = Store::connect(&config.database_url).await?;
        let deployment = store
            .deployment_id()
            .await
            .context("reading the deployment's name")?;
        let publisher = Publisher::amqp(config.amqp.clone().for_deployment(&deployment));
        let mut application = Self::build_with(
            config.listen,
            config.admin_token,
            store,
            publisher,
            config.quotas,
            config.objects,
        )
        .await?;
        application.configure_attach(&config.attach, tls.is_some())?;
        application.reaper_interval = config.reaper_interval;
        application.forget_workers_after = config.forget_workers_after;
        application.state.idempotency_ttl = config.idempotency_ttl;
        application.connections = config.connections;
        application.tls = tls;
        Ok(application)
    }

    /// Builds on a given store and publisher; `jobs dev` passes its embedded
    /// ones.
    pub async fn build_with(
        listen: SocketAddr,
        admin_token: AdminToken,
        store: Store,
        publisher: Publisher,
        quotas: Quotas,
        objects: ObjectSettings,
    ) -> anyhow::Result<Self> {
        let notifications = store
            .notifications(JOB_EVENTS_CHANNEL)
            .await
            .context("listening for job notifications")?;
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        let address = listener.local_addr().context("reading the bound address")?;
        let metrics = Metrics::new().context("registering metrics")?;
        let publisher = Arc::new(publisher);
        let state = AppState {
            store: store.clone(),
            publisher: publisher.clone(),
            published: crate::relay::PublishedMarks::start(store.clone()),
            notifications: Arc::new(notifications),
            metrics: metrics.clone(),
            admin_token: Arc::new(admin_token),
            shutdown: CancellationToken::new(),
            followers: Arc::new(Semaphore::new(MAX_FOLLOWERS)),
            attach: AttachHub::new(
                store.clone(),
                publisher,
                default_advertise_url(address, false),
                AttachSettings::default().grace,
                relay_client(None)?,
                metrics.attach_waiting.clone(),
            ),
            objects: Arc::new(objects),
            idempotency_ttl: crate::idempotency::DEFAULT_IDEMPOTENCY_TTL,
            log_streams_per_token: TokenSlots::new(
                quotas.log_streams_per_token,
                "log streams",
                "JOBS_MAX_LOG_STREAMS_PER_TOKEN",
            ),
            attach_sockets_per_token: TokenSlots::new(
                quotas.attach_sockets_per_token,
                "attach sockets",
                "JOBS_MAX_ATTACH_SOCKETS_PER_TOKEN",
            ),
        };
        Ok(Self {
            listener,
            address,
            state,
            tls: None,
            quotas,
            connections: ConnectionSettings::from_fd_limit(),
            reaper_interval: crate::relay::REAPER_INTERVAL,
            forget_workers_after: crate::relay::FORGET_WORKERS_AFTER,
        })
    }

    /// Sets where workers dial back for interactive runs and the grace
    /// period of a dropped client.
    pub fn configure_attach(
        &mut self,
        settings: &AttachSettings,
        https: bool,
    ) -> anyhow::Result<()> {
        let url = settings
            .advertise_url
            .clone()
            .unwrap_or_else(|| default_advertise_url(self.address, https));
        self.state.attach = AttachHub::new(
            self.state.store.clone(),
            self.state.publisher.clone(),
            url,
            settings.grace,
            relay_client(settings.peer_ca_cert.as_deref())?,
            self.state.metrics.attach_waiting.clone(),
        );
        Ok(())
    }

    /// The address actually bound, with the real port when 0 was asked.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// The token that stops the server; cancel it on SIGTERM, or in a test.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.state.shutdown.clone()
    }

    /// The connection limit and timeouts it serves with.
    pub fn connection_settings(&self) -> ConnectionSettings {
        self.connections
    }

    /// Whether the server speaks HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves HTTP (or HTTPS) and runs the relay until the shutdown token
    /// is cancelled.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let shutdown = self.state.shutdown.clone();
        let tasks = TaskTracker::new();
        let relay = Relay::new(
            self.state.store.clone(),
            self.state.publisher.clone(),
            self.state.metrics.clone(),
            self.state.objects.clone(),
        )
        .with_reaper_interval(self.reaper_interval)
        .with_forget_workers_after(self.forget_workers_after);
        tasks.spawn(relay.run(shutdown.clone()));
        tasks.spawn(self.state.attach.clone().run_dispatcher(shutdown.clone()));
        tasks.spawn(poke_on_job_events(
            self.state.attach.clone(),
            self.state.notifications.clone(),
            shutdown.clone(),
        ));
        tasks.close();

        let tracker = Tracker::new(self.connections, self.state.metrics.connections.clone());
        let router = routes::router_with(self.state, self.quotas);
        // The same loop and graceful shutdown for HTTP and HTTPS.
        let serve = crate::serve::serve(self.listener, self.tls, router, tracker, shutdown.clone());
        // Graceful shutdown waits for open connections; the grace period
        // bounds that wait for a client that never reads its last bytes.
        let deadline = async {
            shutdown.cancelled().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        let served = tokio::select! {
            () = serve => Ok(()),
            () = deadline => {
                tracing::warn!(grace_seconds = SHUTDOWN_GRACE.as_secs(), "connections still open after the grace period; closing them");
                Ok(())
            }
        };
        // The server may also have stopped on an error: stop the relay too.
        shutdown.cancel();
        tasks.wait().await;
        tracing::info!("stopped");
        served
    }
}

/// The URL workers dial back to when none is configured: the bound address,
/// with the loopback address for an unspecified one.
/// The HTTP client that relays clients to other APIs, trusting `ca_cert`
/// besides the system's CAs.
fn relay_client(ca_cert: Option<&std::path::Path>) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .tcp_nodelay(true);
    if let Some(path) = ca_cert.filter(|path| !path.as_os_str().is_empty()) {
        let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("--ca-cert: {} holds no PEM certificate", path.display()))?;
        builder = builder.tls_certs_merge(certificates);
    }
    builder.build().context("building the relay's HTTP client")
}

fn default_advertise_url(address: SocketAddr, https: bool) -> String {
    let scheme = if https { "https" } else { "http" };
    let mut address = address;
    if address.ip().is_unspecified() {
        address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    format!("{scheme}://{address}")
}

/// Wakes the interactive dispatcher on every job change: a slot may have
/// freed, or a run in line was claimed.
async fn poke_on_job_events(
    hub: Arc<AttachHub>,
    notifications: Arc<jobs_store::JobNotifications>,
    shutdown: CancellationToken,
) {
    let mut events = notifications.subscribe();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            event = events.recv() => match event {
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => hub.poke(),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}
