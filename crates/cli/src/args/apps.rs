//! `jobs apps ...`.

use jobs_core::Size;
use jobs_core::hardening::NetworkChoice;

use super::parsers::{self, EnvPair};

#[derive(Debug, clap::Subcommand)]
pub enum AppsCommand {
    /// Create an app.
    Create(AppCreateArgs),
    /// List the apps.
    #[command(visible_alias = "ls")]
    List,
    /// Show an app's image, size, timeout, warm pool and config vars.
    Show(AppNameArgs),
    /// Change an app's image, config vars, size, timeout, warm pool or hardening.
    Set(AppSetArgs),
    /// Delete an app.
    #[command(visible_alias = "rm")]
    Delete(AppNameArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct AppNameArgs {
    /// The app's name.
    #[arg(value_parser = parsers::app_name)]
    pub name: String,
}

#[derive(Debug, Clone, clap::Args)]
pub struct AppCreateArgs {
    /// The app's name: 1 to 63 characters of a-z, 0-9 and -.
    #[arg(value_parser = parsers::app_name)]
    pub name: String,

    /// The container image its jobs run.
    #[arg(long, value_name = "IMG")]
    pub image: String,

    /// Set a config var; may be repeated.
    #[arg(short = 'e', long = "env", value_name = "K=V", value_parser = parsers::env_pair)]
    pub env: Vec<EnvPair>,

    /// Set a secret config var: shown masked, and masked in job output
    /// (values of 4 bytes or more); may be repeated.
    #[arg(long = "secret", value_name = "K=V", value_parser = parsers::env_pair)]
    pub secret: Vec<EnvPair>,

    /// The default size of its jobs: S, M, L or XL.
    #[arg(short = 's', long, value_name = "S", value_parser = parsers::size)]
    pub size: Option<Size>,

    /// The default maximum run time of its jobs, such as 30m or 2h.
    #[arg(long, value_name = "DUR", value_parser = parsers::timeout_seconds)]
    pub timeout: Option<i64>,

    /// Warm containers each worker keeps ready for this app's runs (0 turns
    /// the pool off; at most 16).
    #[arg(long, value_name = "N", value_parser = parsers::warm)]
    pub warm: Option<u32>,

    /// At most N of the app's jobs start or run at once; the rest wait in
    /// line (default: no cap).
    #[arg(long, value_name = "N", value_parser = parsers::max_running)]
    pub max_running: Option<u32>,

    /// The app's weight in the share of free slots between apps with
    /// queued work (default 1).
    #[arg(long, value_name = "W", value_parser = parsers::weight)]
    pub weight: Option<u32>,

    /// The most output one job keeps, such as 512MiB (default 1GiB); past
    /// it, one marked line says how many bytes were not kept.
    #[arg(long, value_name = "SIZE", value_parser = parsers::max_output)]
    pub max_output: Option<parsers::BytesSetting>,

    /// The app's quota over logs, uploads and artifacts, such as 50GiB
    /// (default none); past it, new jobs and uploads are refused.
    #[arg(long, value_name = "SIZE", value_parser = parsers::storage_quota)]
    pub storage_quota: Option<parsers::BytesSetting>,

    /// Add back one Linux capability (all are dropped); may be repeated.
    /// One of Docker's default set, such as NET_BIND_SERVICE.
    #[arg(long = "cap-add", value_name = "CAP", value_parser = parsers::capability)]
    pub cap_add: Vec<String>,

    /// Run its jobs as this user: UID[:GID] or NAME[:GROUP] of the image.
    #[arg(long, value_name = "USER", value_parser = parsers::user)]
    pub user: Option<String>,

    /// Make the root filesystem read-only; /tmp stays writable.
    #[arg(long)]
    pub read_only_root: bool,

    /// `none` for no network at all (only loopback), `default` for the
    /// app's own network, or the name of an operator's Docker network to
    /// join instead (for a database that lives on it).
    #[arg(long, value_name = "none|default|NAME", value_parser = parsers::network)]
    pub network: Option<NetworkChoice>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct AppSetArgs {
    /// The app's name.
    #[arg(value_parser = parsers::app_name)]
    pub name: String,

    /// A new container image.
    #[arg(long, value_name = "IMG")]
    pub image: Option<String>,

    /// Set or replace a config var; may be repeated.
    #[arg(short = 'e', long = "env", value_name = "K=V", value_parser = parsers::env_pair)]
    pub env: Vec<EnvPair>,

    /// Remove a config var; may be repeated.
    #[arg(long, value_name = "K", value_parser = parsers::env_name)]
    pub unset: Vec<String>,

    /// Set or replace a secret config var: shown masked, and masked in job
    /// output (values of 4 bytes or more); may be repeated.
    #[arg(long = "secret", value_name = "K=V", value_parser = parsers::env_pair)]
    pub secret: Vec<EnvPair>,

    /// Mark a config var secret, keeping its value; may be repeated.
    #[arg(long = "mark-secret", value_name = "K", value_parser = parsers::env_name)]
    pub mark_secret: Vec<String>,

    /// Mark a config var not secret again, keeping its value; may be repeated.
    #[arg(long, value_name = "K", value_parser = parsers::env_name)]
    pub unsecret: Vec<String>,

    /// A new default size: S, M, L or XL.
    #[arg(short = 's', long, value_name = "S", value_parser = parsers::size)]
    pub size: Option<Size>,

    /// A new default maximum run time, such as 30m or 2h.
    #[arg(long, value_name = "DUR", value_parser = parsers::timeout_seconds)]
    pub timeout: Option<i64>,

    /// Warm containers each worker keeps ready for this app's runs (0 turns
    /// the pool off; at most 16).
    #[arg(long, value_name = "N", value_parser = parsers::warm)]
    pub warm: Option<u32>,

    /// At most N of the app's jobs start or run at once; the rest wait in
    /// line.
    #[arg(long, value_name = "N", value_parser = parsers::max_running)]
    pub max_running: Option<u32>,

    /// Lift the cap on the app's running jobs.
    #[arg(long, conflicts_with = "max_running")]
    pub no_max_running: bool,

    /// The app's weight in the share of free slots between apps with
    /// queued work.
    #[arg(long, value_name = "W", value_parser = parsers::weight)]
    pub weight: Option<u32>,

    /// The most output one job keeps, such as 512MiB; `default` goes back
    /// to 1GiB.
    #[arg(long, value_name = "SIZE", value_parser = parsers::max_output)]
    pub max_output: Option<parsers::BytesSetting>,

    /// The app's quota over logs, uploads and artifacts, such as 50GiB;
    /// `none` lifts it.
    #[arg(long, value_name = "SIZE", value_parser = parsers::storage_quota)]
    pub storage_quota: Option<parsers::BytesSetting>,

    /// Replace the capability allow-list with these; may be repeated.
    #[arg(long = "cap-add", value_name = "CAP", value_parser = parsers::capability)]
    pub cap_add: Vec<String>,

    /// Empty the capability allow-list.
    #[arg(long, conflicts_with = "cap_add")]
    pub no_cap_add: bool,

    /// Run its jobs as this user: UID[:GID] or NAME[:GROUP] of the image.
    #[arg(long, value_name = "USER", value_parser = parsers::user)]
    pub user: Option<String>,

    /// Run its jobs as the image's own user again.
    #[arg(long, conflicts_with = "user")]
    pub no_user: bool,

    /// Make the root filesystem read-only; /tmp stays writable.
    #[arg(long, conflicts_with = "no_read_only_root")]
    pub read_only_root: bool,

    /// Make the root filesystem writable again.
    #[arg(long)]
    pub no_read_only_root: bool,

    /// `none` for no network at all (only loopback), `default` for the
    /// app's own network, or the name of an operator's Docker network to
    /// join instead (for a database that lives on it).
    #[arg(long, value_name = "none|default|NAME", value_parser = parsers::network)]
    pub network: Option<NetworkChoice>,
}

#[cfg(test)]
mod tests {
    use crate::args::{AppsCommand, Cli, Command};
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<AppsCommand, clap::Error> {
        let argv = ["jobs", "apps"].into_iter().chain(args.iter().copied());
        match Cli::try_parse_from(argv)?.command {
            Command::Apps(apps) => Ok(apps),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn create_needs_a_valid_name_and_an_image() {
        let AppsCommand::Create(create) = parse(&[
            "create", "web", "--image", "alpine:3", "-e", "A=1", "-s", "L",
        ])
        .unwrap() else {
            panic!("not create");
        };
        assert_eq!(create.name, "web");
        assert_eq!(create.image, "alpine:3");
        assert_eq!(create.env.len(), 1);

        let err = parse(&["create", "Web_App", "--image", "alpine"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("is invalid"), "{err}");
        assert_eq!(parse(&["create", "web"]).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn set_takes_env_and_unset() {
        let AppsCommand::Set(set) =
            parse(&["set", "web", "-e", "A=1", "--unset", "B", "--unset", "C"]).unwrap()
        else {
            panic!("not set");
        };
        assert_eq!(set.unset, ["B", "C"]);
        assert_eq!(
            parse(&["set", "web", "--unset", "1B"])
                .unwrap_err()
                .exit_code(),
            2
        );
    }

    #[test]
    fn hardening_flags_are_checked() {
        let AppsCommand::Create(create) = parse(&[
            "create",
            "web",
            "--image",
            "a",
            "--cap-add",
            "net_bind_service",
            "--cap-add",
            "CHOWN",
            "--user",
            "65534",
            "--read-only-root",
            "--network",
            "none",
        ])
        .unwrap() else {
            panic!("not create");
        };
        assert_eq!(create.cap_add, ["NET_BIND_SERVICE", "CHOWN"]);
        assert_eq!(create.user.as_deref(), Some("65534"));
        assert!(create.read_only_root);
        assert_eq!(
            create.network,
            Some(jobs_core::hardening::NetworkChoice::None)
        );

        let err = parse(&["create", "web", "--image", "a", "--cap-add", "SYS_ADMIN"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("must be one of"), "{err}");
        let err = parse(&["create", "web", "--image", "a", "--network", "host"]).unwrap_err();
        assert!(err.to_string().contains("the host's own network"), "{err}");
        assert_eq!(
            parse(&["set", "web", "--user", "1", "--no-user"])
                .unwrap_err()
                .exit_code(),
            2
        );
        assert_eq!(
            parse(&["set", "web", "--read-only-root", "--no-read-only-root"])
                .unwrap_err()
                .exit_code(),
            2
        );
    }

    #[test]
    fn warm_is_a_count_of_at_most_16() {
        let AppsCommand::Create(create) =
            parse(&["create", "web", "--image", "a", "--warm", "2"]).unwrap()
        else {
            panic!("not create");
        };
        assert_eq!(create.warm, Some(2));
        let AppsCommand::Set(set) = parse(&["set", "web", "--warm", "0"]).unwrap() else {
            panic!("not set");
        };
        assert_eq!(set.warm, Some(0));
        let err = parse(&["set", "web", "--warm", "17"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.to_string()
                .contains("at most 16 warm containers per app (got 17)"),
            "{err}"
        );
        assert_eq!(
            parse(&["create", "web", "--image", "a", "--warm", "-1"])
                .unwrap_err()
                .exit_code(),
            2
        );
    }

    #[test]
    fn show_and_delete_check_the_name() {
        assert!(matches!(parse(&["show", "web"]), Ok(AppsCommand::Show(_))));
        assert!(matches!(
            parse(&["delete", "web"]),
            Ok(AppsCommand::Delete(_))
        ));
        assert_eq!(parse(&["show", "-web"]).unwrap_err().exit_code(), 2);
    }
}
