//! `jobs apps create|list|show|set|delete`.

use std::collections::BTreeMap;

use clap::error::ErrorKind;
use jobs_core::{
    hardening::{Hardening, NetworkChoice},
    wire::{AppCreate, AppUpdate},
};

use crate::args::{AppCreateArgs, AppSetArgs, AppsCommand, EnvPair, usage_error};
use crate::commands::Context;
use crate::error::CliError;
use crate::output;

pub async fn apps(context: &Context, command: AppsCommand) -> Result<u8, CliError> {
    let client = &context.client;
    let format = context.format;
    match command {
        AppsCommand::Create(args) => {
            let app = client.create_app(&app_create(args)).await?;
            output::print_app(format, &app)?;
        }
        AppsCommand::List => {
            let list = client.list_apps().await?;
            output::print_app_list(format, &list.apps)?;
        }
        AppsCommand::Show(args) => {
            let app = client.get_app(&args.name).await?;
            output::print_app(format, &app)?;
        }
        AppsCommand::Set(args) => {
            let name = args.name.clone();
            let app = client.update_app(&name, &app_update(args)?).await?;
            output::print_app(format, &app)?;
        }
        AppsCommand::Delete(args) => {
            client.delete_app(&args.name).await?;
            output::print_app_deleted(format, &args.name)?;
        }
    }
    Ok(0)
}

fn app_create(args: AppCreateArgs) -> AppCreate {
    let (env, secret_env) = env_with_secrets(args.env, args.secret);
    AppCreate {
        name: args.name,
        image: args.image,
        env,
        size: args.size,
        timeout_seconds: args.timeout,
        warm: args.warm,
        max_running: args.max_running,
        weight: args.weight,
        max_output_bytes: args.max_output.and_then(|setting| setting.0),
        storage_quota_bytes: args.storage_quota.and_then(|setting| setting.0),
        secret_env,
        hardening: Hardening {
            cap_add: args.cap_add,
            user: args.user,
            read_only_root: args.read_only_root,
            network_none: args.network == Some(NetworkChoice::None),
            network: match args.network {
                Some(NetworkChoice::Named(name)) => Some(name),
                _ => None,
            },
        },
    }
}

/// The partial update for `apps set`; asking to change nothing is a usage
/// error rather than a silent no-op.
fn app_update(args: AppSetArgs) -> Result<AppUpdate, CliError> {
    let (env, mut secret_env) = env_with_secrets(args.env, args.secret);
    secret_env.extend(args.mark_secret);
    let update = AppUpdate {
        image: args.image,
        env,
        unset: args.unset,
        secret_env,
        unsecret: args.unsecret,
        size: args.size,
        timeout_seconds: args.timeout,
        warm: args.warm,
        max_running: if args.no_max_running {
            Some(None)
        } else {
            args.max_running.map(Some)
        },
        weight: args.weight,
        max_output_bytes: args.max_output.map(|setting| setting.0),
        storage_quota_bytes: args.storage_quota.map(|setting| setting.0),
        cap_add: cap_add_update(args.cap_add, args.no_cap_add),
        user: user_update(args.user, args.no_user),
        read_only_root: flag_update(args.read_only_root, args.no_read_only_root),
        network_none: args
            .network
            .as_ref()
            .map(|choice| *choice == NetworkChoice::None),
        network: args.network.map(|choice| match choice {
            NetworkChoice::Named(name) => Some(name),
            NetworkChoice::None | NetworkChoice::Own => None,
        }),
    };
    if update == AppUpdate::default() {
        return Err(usage_error(
            ErrorKind::MissingRequiredArgument,
            "nothing to change: give --image, -e/--env, --secret, --mark-secret, --unsecret, \
             --unset, --size, --timeout, --warm, --max-running, --no-max-running, --weight, \
             --max-output, --storage-quota, --cap-add, --no-cap-add, --user, --no-user, --read-only-root, \
             --no-read-only-root or --network",
        )
        .into());
    }
    Ok(update)
}

/// `--cap-add` replaces the whole list; `--no-cap-add` empties it.
fn cap_add_update(cap_add: Vec<String>, none: bool) -> Option<Vec<String>> {
    (none || !cap_add.is_empty()).then_some(cap_add)
}

/// `--user U` sets it; `--no-user` goes back to the image's user.
fn user_update(user: Option<String>, none: bool) -> Option<Option<String>> {
    if none { Some(None) } else { user.map(Some) }
}

/// `--flag` turns it on, `--no-flag` off, neither leaves it.
fn flag_update(on: bool, off: bool) -> Option<bool> {
    (on || off).then_some(on)
}

/// The env of `-e` and `--secret` pairs, and the names of the secret ones.
/// A `--secret` wins over a `-e` of the same name, so that a value meant
/// secret is never sent unmarked.
fn env_with_secrets(
    env: Vec<EnvPair>,
    secrets: Vec<EnvPair>,
) -> (BTreeMap<String, String>, Vec<String>) {
    let names: Vec<String> = secrets.iter().map(|pair| pair.name.clone()).collect();
    let mut map = env_map(env);
    map.extend(env_map(secrets));
    (map, names)
}

/// Later pairs win over earlier ones with the same name.
fn env_map(pairs: Vec<EnvPair>) -> BTreeMap<String, String> {
    pairs
        .into_iter()
        .map(|pair| (pair.name, pair.value))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Cli, Command};
    use clap::Parser;

    fn set_args(args: &[&str]) -> AppSetArgs {
        let argv = ["jobs", "apps", "set"]
            .into_iter()
            .chain(args.iter().copied());
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Apps(AppsCommand::Set(set)) => set,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn set_sends_only_what_was_given() {
        let update =
            app_update(set_args(&["web", "-e", "A=1", "-e", "A=2", "--unset", "B"])).unwrap();
        assert_eq!(update.image, None);
        assert_eq!(update.env.get("A").map(String::as_str), Some("2"));
        assert_eq!(update.unset, ["B"]);
    }

    #[test]
    fn set_sends_hardening_changes() {
        let update = app_update(set_args(&["web", "--cap-add", "CHOWN", "--no-user"])).unwrap();
        assert_eq!(update.cap_add, Some(vec!["CHOWN".to_string()]));
        assert_eq!(update.user, Some(None));
        assert_eq!(update.read_only_root, None);
        let update = app_update(set_args(&[
            "web",
            "--no-cap-add",
            "--no-read-only-root",
            "--network",
            "default",
        ]))
        .unwrap();
        assert_eq!(update.cap_add, Some(Vec::new()));
        assert_eq!(update.read_only_root, Some(false));
        assert_eq!(update.network_none, Some(false));
        assert_eq!(update.network, Some(None));
        let named = app_update(set_args(&["web", "--network", "billing-db"])).unwrap();
        assert_eq!(named.network_none, Some(false));
        assert_eq!(named.network, Some(Some("billing-db".to_owned())));
    }

    #[test]
    fn set_sends_secrets_set_and_marked() {
        let update = app_update(set_args(&[
            "web",
            "-e",
            "PW=plain",
            "--secret",
            "PW=hunter2",
            "--mark-secret",
            "TOKEN",
            "--unsecret",
            "OLD",
        ]))
        .unwrap();
        // `--secret` wins over `-e` of the same name: never sent unmarked.
        assert_eq!(update.env.get("PW").map(String::as_str), Some("hunter2"));
        assert_eq!(update.secret_env, ["PW", "TOKEN"]);
        assert_eq!(update.unsecret, ["OLD"]);
    }

    #[test]
    fn create_and_set_send_warm_only_when_given() {
        let argv = [
            "jobs", "apps", "create", "web", "--image", "a", "--warm", "2",
        ];
        let Command::Apps(AppsCommand::Create(args)) = Cli::try_parse_from(argv).unwrap().command
        else {
            panic!("not apps create");
        };
        assert_eq!(app_create(args).warm, Some(2));
        let argv = ["jobs", "apps", "create", "web", "--image", "a"];
        let Command::Apps(AppsCommand::Create(args)) = Cli::try_parse_from(argv).unwrap().command
        else {
            panic!("not apps create");
        };
        assert_eq!(app_create(args).warm, None);

        // `--warm 0` alone is a change: it turns the pool off.
        let update = app_update(set_args(&["web", "--warm", "0"])).unwrap();
        assert_eq!(update.warm, Some(0));
        assert_eq!(update.image, None);
        let update = app_update(set_args(&["web", "-e", "A=1"])).unwrap();
        assert_eq!(update.warm, None);
    }

    #[test]
    fn set_with_nothing_to_change_is_a_usage_error() {
        let err = app_update(set_args(&["web"])).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("nothing to change"), "{err}");
        assert!(err.to_string().contains("--warm"), "{err}");
    }
}
