//! The server's configuration: command-line flags, each with an environment
//! variable, checked once at startup.
//!
//! [`Args`] is what clap parses; [`Config`] is what the server runs with. The
//! step between them turns "absent" and "too short" into clear startup errors,
//! so that the rest of the code never sees an `Option` where a value is
//! required.

use std::{fmt, net::SocketAddr, num::NonZeroU32, path::PathBuf, str::FromStr};

use clap::{Parser, ValueEnum};
use jobs_dispatch::{AmqpConfig, QueueType, amqp::parse_broker_urls};

use jobs_blobs::Blobs;

use crate::{
    attach::AttachSettings,
    body_rate::BodyRate,
    connections::{ConnectionSettings, default_max_connections, raise_fd_limit},
    objects::ObjectSettings,
    quotas::Quotas,
    rate_limit::RateLimit,
    tls::TlsFiles,
};

/// The shortest admin token the server accepts.
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;

/// jobs-api: the HTTP API of jobs.
#[derive(Debug, Parser)]
#[command(name = "jobs-api", version, about)]
pub struct Args {
    /// A TOML file of settings whose keys are the long flags below, with
    /// `_` or `-` between words (`listen = "0.0.0.0:8420"`). A flag beats
    /// its environment variable, which beats the file, which beats the
    /// default. An unknown key or a bad value fails the start.
    #[arg(long, env = "JOBS_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "JOBS_LISTEN", default_value = "127.0.0.1:8420")]
    pub listen: SocketAddr,

    /// PostgreSQL URL, such as postgres://user:pass@host/db.
    #[arg(long, env = "JOBS_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// RabbitMQ URL that carries job wake-ups; the nodes of a cluster as
    /// several URLs separated by commas, tried in turn.
    #[arg(
        long,
        env = "JOBS_AMQP_URL",
        hide_env_values = true,
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f",
        value_parser = parse_broker_urls
    )]
    pub amqp_url: String,

    /// Queue that carries job wake-ups; workers must consume the same one.
    #[arg(long, env = "JOBS_AMQP_QUEUE", default_value = "jobs.ready")]
    pub amqp_queue: String,
    /// The kind of queue declared: `quorum` (replicated; RabbitMQ 3.8 or
    /// later) or `classic` (older brokers). An existing queue keeps its kind.
    #[arg(long, env = "JOBS_AMQP_QUEUE_TYPE", default_value = "quorum")]
    pub amqp_queue_type: QueueType,

    /// Bootstrap admin token, at least 16 characters; clients send it as
    /// `Authorization: Bearer TOKEN`.
    #[arg(long, env = "JOBS_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// PEM certificate chain to serve HTTPS with; needs --tls-key. Without
    /// both, the API serves plain HTTP (put it behind a TLS proxy then).
    #[arg(long, env = "JOBS_TLS_CERT", value_name = "PATH")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long, env = "JOBS_TLS_KEY", value_name = "PATH")]
    pub tls_key: Option<PathBuf>,

    /// Queued jobs per app, a flood limit (interactive runs aside);
    /// creating one more is refused with 429. How many run at once is each
    /// app's `max_running`.
    #[arg(long, env = "JOBS_MAX_QUEUED_JOBS_PER_APP", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_queued_jobs_per_app: u32,

    /// Tasks of one group (`jobs run --tasks N`); more is refused with 422.
    #[arg(long, env = "JOBS_MAX_TASKS_PER_GROUP", default_value_t = jobs_core::groups::DEFAULT_MAX_TASKS,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_tasks_per_group: u32,

    /// Requests per second per token under /v1; more get 429 with Retry-After.
    #[arg(long, env = "JOBS_RATE_LIMIT_PER_SECOND", default_value = "50")]
    pub rate_limit_per_second: NonZeroU32,

    /// Requests a token may send at once above its rate.
    #[arg(long, env = "JOBS_RATE_LIMIT_BURST", default_value = "100")]
    pub rate_limit_burst: NonZeroU32,

    /// Connections open at once (TLS handshakes and WebSockets included).
    /// At the limit, a new connection closes the one idle the longest; with
    /// none idle, it waits in the kernel's queue. Default: three quarters
    /// of the open file limit (whose soft value is raised to the hard one).
    #[arg(long, env = "JOBS_MAX_CONNECTIONS", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: Option<u32>,

    /// How long a request head (request line and headers) may take from its
    /// first byte, such as 30s; past it, the connection is closed.
    #[arg(long, env = "JOBS_HEADER_READ_TIMEOUT", value_name = "DUR", default_value = "30s",
          value_parser = parse_positive_duration)]
    pub header_read_timeout: std::time::Duration,

    /// How long a connection may go without a request, from its opening or
    /// the end of its last response, such as 60s; then it is closed.
    #[arg(long, env = "JOBS_IDLE_TIMEOUT", value_name = "DUR", default_value = "60s",
          value_parser = parse_positive_duration)]
    pub idle_timeout: std::time::Duration,

    /// Bytes per second a request body must average over each
    /// --body-rate-window of waiting for it; a slower one is cut off with
    /// 408. 0 turns the check off.
    #[arg(long, env = "JOBS_MIN_BODY_RATE", value_name = "BYTES",
          default_value_t = crate::body_rate::DEFAULT_MIN_BODY_RATE)]
    pub min_body_rate: u64,

    /// The window over which --min-body-rate is measured, such as 20s.
    #[arg(long, env = "JOBS_BODY_RATE_WINDOW", value_name = "DUR", default_value = "20s",
          value_parser = parse_positive_duration)]
    pub body_rate_window: std::time::Duration,

    /// Log streams (`jobs follow`) one token may hold open; one more is a 429.
    #[arg(long, env = "JOBS_MAX_LOG_STREAMS_PER_TOKEN", value_name = "N",
          default_value_t = crate::token_slots::DEFAULT_LOG_STREAMS_PER_TOKEN as u32,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_log_streams_per_token: u32,

    /// Attach sockets (interactive runs) one token may hold open; one more
    /// is a 429.
    #[arg(long, env = "JOBS_MAX_ATTACH_SOCKETS_PER_TOKEN", value_name = "N",
          default_value_t = crate::token_slots::DEFAULT_ATTACH_SOCKETS_PER_TOKEN as u32,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_attach_sockets_per_token: u32,

    /// Failed authentications a minute from one client address; past them
    /// the address gets 429 for every request that needs a token.
    #[arg(long, env = "JOBS_AUTH_FAILURES_PER_MINUTE", value_name = "N",
          default_value_t = NonZeroU32::new(crate::auth_failures::DEFAULT_AUTH_FAILURES_PER_MINUTE).expect("not zero"))]
    pub auth_failures_per_minute: NonZeroU32,

    /// This API's base URL as workers reach it, for the WebSocket they dial
    /// back on for an interactive run. Defaults to http(s)://LISTEN (with
    /// 127.0.0.1 for an unspecified address): set it when workers run on
    /// other hosts or the API sits behind a proxy.
    #[arg(long, env = "JOBS_ADVERTISE_URL", value_name = "URL")]
    pub advertise_url: Option<String>,

    /// How long an interactive run whose client dropped waits for it to
    /// reattach before it is stopped. A client that detaches on purpose
    /// (Ctrl-P Ctrl-Q) gets no deadline.
    #[arg(long, env = "JOBS_ATTACH_GRACE", default_value = "60s", value_parser = parse_grace)]
    pub attach_grace: std::time::Duration,

    /// A PEM file of CA certificates to trust, besides the system's, when
    /// a client's attach is relayed to the API that holds its run over
    /// HTTPS with a private CA.
    #[arg(long, env = "JOBS_CA_CERT", value_name = "PATH")]
    pub ca_cert: Option<PathBuf>,
    /// Where uploads and artifacts live: `s3://bucket/prefix` (credentials,
    /// region and a custom endpoint from the standard AWS_* variables, e.g.
    /// AWS_ENDPOINT and AWS_ALLOW_HTTP) or `file:///path`. Workers need the
    /// same store.
    #[arg(
        long,
        env = "JOBS_OBJECT_STORE",
        value_name = "URL",
        default_value = "file:///var/lib/jobs/objects"
    )]
    pub object_store: String,

    /// The largest file one upload may be, in bytes (default 5 GiB).
    #[arg(long, env = "JOBS_MAX_UPLOAD_BYTES", value_name = "BYTES",
          default_value_t = jobs_core::spec::DEFAULT_MAX_UPLOAD_BYTES)]
    pub max_upload_bytes: u64,

    /// The most bytes of uploads one job may take (default 20 GiB).
    #[arg(long, env = "JOBS_MAX_UPLOAD_TOTAL_BYTES", value_name = "BYTES",
          default_value_t = jobs_core::spec::DEFAULT_MAX_UPLOAD_TOTAL_BYTES)]
    pub max_upload_total_bytes: u64,

    /// Days an ended job is kept, with its logs, uploads and artifacts;
    /// fractions allowed.
    #[arg(long, env = "JOBS_RETENTION_DAYS", value_name = "DAYS", default_value = "30",
          value_parser = crate::objects::parse_retention_days)]
    pub retention_days: std::time::Duration,

    /// How long an upload that no job took is kept, such as 24h.
    #[arg(long, env = "JOBS_FREE_UPLOAD_TTL", value_name = "DUR", default_value = "24h",
          value_parser = parse_duration)]
    pub free_upload_ttl: std::time::Duration,

    /// How often the reaper looks for expired leases, such as 2s: a job
    /// whose worker died ends `lost` (or is queued again if it never
    /// started) within the worker's lease plus this.
    #[arg(long, env = "JOBS_REAPER_INTERVAL", value_name = "DUR", default_value = "2s",
          value_parser = parse_positive_duration)]
    pub reaper_interval: std::time::Duration,

    /// How long a worker that stopped heartbeating without saying goodbye
    /// (killed, or its host lost) stays in `jobs workers` as stale, such as
    /// 24h; it is forgotten after that, unless it is draining or still
    /// holds a job.
    #[arg(long, env = "JOBS_FORGET_WORKERS_AFTER", value_name = "DUR", default_value = "24h",
          value_parser = parse_forget_workers_after)]
    pub forget_workers_after: std::time::Duration,

    /// How long an idempotency key names the job it made, such as 24h;
    /// after that, the same key makes a new job.
    #[arg(long, env = "JOBS_IDEMPOTENCY_TTL", value_name = "DUR", default_value = "24h",
          value_parser = parse_positive_duration)]
    pub idempotency_ttl: std::time::Duration,

    /// Log line format on stderr. The level comes from RUST_LOG (default info).
    #[arg(long, env = "JOBS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    jobs_core::duration::parse_duration("duration", text).map_err(|e| e.message)
}

fn parse_positive_duration(text: &str) -> Result<std::time::Duration, String> {
    let duration = parse_duration(text)?;
    if duration.is_zero() {
        return Err("must be longer than 0s".to_owned());
    }
    Ok(duration)
}

/// At least the window after which a worker is stale: a shorter one would
/// forget live workers between their heartbeats.
fn parse_forget_workers_after(text: &str) -> Result<std::time::Duration, String> {
    let duration = parse_duration(text)?;
    let fresh = crate::attach::WORKER_FRESH;
    if duration < fresh {
        return Err(format!(
            "must be at least {} (a worker is stale only after that)",
            humantime::format_duration(fresh)
        ));
    }
    Ok(duration)
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// A startup configuration problem, worded for the operator.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("no database URL: pass --database-url or set JOBS_DATABASE_URL")]
    MissingDatabaseUrl,
    #[error(
        "no admin token: pass --admin-token or set JOBS_ADMIN_TOKEN \
         (at least {MIN_ADMIN_TOKEN_LEN} characters)"
    )]
    MissingAdminToken,
    #[error(
        "the admin token is {0} characters long: it must be at least \
         {MIN_ADMIN_TOKEN_LEN} characters"
    )]
    AdminTokenTooShort(usize),
    #[error(
        "{given} is set but {missing} is not: pass both --tls-cert and --tls-key \
         (or JOBS_TLS_CERT and JOBS_TLS_KEY) to serve HTTPS, or neither to serve HTTP"
    )]
    TlsIncomplete {
        given: &'static str,
        missing: &'static str,
    },
    #[error("--object-store (JOBS_OBJECT_STORE): {0}")]
    ObjectStore(String),
    #[error("--amqp-url (JOBS_AMQP_URL): {0}")]
    Broker(String),
}

/// The token that grants every right. Its `Debug` output never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(String);

impl AdminToken {
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl FromStr for AdminToken {
    type Err = ConfigError;

    fn from_str(token: &str) -> Result<Self, Self::Err> {
        let length = token.chars().count();
        if length < MIN_ADMIN_TOKEN_LEN {
            return Err(ConfigError::AdminTokenTooShort(length));
        }
        Ok(Self(token.to_owned()))
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(***)")
    }
}

/// Everything the server needs to start, already checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: String,
    pub amqp: AmqpConfig,
    pub admin_token: AdminToken,
    /// Serve HTTPS with these files; plain HTTP when `None`.
    pub tls: Option<TlsFiles>,
    pub quotas: Quotas,
    pub connections: ConnectionSettings,
    pub objects: ObjectSettings,
    pub attach: AttachSettings,
    pub reaper_interval: std::time::Duration,
    pub forget_workers_after: std::time::Duration,
    pub idempotency_ttl: std::time::Duration,
}

fn parse_grace(text: &str) -> Result<std::time::Duration, String> {
    jobs_core::duration::parse_duration("attach grace", text).map_err(|e| e.message)
}

impl Config {
    /// Checks the parsed flags and builds the configuration.
    pub fn from_args(args: Args) -> Result<Self, ConfigError> {
        let database_url = args
            .database_url
            .filter(|url| !url.is_empty())
            .ok_or(ConfigError::MissingDatabaseUrl)?;
        let admin_token = args
            .admin_token
            .ok_or(ConfigError::MissingAdminToken)?
            .parse()?;
        // An empty value counts as absent, as for the database URL, so that
        // `JOBS_TLS_CERT=` in an env file does not half-enable TLS.
        let present = |path: Option<PathBuf>| path.filter(|path| !path.as_os_str().is_empty());
        let tls = match (present(args.tls_cert), present(args.tls_key)) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::TlsIncomplete {
                    given: "--tls-cert",
                    missing: "--tls-key",
                });
            }
            (None, Some(_)) => {
                return Err(ConfigError::TlsIncomplete {
                    given: "--tls-key",
                    missing: "--tls-cert",
                });
            }
        };
        let blobs = Blobs::from_url(&args.object_store)
            .map_err(|error| ConfigError::ObjectStore(format!("{error:#}")))?;
        let objects = ObjectSettings {
            max_upload_bytes: args.max_upload_bytes,
            max_upload_total_bytes: args.max_upload_total_bytes,
            retention: args.retention_days,
            free_upload_ttl: args.free_upload_ttl,
            ..ObjectSettings::new(blobs)
        };
        Ok(Self {
            objects,
            reaper_interval: args.reaper_interval,
            forget_workers_after: args.forget_workers_after,
            idempotency_ttl: args.idempotency_ttl,
            listen: args.listen,
            database_url,
            amqp: AmqpConfig::new(&args.amqp_url, args.amqp_queue, args.amqp_queue_type)
                .map_err(ConfigError::Broker)?,
            admin_token,
            tls,
            attach: AttachSettings {
                advertise_url: args.advertise_url.filter(|url| !url.is_empty()),
                grace: args.attach_grace,
                peer_ca_cert: args.ca_cert,
            },
            quotas: Quotas {
                max_queued_jobs_per_app: i64::from(args.max_queued_jobs_per_app),
                max_tasks_per_group: args.max_tasks_per_group,
                rate: RateLimit {
                    per_second: args.rate_limit_per_second,
                    burst: args.rate_limit_burst,
                },
                log_streams_per_token: args.max_log_streams_per_token as usize,
                attach_sockets_per_token: args.max_attach_sockets_per_token as usize,
                auth_failures_per_minute: args.auth_failures_per_minute,
                body_rate: BodyRate {
                    min_bytes_per_second: args.min_body_rate,
                    window: args.body_rate_window,
                },
            },
            connections: ConnectionSettings {
                max_connections: match args.max_connections {
                    Some(max) => max as usize,
                    None => default_max_connections(raise_fd_limit()),
                },
                header_read_timeout: args.header_read_timeout,
                idle_timeout: args.idle_timeout,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &[&str]) -> Args {
        let mut argv = vec!["jobs-api"];
        argv.extend_from_slice(extra);
        Args::try_parse_from(argv).expect("flags parse")
    }

    #[test]
    fn a_missing_or_short_admin_token_refuses_to_start() {
        let args = parse(&["--database-url", "postgres://x"]);
        // The environment of the test run might set the token; clear it in the
        // parsed value so that the test does not depend on it.
        let args = Args {
            admin_token: None,
            ..args
        };
        assert_eq!(
            Config::from_args(args).unwrap_err(),
            ConfigError::MissingAdminToken
        );
        let short = parse(&["--database-url", "postgres://x", "--admin-token", "short"]);
        let err = Config::from_args(short).unwrap_err();
        assert_eq!(err, ConfigError::AdminTokenTooShort(5));
        assert!(err.to_string().contains("at least 16 characters"), "{err}");
    }

    #[test]
    fn tls_needs_both_the_certificate_and_the_key() {
        let base: [&str; 6] = [
            "--database-url",
            "postgres://x",
            "--admin-token",
            "0123456789abcdef",
            "--object-store",
            "file:///tmp/jobs-api-config-test/objects",
        ];
        // Clear what the environment of the test run might set.
        let with = |cert: Option<&str>, key: Option<&str>| Args {
            tls_cert: cert.map(PathBuf::from),
            tls_key: key.map(PathBuf::from),
            ..parse(&base)
        };
        for (args, given) in [
            (with(Some("c.pem"), None), "--tls-cert"),
            (with(None, Some("k.pem")), "--tls-key"),
            (with(Some("c.pem"), Some("")), "--tls-cert"),
        ] {
            let message = Config::from_args(args).unwrap_err().to_string();
            assert!(message.starts_with(given), "{message}");
            for named in ["--tls-cert", "--tls-key", "JOBS_TLS_CERT", "JOBS_TLS_KEY"] {
                assert!(message.contains(named), "{message}");
            }
        }
        assert_eq!(Config::from_args(with(None, None)).unwrap().tls, None);
        let both = Config::from_args(with(Some("c.pem"), Some("k.pem"))).unwrap();
        assert_eq!(
            both.tls,
            Some(TlsFiles {
                cert: "c.pem".into(),
                key: "k.pem".into()
            })
        );
    }

    #[test]
    fn workers_are_never_forgotten_before_they_are_stale() {
        let args = |value: &str| {
            Args::try_parse_from(["jobs-api", "--forget-workers-after", value])
                .map(|args| args.forget_workers_after)
        };
        let message = args("14s").unwrap_err().to_string();
        assert!(message.contains("--forget-workers-after"), "{message}");
        assert!(message.contains("must be at least 15s"), "{message}");
        assert_eq!(args("15s").unwrap(), std::time::Duration::from_secs(15));
    }

    #[test]
    fn defaults_match_the_contract() {
        // Read the declared defaults, not parsed values, so that variables
        // set in the environment of the test run do not matter.
        use clap::CommandFactory;
        let command = Args::command();
        let default_of = |id: &str| {
            command
                .get_arguments()
                .find(|argument| argument.get_id() == id)
                .and_then(|argument| argument.get_default_values().first())
                .map(|value| value.to_string_lossy().into_owned())
        };
        assert_eq!(default_of("listen").as_deref(), Some("127.0.0.1:8420"));
        assert_eq!(default_of("amqp_queue").as_deref(), Some("jobs.ready"));
        assert_eq!(default_of("forget_workers_after").as_deref(), Some("24h"));
        assert_eq!(
            default_of("amqp_url").as_deref(),
            Some("amqp://guest:guest@127.0.0.1:5672/%2f")
        );
    }

    #[test]
    fn the_admin_token_never_shows_in_debug_output() {
        let token: AdminToken = "0123456789abcdef".parse().expect("long enough");
        assert_eq!(format!("{token:?}"), "AdminToken(***)");
    }
}
