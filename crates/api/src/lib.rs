//! `jobs-api`: the HTTP API of `jobs`.
//!
//! The API validates requests, commits jobs to PostgreSQL, publishes their
//! wake-ups to RabbitMQ, and serves jobs and their logs back, including a
//! live log stream. It never runs containers; workers do.
//!
//! Module map:
//! - [`config`]: flags and environment variables, checked at startup;
//! - [`telemetry`]: the one log subscriber, on stderr;
//! - [`startup`]: [`Application`], which binds, serves and shuts down;
//! - [`tls`]: HTTPS: the certificate files and the bounds of handshakes;
//! - [`serve`]: the accept loop and the connections, HTTP or HTTPS;
//! - [`connections`]: the connection limit, the idle and header timeouts;
//! - [`body_rate`]: the minimum rate of request bodies;
//! - [`state`]: the handles every handler shares;
//! - [`routes`]: the route table and the handlers of `/v1`;
//! - [`requests`]: request bodies and queries, and their validation;
//! - [`extract`]: JSON and query extractors that fail with [`ApiError`];
//! - [`error`]: [`ApiError`], the one error type, and its statuses;
//! - [`quotas`]: the active-job limit per app and the request rate, from the environment;
//! - [`rate_limit`]: the request rate per token;
//! - [`token_slots`]: log streams and attach sockets per token;
//! - [`auth_failures`]: failed authentications per client address;
//! - [`auth`]: the bearer-token check, resolving a token to a [`principal::Principal`];
//! - [`principal`]: who calls, and the role and app checks of every handler;
//! - [`follow`]: the Server-Sent Events log stream;
//! - [`idempotency`]: what a repeated idempotency key returns, and when it expires;
//! - [`attach`]: interactive runs: the line for workers and the WebSocket bridge;
//! - [`relay`]: the outbox relay, the reaper loop and the purge;
//! - [`objects`]: the object store of uploads and artifacts, its limits and the purge;
//! - [`metrics`]: Prometheus counters and the request log line;
//! - [`request_id`]: the id of each API call, in its log lines and its `x-request-id` header;
//! - [`openapi`]: the OpenAPI document of every route, `GET /v1/openapi.json`;
//! - [`console`]: the web console at `/`, its pages and assets embedded.
//!
//! Architecture invariant: this crate holds no SQL, no AMQP and no object
//! store client. It reaches PostgreSQL only through `jobs_store`, RabbitMQ
//! only through `jobs_dispatch` and S3 only through `jobs_blobs`.

pub mod attach;
pub mod auth;
pub mod auth_failures;
pub mod body_rate;
pub mod config;
pub mod connections;
pub mod console;
pub mod error;
pub mod extract;
pub mod follow;
pub mod idempotency;
pub mod metrics;
pub mod objects;
pub mod openapi;
pub mod principal;
pub mod quotas;
pub mod rate_limit;
pub mod relay;
pub mod request_id;
pub mod requests;
pub mod routes;
pub mod serve;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod tls;
pub mod token_slots;

pub use config::Config;
pub use error::ApiError;
pub use startup::Application;
