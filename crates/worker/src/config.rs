//! The worker's configuration: flags, each with its environment variable.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use jobs_core::{Size, size::SizeLimits};
use jobs_dispatch::{QueueType, amqp::parse_broker_urls};

use crate::runtime::PullPolicy;

fn parse_duration(text: &str) -> Result<Duration, String> {
    jobs_core::duration::parse_duration("duration", text).map_err(|e| e.message)
}

/// Runs queued jobs in containers on this host's Docker engine.
#[derive(Debug, Clone, Parser)]
#[command(name = "jobs-worker", version)]
pub struct Config {
    /// A TOML file of settings whose keys are the long flags below, with
    /// `_` or `-` between words (`listen = "0.0.0.0:8420"`). A flag beats
    /// its environment variable, which beats the file, which beats the
    /// default. An unknown key or a bad value fails the start.
    #[arg(long, env = "JOBS_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// The PostgreSQL database, `postgres://…`.
    #[arg(long, env = "JOBS_DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// The RabbitMQ broker, `amqp://…`; the nodes of a cluster as several
    /// URLs separated by commas, tried in turn.
    #[arg(
        long,
        env = "JOBS_AMQP_URL",
        hide_env_values = true,
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f",
        value_parser = parse_broker_urls
    )]
    pub amqp_url: String,
    /// The queue that carries job wake-ups.
    #[arg(long, env = "JOBS_AMQP_QUEUE", default_value = "jobs.ready")]
    pub amqp_queue: String,
    /// The kind of queue declared: `quorum` (replicated; RabbitMQ 3.8 or
    /// later) or `classic` (older brokers). An existing queue keeps its kind.
    #[arg(long, env = "JOBS_AMQP_QUEUE_TYPE", default_value = "quorum")]
    pub amqp_queue_type: QueueType,
    /// How many jobs run at once on this host.
    #[arg(long, env = "JOBS_WORKER_SLOTS", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub slots: u16,
    /// This worker's stable name; containers carry it as a label. Defaults
    /// to the host name, so that a restarted worker finds its containers.
    #[arg(long, env = "JOBS_WORKER_ID")]
    pub worker_id: Option<String>,
    /// How long a claim lives without a heartbeat (renewed every third).
    #[arg(long, env = "JOBS_LEASE", default_value = "30s", value_parser = parse_duration)]
    pub lease: Duration,
    /// Time between SIGTERM and SIGKILL when a job is canceled or times out.
    #[arg(long, env = "JOBS_STOP_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub stop_grace: Duration,
    /// How long a SIGTERM'd worker lets running jobs finish before it stops them.
    #[arg(long, env = "JOBS_DRAIN_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// Whether to pull an image that is not on this host.
    #[arg(long, env = "JOBS_PULL", value_enum, default_value = "missing")]
    pub pull: PullPolicy,
    /// The Docker engine: `unix:///path` or `tcp://host:port`. Unset means
    /// Docker's defaults (the local socket).
    #[arg(long, env = "DOCKER_HOST")]
    pub docker_host: Option<String>,
    /// Whether to close this host's own ports to jobs with iptables
    /// (`crate::host_firewall`); needs root (CAP_NET_ADMIN).
    #[arg(long, env = "JOBS_HOST_FIREWALL", default_value_t = true, action = clap::ArgAction::Set)]
    pub host_firewall: bool,
    /// Ports of this host that jobs may still reach (TCP and UDP), such as
    /// a local database's: `5432,6432`.
    #[arg(
        long,
        env = "JOBS_HOST_PORTS_ALLOWED",
        value_delimiter = ',',
        value_name = "PORTS"
    )]
    pub host_ports_allowed: Vec<u16>,
    /// How long a running job waits for an unreachable Docker engine (a
    /// restart of dockerd) to answer again before it is recorded `lost`.
    #[arg(long, env = "JOBS_ENGINE_GRACE", default_value = "5m", value_parser = parse_duration)]
    pub engine_grace: Duration,
    /// How long an interactive run's API may stay unreachable before the run
    /// is stopped (the worker dials it again meanwhile).
    #[arg(long, env = "JOBS_ATTACH_GRACE", default_value = "60s", value_parser = parse_duration)]
    pub attach_grace: Duration,
    /// A PEM file of CA certificates to trust, besides the system's, when
    /// dialing back to an API that serves HTTPS with a private CA.
    #[arg(long, env = "JOBS_CA_CERT", value_name = "PATH")]
    pub ca_cert: Option<std::path::PathBuf>,
    /// Where uploads and artifacts live, as the API has it: `s3://bucket/prefix`
    /// (credentials, region and a custom endpoint from the standard AWS_*
    /// variables, e.g. AWS_ENDPOINT and AWS_ALLOW_HTTP) or `file:///path`.
    #[arg(
        long,
        env = "JOBS_OBJECT_STORE",
        value_name = "URL",
        default_value = "file:///var/lib/jobs/objects"
    )]
    pub object_store: String,
    /// The largest one artifact may be, in bytes (its tar archive); a
    /// larger one is noted in the job and not kept. Default 5 GiB.
    #[arg(long, env = "JOBS_MAX_ARTIFACT_BYTES", value_name = "BYTES",
          default_value_t = jobs_core::spec::DEFAULT_MAX_UPLOAD_BYTES)]
    pub max_artifact_bytes: u64,
    /// Whether to print `worker ID ready` on stdout once consuming; off when
    /// the worker runs inside `jobs dev`.
    #[arg(skip = true)]
    pub print_ready: bool,
    /// `text` or `json` log lines on stderr.
    #[arg(long, env = "JOBS_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
    /// Where to serve Prometheus metrics at `GET /metrics` (no token), e.g.
    /// `0.0.0.0:9464`. Unset: not served.
    #[arg(long, env = "JOBS_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,
}

impl Config {
    /// The HTTP client of the dial-back WebSockets.
    pub fn api_client(&self) -> anyhow::Result<reqwest::Client> {
        use anyhow::Context;
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true);
        if let Some(path) = self.ca_cert.as_ref().filter(|p| !p.as_os_str().is_empty()) {
            let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("{} holds no PEM certificate", path.display()))?;
            builder = builder.tls_certs_merge(certificates);
        }
        builder.build().context("building the HTTP client")
    }

    pub fn worker_id(&self) -> String {
        self.worker_id.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .map(|name| name.trim().to_owned())
                .ok()
                .filter(|name| !name.is_empty())
                .unwrap_or_else(|| "worker".to_owned())
        })
    }

    /// The resources of a size on this worker.
    pub fn limits_for(&self, size: Size) -> SizeLimits {
        size.default_limits()
    }
}
