//! One module per subcommand. Each returns the process exit code, or a
//! `CliError` that `lib.rs` prints.

mod apps;
mod cancel;
mod follow;
mod list;
mod logs;
mod run;
mod status;
mod wait;

use clap::error::ErrorKind;
use jobs_core::names;

use crate::args::{Cli, Command, GlobalArgs, usage_error};
use crate::client::ApiClient;
use crate::error::CliError;
use crate::output::OutputFormat;

/// What every command needs: the API client, the output format, and the
/// app from `-a/--app` or `JOBS_APP` for the commands that act on one.
pub struct Context {
    pub client: ApiClient,
    pub format: OutputFormat,
    app: Option<String>,
}

impl Context {
    pub fn from_global_args(global: &GlobalArgs) -> Result<Self, CliError> {
        Ok(Self {
            client: ApiClient::new(&global.api_url, global.token.clone())?,
            format: OutputFormat::from_json_flag(global.json),
            app: global.app.clone(),
        })
    }

    /// The app, for commands that act on one. A missing or malformed app is
    /// a usage error, caught before anything is sent.
    pub fn require_app(&self) -> Result<&str, CliError> {
        let Some(app) = self.app.as_deref().filter(|app| !app.is_empty()) else {
            return Err(usage_error(
                ErrorKind::MissingRequiredArgument,
                "this command needs an app: pass -a/--app APP or set JOBS_APP",
            )
            .into());
        };
        names::validate_app_name(app).map_err(|err| {
            usage_error(
                ErrorKind::ValueValidation,
                format!("invalid value '{app}' for '--app <APP>': {}", err.message),
            )
        })?;
        Ok(app)
    }
}

/// Runs the parsed command line and returns the exit code.
pub async fn execute(cli: Cli) -> Result<u8, CliError> {
    let context = Context::from_global_args(&cli.global)?;
    match cli.command {
        Command::Run(args) => run::run(&context, args).await,
        Command::Follow(args) => follow::follow(&context, args).await,
        Command::Logs(args) => logs::logs(&context, args).await,
        Command::Wait(args) => wait::wait(&context, args).await,
        Command::Status(args) => status::status(&context, args).await,
        Command::List(args) => list::list(&context, args).await,
        Command::Cancel(args) => cancel::cancel(&context, args).await,
        Command::Apps(command) => apps::apps(&context, command).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn context(args: &[&str]) -> Context {
        let cli = Cli::try_parse_from(["jobs"].iter().chain(args).copied()).unwrap();
        Context::from_global_args(&cli.global).unwrap()
    }

    #[test]
    fn a_missing_app_is_a_usage_error_naming_the_option_and_variable() {
        let err = context(&["--app", "", "ps"]).require_app().unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let text = err.to_string();
        assert!(
            text.contains("--app") && text.contains("JOBS_APP"),
            "{text}"
        );
    }

    #[test]
    fn a_malformed_app_is_a_usage_error() {
        let err = context(&["-a", "Bad_App", "ps"]).require_app().unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("is invalid"), "{err}");
        assert_eq!(context(&["-a", "web", "ps"]).require_app().unwrap(), "web");
    }
}
