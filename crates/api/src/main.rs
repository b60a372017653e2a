//! The `jobs-api` binary: parse flags, start logging, build, serve.

use std::{io::Write, process::ExitCode};

use jobs_api::{Application, Config, config::Args, telemetry};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Args = jobs_core::config_file::parse_with_config_file(std::fs::read_to_string);
    // Each connection is a descriptor: the soft limit goes up to the hard
    // one, and the default connection limit follows from it.
    jobs_api::connections::raise_fd_limit();
    if let Err(error) = telemetry::init_subscriber(args.log_format) {
        eprintln!("jobs-api: {error:#}");
        return ExitCode::FAILURE;
    }
    let config = match Config::from_args(args) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("jobs-api: {error}");
            // 2, as clap uses for a command line that is wrong.
            return ExitCode::from(2);
        }
    };
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // The subscriber is installed, so this goes to stderr in the
            // operator's chosen format.
            tracing::error!(error = format!("{error:#}"), "jobs-api failed");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    let application = Application::build(config).await?;
    // The one line on stdout: scripts and tests read the real address here.
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {}", application.address())?;
    stdout.flush()?;
    drop(stdout);
    let connections = application.connection_settings();
    tracing::info!(
        address = %application.address(),
        tls = application.is_tls(),
        max_connections = connections.max_connections,
        "listening"
    );
    tokio::spawn(cancel_on_signal(application.shutdown_token()));
    application.run_until_stopped().await
}

/// Cancels `shutdown` on SIGTERM or Ctrl-C (SIGINT).
async fn cancel_on_signal(shutdown: CancellationToken) {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("interrupted; shutting down"),
        () = terminate => tracing::info!("terminated; shutting down"),
    }
    shutdown.cancel();
}
