//! `jobs tokens ...`.

use clap::{ArgMatches, parser::ValueSource};
use jobs_core::Role;

use super::{Cli, Command, parsers};

#[derive(Debug, clap::Subcommand)]
pub enum TokensCommand {
    /// Create an API token and print its secret, once.
    Create(TokenCreateArgs),
    /// List the tokens, without their secrets.
    #[command(visible_alias = "ls")]
    List,
    /// Revoke a token; it is refused from the next request on.
    #[command(visible_alias = "rm")]
    Revoke(TokenIdArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct TokenCreateArgs {
    /// Bind the token to this app only: it will see nothing of the others.
    /// Without it, the token is for every app. Only this option binds a
    /// token: the global `--app` and `JOBS_APP` never do, so that a shell
    /// with JOBS_APP set cannot narrow (or mislabel) a token unnoticed.
    //
    // The same id as the global `--app`, so that clap lets this local
    // option shadow the global one for this subcommand (and without `env`,
    // so that JOBS_APP does not fill it).
    #[arg(short = 'a', long = "app", value_name = "APP", value_parser = parsers::app_name)]
    pub app: Option<String>,

    /// What the token may do: read (see jobs, logs, artifacts), run (also
    /// create and cancel jobs) or admin (also manage apps and tokens).
    #[arg(long, value_name = "ROLE", value_parser = parsers::role)]
    pub role: Role,

    /// Make the token expire after this long, such as 90d, 12h or 30m (at
    /// most 10 years). Without it, the token lives until revoked.
    #[arg(long, value_name = "DUR", value_parser = parsers::token_lifetime_seconds)]
    pub expires_in: Option<i64>,

    /// A note on what the token is for, shown by `jobs tokens list`.
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
}

/// Keeps `tokens create --app` only when it was typed on the command line.
///
/// Clap copies a global option's value into every subcommand, including one
/// that came from an environment variable: without this, a shell with
/// `JOBS_APP=web` would silently bind every new token to `web`.
pub fn keep_only_typed_token_app(cli: &mut Cli, matches: &ArgMatches) {
    if let Command::Tokens(TokensCommand::Create(create)) = &mut cli.command {
        let source = matches
            .subcommand_matches("tokens")
            .and_then(|tokens| tokens.subcommand_matches("create"))
            .and_then(|create| create.value_source("app"));
        if source != Some(ValueSource::CommandLine) {
            create.app = None;
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct TokenIdArgs {
    /// The token's id (tok_…), as `jobs tokens list` shows it; not its secret.
    pub id: String,
}

#[cfg(test)]
mod tests {
    use crate::args::{Cli, Command, TokensCommand, parse_from};

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        parse_from(["jobs"].into_iter().chain(args.iter().copied()))
    }

    fn create_app(args: &[&str]) -> Option<String> {
        match parse(args).unwrap().command {
            Command::Tokens(TokensCommand::Create(create)) => create.app,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn only_the_create_option_binds_a_token_to_an_app() {
        assert_eq!(
            create_app(&["tokens", "create", "--app", "web", "--role", "read"]).as_deref(),
            Some("web")
        );
        assert_eq!(create_app(&["tokens", "create", "--role", "read"]), None);
        // JOBS_APP is not set here (the e2e tests, which set it, check that
        // it never binds a token: tests/tests/tokens.rs).
    }

    #[test]
    fn bad_roles_and_durations_are_usage_errors() {
        let err = parse(&["tokens", "create", "--role", "owner"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("read, run, admin"), "{err}");
        for bad in ["soon", "0s", "11years"] {
            let err =
                parse(&["tokens", "create", "--role", "read", "--expires-in", bad]).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad}");
        }
        assert_eq!(parse(&["tokens", "create"]).unwrap_err().exit_code(), 2);
        assert!(parse(&["tokens", "create", "--role", "run", "--expires-in", "1s"]).is_ok());
        assert!(matches!(
            parse(&["tokens", "revoke", "tok_1"]).unwrap().command,
            Command::Tokens(TokensCommand::Revoke(_))
        ));
    }
}
