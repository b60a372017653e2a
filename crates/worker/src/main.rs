#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config: jobs_worker::config::Config =
        jobs_core::config_file::parse_with_config_file(std::fs::read_to_string);
    jobs_worker::telemetry::init(&config.log_format);
    match jobs_worker::worker::run(config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("jobs-worker failed: {error:#}");
            eprintln!("jobs-worker: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
