//! `jobs tokens create|list|revoke`.

use jobs_core::wire::TokenCreate;

use crate::args::TokensCommand;
use crate::commands::Context;
use crate::error::CliError;
use crate::output;

pub async fn tokens(context: &Context, command: TokensCommand) -> Result<u8, CliError> {
    let client = &context.client;
    let format = context.format;
    match command {
        TokensCommand::Create(args) => {
            // `args.app` is only `tokens create --app`: never the global
            // `--app` or JOBS_APP (see args::tokens).
            let create = TokenCreate {
                app: args.app,
                role: args.role,
                expires_in_seconds: args.expires_in,
                description: args.description,
            };
            let created = client.create_token(&create).await?;
            output::print_token_created(format, &created)?;
        }
        TokensCommand::List => {
            let list = client.list_tokens().await?;
            output::print_token_list(format, &list.tokens)?;
        }
        TokensCommand::Revoke(args) => {
            client.revoke_token(&args.id).await?;
            output::print_token_revoked(format, &args.id)?;
        }
    }
    Ok(0)
}
