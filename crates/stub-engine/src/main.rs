//! `jobs-stub-engine`: a Docker engine without containers, on a Unix
//! socket, for the control-plane simulation (`bench/simulate.py`): a
//! worker pointed at it (`DOCKER_HOST=unix://…`) runs its whole path —
//! claim, create, attach, start, output, wait, end, removal — against an
//! engine that only reads each command line ([`script`]), so that one
//! machine can host a hundred workers. Not for production.

mod answer;
mod engine;
mod script;
mod store;

use std::{path::PathBuf, sync::Arc};

use clap::Parser;

#[derive(Parser)]
#[command(
    version,
    about = "A Docker engine without containers, for simulating many workers"
)]
struct Args {
    /// The Unix socket to serve Docker's API on.
    #[arg(long, default_value = "/tmp/jobs-stub-engine.sock")]
    socket: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let _ = std::fs::remove_file(&args.socket);
    let listener = tokio::net::UnixListener::bind(&args.socket)?;
    println!("listening on {}", args.socket.display());
    let app = axum::Router::new()
        .fallback(engine::handle)
        .with_state(Arc::new(engine::Engine::default()));
    axum::serve(listener, app).await?;
    Ok(())
}
