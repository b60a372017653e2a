//! `jobs dev`: the API (with its relay and reaper) and one worker in this
//! process, on an embedded SQLite store, an in-process dispatcher and the
//! local Docker engine.
//!
//! What survives a restart, and how:
//! - apps, jobs and logs are in `DIR/jobs.db`;
//! - queued jobs: the in-process queue starts empty, so every queued job is
//!   marked unpublished at start, and the API's relay publishes them again
//!   (within about three seconds);
//! - running jobs: the worker id is kept in the data dir, so the worker
//!   finds its jobs' containers, takes over those still running and records
//!   the exit code of those that ended meanwhile; a job whose container is
//!   gone is recorded `lost`. Their leases are renewed first, so that the
//!   reaper leaves them to the worker however long the downtime was.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use jobs_api::{Application, config::AdminToken, objects::ObjectSettings, quotas::Quotas};
use jobs_blobs::Blobs;
use jobs_dispatch::{Consumers, InProcessQueue, Publisher, QueueType};
use jobs_store::Store;
use jobs_worker::runtime::{PullPolicy, Runtime};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

use crate::args::{DEFAULT_API_URL, DevArgs};
use crate::dev_data_dir::{self, DATA_DIR_ENV, DataDir};
use crate::dev_token::{self, Origin};
use crate::error::CliError;

/// The log filter when `RUST_LOG` is unset: the terminal stays quiet unless
/// something goes wrong.
const DEFAULT_LOG_FILTER: &str = "warn";
/// How long a claim lives without a heartbeat, as the worker's default.
const LEASE: Duration = Duration::from_secs(30);
/// SIGTERM → SIGKILL on cancel and timeout, as the contract's default.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long running jobs may finish after Ctrl-C. Shorter than a server's
/// default: a person is waiting at the terminal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn dev(args: DevArgs) -> Result<u8, CliError> {
    let started = Instant::now();
    init_logging();
    match serve(args, started).await {
        Ok(()) => Ok(0),
        Err(err) => Err(CliError::Dev(format!("{err:#}"))),
    }
}

async fn serve(args: DevArgs, started: Instant) -> anyhow::Result<()> {
    let dir = match args.data_dir {
        Some(dir) => dir,
        None => dev_data_dir::default_dir()
            .context("no data dir: set HOME or XDG_DATA_HOME, or pass --data-dir")?,
    };
    let data_dir = DataDir::open(&dir)?;
    let (token, token_origin) = dev_token::load_or_create(&data_dir.token_file())?;
    let admin_token: AdminToken = token.parse().context("the dev token")?;
    let worker_id = data_dir.worker_id()?;
    let database_url = data_dir.database_url()?;

    // Both take a few milliseconds; the engine is checked up front so that
    // `jobs dev` never says it is ready when no job could run.
    let (store, engine) = tokio::join!(
        Store::connect(&database_url),
        Runtime::connect(None, PullPolicy::Missing)
    );
    engine.context(
        "jobs dev runs jobs on the local Docker engine, which does not answer \
         (is it running? is DOCKER_HOST right?)",
    )?;
    let store = store.with_context(|| format!("opening the database {database_url}"))?;
    renew_held_leases(&store, &worker_id).await?;
    // Wake-ups lived in memory and died with the previous process: the
    // relay republishes every queued job marked unpublished.
    store
        .forget_publications()
        .await
        .context("marking queued jobs for dispatch")?;

    // Uploads and artifacts live in the data directory: no object store to
    // configure.
    let objects_url = data_dir.objects_url()?;
    let blobs = Blobs::from_url(&objects_url)?;
    let queue = InProcessQueue::new();
    let application = Application::build_with(
        args.listen,
        admin_token,
        store.clone(),
        Publisher::InProcess(queue.clone()),
        // `jobs dev` has no quota flags; the API's variables still apply.
        Quotas::from_env()?,
        ObjectSettings::from_env(blobs)?,
    )
    .await
    .map_err(|err| explain_bind_error(err, args.listen))?;

    let api_stop = application.shutdown_token();
    let worker_stop = CancellationToken::new();
    // Registered before the ready line, so that a signal sent as soon as
    // the line appears is handled, not fatal.
    let signals = Signals::register()?;
    tokio::spawn(stop_on_signal(
        signals,
        api_stop.clone(),
        worker_stop.clone(),
    ));

    announce(
        application.address(),
        &data_dir,
        token_origin,
        started.elapsed(),
    )?;

    let worker = jobs_worker::worker::run_with(
        worker_config(worker_id, args.slots, objects_url),
        store,
        Consumers::InProcess(queue),
        worker_stop.clone(),
    );
    let api = tokio::spawn(application.run_until_stopped());
    let worker = tokio::spawn(worker);
    // Whichever part ends first, on a signal or an error, stops the other.
    let (api, worker) = tokio::join!(
        async {
            let ended = api.await;
            worker_stop.cancel();
            ended
        },
        async {
            let ended = worker.await;
            api_stop.cancel();
            ended
        },
    );
    api.context("the API panicked")?.context("the API")?;
    worker
        .context("the worker panicked")?
        .context("the worker")?;
    Ok(())
}

/// Renews the leases of the jobs the previous process's worker held. It
/// may have been down for longer than a lease, and the reaper, which starts
/// with the API, would then record them `lost`; renewed, they are left to
/// the worker's reconciliation, which reads from their containers how they
/// really ended.
async fn renew_held_leases(store: &Store, worker_id: &str) -> anyhow::Result<()> {
    let held = store
        .jobs_held_by(worker_id)
        .await
        .context("reading the jobs held at the last stop")?;
    for job in held {
        store
            .heartbeat(&job.fence, LEASE)
            .await
            .context("renewing the lease of a held job")?;
    }
    Ok(())
}

/// The worker's configuration. Its store and dispatcher are passed in, so
/// the database and broker settings are never read.
fn worker_config(
    worker_id: String,
    slots: u16,
    object_store: String,
) -> jobs_worker::config::Config {
    jobs_worker::config::Config {
        config: None,
        database_url: String::new(),
        amqp_url: String::new(),
        amqp_queue: String::new(),
        amqp_queue_type: QueueType::Quorum,
        slots,
        worker_id: Some(worker_id),
        lease: LEASE,
        stop_grace: STOP_GRACE,
        drain_timeout: DRAIN_TIMEOUT,
        pull: PullPolicy::Missing,
        // Docker's defaults, which honour DOCKER_HOST.
        docker_host: None,
        // `jobs dev` prints its own ready line.
        print_ready: false,
        log_format: "text".into(),
        attach_grace: std::time::Duration::from_secs(
            jobs_core::attach::DEFAULT_ATTACH_GRACE_SECONDS,
        ),
        // The worker dials back to the API in this process, over loopback.
        ca_cert: None,
        object_store,
        max_artifact_bytes: jobs_core::spec::DEFAULT_MAX_UPLOAD_BYTES,
        engine_grace: jobs_worker::runtime::DEFAULT_ENGINE_GRACE,
        // `jobs dev` serves its API's metrics, not a second port.
        metrics_listen: None,
        // A developer's machine, run as themselves: no iptables. Jobs still
        // get a network per app.
        host_firewall: false,
        host_ports_allowed: Vec::new(),
    }
}

fn init_logging() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    // Only fails when a subscriber is installed already, which is harmless.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Says that the port is taken and what to do, rather than only the errno.
fn explain_bind_error(err: anyhow::Error, listen: SocketAddr) -> anyhow::Error {
    let in_use = err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::AddrInUse)
    });
    if in_use {
        err.context(format!(
            "{listen} is taken (by another jobs dev or jobs-api?): stop it, or pass --listen ADDR"
        ))
    } else {
        err
    }
}

/// The ready line on stdout, for scripts and tests, and a few lines on
/// stderr for the person at the terminal.
fn announce(
    address: SocketAddr,
    data_dir: &DataDir,
    token_origin: Origin,
    elapsed: Duration,
) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {address}").context("writing to stdout")?;
    stdout.flush().context("writing to stdout")?;
    drop(stdout);

    let url = api_url(address);
    let token_file = data_dir.token_file();
    let token_note = match token_origin {
        Origin::Created => "new",
        Origin::Reused => "kept",
        Origin::ReplacedExposed => "replaced: the old file was readable by other users",
    };
    let mut exports = Vec::new();
    if url != DEFAULT_API_URL {
        exports.push(format!("JOBS_API_URL={url}"));
    }
    if !is_cli_data_dir(data_dir.path()) {
        exports.push(format!("{DATA_DIR_ENV}={}", data_dir.path().display()));
    }
    let mut banner = format!(
        "jobs dev: ready in {} ms on {url}\n  data dir:   {}\n  token file: {} ({token_note})\n",
        elapsed.as_millis(),
        data_dir.path().display(),
        token_file.display(),
    );
    if !exports.is_empty() {
        banner.push_str(&format!("  for the CLI: export {}\n", exports.join(" ")));
    }
    let cli = crate::shell::command_name();
    banner.push_str(&format!(
        "  try:        {cli} apps create demo --image busybox:latest\n              \
         {cli} run -- sh -c 'echo hello; exit 3'\n  \
         Ctrl-C stops it; apps, jobs and logs are kept for the next start.\n",
    ));
    eprint!("{banner}");
    Ok(())
}

/// The URL a client uses: an unspecified address (`0.0.0.0`) is reached
/// through loopback.
fn api_url(address: SocketAddr) -> String {
    let mut address = address;
    if address.ip().is_unspecified() {
        address.set_ip(match address {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    format!("http://{address}")
}

/// Whether the CLI, as configured in this environment, reads its token
/// from this data dir.
fn is_cli_data_dir(path: &Path) -> bool {
    dev_data_dir::cli_dir()
        .and_then(|dir| std::path::absolute(dir).ok())
        .is_some_and(|dir| dir == path)
}

/// SIGINT and SIGTERM, listened to from their registration on.
struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    fn register() -> anyhow::Result<Signals> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt()).context("listening for Ctrl-C")?,
            terminate: signal(SignalKind::terminate()).context("listening for SIGTERM")?,
        })
    }
}

/// Stops both parts on the first signal. The worker then lets running jobs
/// finish for [`DRAIN_TIMEOUT`]; it listens for a second signal itself, and
/// stops them at once on it.
async fn stop_on_signal(mut signals: Signals, api: CancellationToken, worker: CancellationToken) {
    tokio::select! {
        _ = signals.interrupt.recv() => {}
        _ = signals.terminate.recv() => {}
        // Stopped for another reason: nothing to wait for.
        () = worker.cancelled() => return,
    }
    eprintln!(
        "jobs dev: stopping; running jobs get {} s to finish (Ctrl-C again stops them now)",
        DRAIN_TIMEOUT.as_secs()
    );
    api.cancel();
    worker.cancel();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unspecified_address_is_reached_through_loopback() {
        assert_eq!(
            api_url("0.0.0.0:8420".parse().unwrap()),
            "http://127.0.0.1:8420"
        );
        assert_eq!(api_url("[::]:1".parse().unwrap()), "http://[::1]:1");
        assert_eq!(api_url("127.0.0.1:8420".parse().unwrap()), DEFAULT_API_URL);
    }
}
