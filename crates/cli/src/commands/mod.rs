//! One module per subcommand. Each returns the process exit code, or a
//! `CliError` that `lib.rs` prints.

mod apps;
mod artifacts;
mod attach;
mod cancel;
mod dev;
mod follow;
mod group;
mod list;
mod logs;
mod run;
mod shell;
mod status;
mod tokens;
mod wait;
mod workers;

use clap::error::ErrorKind;
use jobs_core::names;

use crate::args::{Cli, Command, GlobalArgs, usage_error};
use crate::client::ApiClient;
use crate::dev_token;
use crate::error::CliError;
use crate::output::OutputFormat;

/// What every command needs: the API client, the output format, and the
/// app from `-a/--app` or `JOBS_APP` for the commands that act on one.
pub struct Context {
    pub client: ApiClient,
    pub format: OutputFormat,
    app: Option<String>,
    /// Whether the token came from the `jobs dev` token file: the CLI talks
    /// to `jobs dev` with no setup at all, and may pick the app itself.
    dev_defaults: bool,
}

impl Context {
    /// The token is `--token` or `JOBS_TOKEN`, else the `jobs dev` token
    /// file when the API is on a loopback address.
    pub fn from_global_args(global: &GlobalArgs) -> Result<Self, CliError> {
        let given = global.token.clone().filter(|token| !token.is_empty());
        let dev_token = match given {
            Some(_) => None,
            None => dev_token::for_api_url(&global.api_url),
        };
        Self::with_tokens(global, given, dev_token)
    }

    fn with_tokens(
        global: &GlobalArgs,
        given: Option<String>,
        dev_token: Option<String>,
    ) -> Result<Self, CliError> {
        let dev_defaults = given.is_none() && dev_token.is_some();
        Ok(Self {
            client: ApiClient::new(
                &global.api_url,
                given.or(dev_token),
                global.ca_cert.as_deref(),
            )?,
            format: OutputFormat::from_json_flag(global.json),
            app: global.app.clone(),
            dev_defaults,
        })
    }

    /// The app, for commands that act on one. A malformed app is a usage
    /// error, caught before anything is sent. A missing app is one too,
    /// except against `jobs dev` with no setup: there, its only app is the
    /// one meant, so that `jobs apps create` then `jobs run` just works.
    pub async fn require_app(&self) -> Result<String, CliError> {
        let Some(app) = self.app.as_deref().filter(|app| !app.is_empty()) else {
            return self.only_dev_app().await;
        };
        names::validate_app_name(app).map_err(|err| {
            usage_error(
                ErrorKind::ValueValidation,
                format!("invalid value '{app}' for '--app <APP>': {}", err.message),
            )
        })?;
        Ok(app.to_owned())
    }

    async fn only_dev_app(&self) -> Result<String, CliError> {
        const MISSING: &str = "this command needs an app: pass -a/--app APP or set JOBS_APP";
        let missing = |detail: String| -> CliError {
            usage_error(
                ErrorKind::MissingRequiredArgument,
                format!("{MISSING}{detail}"),
            )
            .into()
        };
        if !self.dev_defaults {
            return Err(missing(String::new()));
        }
        let apps = self.client.list_apps().await?.apps;
        match apps.as_slice() {
            [only] => Ok(only.name.clone()),
            [] => Err(missing(format!(
                " (jobs dev has no app yet: {} apps create NAME --image IMAGE)",
                crate::shell::command_name()
            ))),
            several => Err(missing(format!(
                " (jobs dev has several: {})",
                several
                    .iter()
                    .map(|app| app.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }
}

/// Runs the parsed command line and returns the exit code.
pub async fn execute(cli: Cli) -> Result<u8, CliError> {
    // `jobs dev` is the server, and the shell's commands only print: they
    // need no API client.
    let command = match cli.command {
        Command::Dev(args) => return dev::dev(args).await,
        Command::ShellInit(args) => return shell::shell_init(args),
        Command::Completions(args) => return shell::completions(args),
        Command::ManPages(args) => return shell::man_pages(args),
        command => command,
    };
    let context = Context::from_global_args(&cli.global)?;
    match command {
        Command::Run(args) => run::run(&context, args).await,
        Command::Follow(args) => follow::follow(&context, args).await,
        Command::Attach(args) => attach::attach(&context, args).await,
        Command::Logs(args) => logs::logs(&context, args).await,
        Command::Wait(args) => wait::wait(&context, args).await,
        Command::Status(args) => status::status(&context, args).await,
        Command::List(args) => list::list(&context, args).await,
        Command::Cancel(args) => cancel::cancel(&context, args).await,
        Command::Artifacts(args) => artifacts::artifacts(&context, args).await,
        Command::Apps(command) => apps::apps(&context, command).await,
        Command::Tokens(command) => tokens::tokens(&context, command).await,
        Command::Workers(args) => workers::workers(&context, args).await,
        Command::Dev(_)
        | Command::ShellInit(_)
        | Command::Completions(_)
        | Command::ManPages(_) => unreachable!("handled above"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn context(args: &[&str]) -> Context {
        let cli = Cli::try_parse_from(["jobs"].iter().chain(args).copied()).unwrap();
        // No dev token, whatever the machine's data dir holds.
        Context::with_tokens(&cli.global, cli.global.token.clone(), None).unwrap()
    }

    #[tokio::test]
    async fn a_missing_app_is_a_usage_error_naming_the_option_and_variable() {
        let err = context(&["--app", "", "ps"])
            .require_app()
            .await
            .unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let text = err.to_string();
        assert!(
            text.contains("--app") && text.contains("JOBS_APP"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_malformed_app_is_a_usage_error() {
        let err = context(&["-a", "Bad_App", "ps"])
            .require_app()
            .await
            .unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("is invalid"), "{err}");
        assert_eq!(
            context(&["-a", "web", "ps"]).require_app().await.unwrap(),
            "web"
        );
    }

    #[test]
    fn a_given_token_wins_over_the_dev_token() {
        let cli = Cli::try_parse_from(["jobs", "--token", "given", "ps"]).unwrap();
        let context =
            Context::with_tokens(&cli.global, Some("given".into()), Some("dev".into())).unwrap();
        assert!(!context.dev_defaults);
        let context = Context::with_tokens(&cli.global, None, Some("dev".into())).unwrap();
        assert!(context.dev_defaults);
    }
}
