//! `jobs-worker`: runs queued jobs in containers on one Docker host.
//!
//! - [`config`]: flags and their environment variables;
//! - [`worker`]: start-up, the consume loop over free slots, shutdown;
//! - [`attempt`]: one attempt of one job, from claim to terminal state;
//! - [`log_pump`]: container output into the store, bounded;
//! - [`secret_mask`]: secret config values masked out of output;
//! - [`runtime`]: Docker, behind a small interface;
//! - [`stop_signal`]: cancel, timeout, lost lease and shutdown requests.

pub mod attempt;
pub mod config;
pub mod dial_back;
pub mod interactive;
pub mod log_pump;
pub mod runtime;
pub mod secret_mask;
pub mod stop_signal;
pub mod telemetry;
pub mod worker;
