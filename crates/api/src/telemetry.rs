//! Logging: one subscriber, always on stderr.
//!
//! Stdout is reserved for the single `listening on ADDR` line that scripts
//! and tests read, so no log line may ever go there.

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, fmt};

use crate::config::LogFormat;

/// The filter when `RUST_LOG` is unset or invalid. sqlx logs every
/// PostgreSQL notice at info, such as "relation already exists, skipping"
/// at each start, which is noise to an operator.
const DEFAULT_FILTER: &str = "info,sqlx=warn";

/// Installs the global subscriber. The level comes from `RUST_LOG`.
pub fn init_subscriber(format: LogFormat) -> anyhow::Result<()> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colors only for a person at a terminal, not in files or journald.
        .with_ansi(std::io::stderr().is_terminal());
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    installed.map_err(|error| anyhow::anyhow!("installing the log subscriber: {error}"))
}
