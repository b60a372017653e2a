//! The end-to-end harness: it drives the real `jobs`, `jobs-api` and
//! `jobs-worker` binaries against real PostgreSQL, RabbitMQ and Docker.
//!
//! - [`binaries`]: where the binaries of the same build are;
//! - [`env`]: [`TestEnv`], one isolated system per test (its own database,
//!   queue, worker id and admin token), torn down on drop;
//! - [`cli`]: running the CLI with a deadline, in the foreground or the
//!   background, and asserting on what it printed;
//! - [`dev_env`]: [`DevEnv`], the real `jobs dev` on a throw-away home
//!   directory, with the CLI set up as on a developer's machine;
//! - [`docker`]: the containers a worker left behind and Docker's event log;
//! - [`docker_proxy`]: a proxy in front of Docker that stalls container
//!   starts, to crash a worker at the moment a start is under way;
//! - [`executions`]: how many times a job ran, counted by container starts;
//! - [`http`]: a minimal HTTP client for checks against the API itself;
//! - [`install`]: the CLI installed by `deploy/install.sh` into a prefix;
//! - [`netns`]: "hosts" of their own: network namespaces on a bridge, for
//!   workers that reach the services only over the network;
//! - [`private_dockerd`]: a Docker engine of a test's own, to restart or
//!   to fill the disk of;
//! - [`poll`]: waiting for a condition with a deadline, the only way tests
//!   synchronise (never a bare sleep);
//! - [`expect`]: expected outputs and byte-exact comparisons;
//! - [`pty`]: a real pseudo-terminal for the CLI (interactive runs);
//! - [`proxy`]: a TCP proxy whose connections a test can cut;
//! - [`rabbit_cluster`]: a RabbitMQ cluster of a test's own, to lose a node of;
//! - [`services`]: private PostgreSQL and RabbitMQ instances that fault
//!   tests stop, restart and kill (never the shared ones);
//! - [`slow_disk`]: a disk with a given latency for one process tree.
//!
//! The tests need the services of `deploy/setup.sh` and the binaries of
//! `cargo build --workspace --bins`; `deploy/test.sh` does both.

pub mod binaries;
pub mod cli;
pub mod dev_env;
pub mod docker;
pub mod docker_proxy;
pub mod env;
pub mod executions;
pub mod expect;
pub mod http;
pub mod install;
pub mod netns;
pub mod poll;
pub mod private_dockerd;
pub mod proxy;
pub mod pty;
pub mod rabbit_cluster;
pub mod services;
pub mod slow_disk;

pub use cli::{BackgroundCli, CliOutput};
pub use dev_env::DevEnv;
pub use env::{HostWorker, ObjectStoreKind, TestEnv, TestEnvOptions};
pub use expect::assert_bytes_eq;
pub use poll::wait_until;

/// The image every test app runs: a static busybox built by
/// `deploy/build-test-image.sh`.
pub const TEST_IMAGE: &str = "jobs-test/busybox:latest";

/// The app every [`TestEnv`] creates, and the CLI's default app.
pub const DEMO_APP: &str = "demo";
