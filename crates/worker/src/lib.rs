//! `jobs-worker`: runs queued jobs in containers on one Docker host.
//!
//! - [`config`]: flags and their environment variables;
//! - [`worker`]: start-up, the consume loop over free slots, shutdown;
//! - [`attempt`]: one attempt of one job, from claim to terminal state;
//! - [`uploads`]: uploaded files streamed from the object store into a container;
//! - [`artifacts`]: artifact paths streamed out of a container into the object store;
//! - [`log_pump`]: container output into the store, bounded;
//! - [`metrics`]: Prometheus metrics at `--metrics-listen`;
//! - [`shim`]: the static helper that runs a job's command and keeps a copy
//!   of its output and of its /tmp artifacts; [`capture`] reads that output
//!   back after a worker restart, and [`shim_input`] feeds an interactive
//!   run's stdin through it; [`disk_cap`] holds what a job can write into
//!   the shim's directories to a cap;
//! - [`secret_mask`]: secret config values masked out of output;
//! - [`runtime`]: Docker, behind a small interface;
//! - [`host_firewall`]: the worker host's own ports, closed to jobs;
//! - [`warm_pool`]: started containers waiting for an app's next job;
//! - [`stop_signal`]: cancel, timeout, lost lease and shutdown requests.

pub mod artifacts;
pub mod attempt;
pub mod capture;
pub mod config;
pub mod dial_back;
pub mod disk_cap;
pub mod host_firewall;
pub mod interactive;
pub mod log_pump;
pub mod metrics;
pub mod runtime;
pub mod secret_mask;
pub mod shim;
pub mod shim_input;
pub mod stop_signal;
pub mod telemetry;
pub mod uploads;
pub mod warm_pool;
pub mod worker;
