//! `jobs dev`: the whole system in one process.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::dev_data_dir::DATA_DIR_ENV;

/// The address `jobs dev` listens on by default: the CLI's default API URL.
pub const DEFAULT_DEV_LISTEN: &str = "127.0.0.1:8420";

#[derive(Debug, Clone, clap::Args)]
pub struct DevArgs {
    /// Where the database, the token file and the worker id live. Default:
    /// `$XDG_DATA_HOME/jobs/dev`, else `~/.local/share/jobs/dev`. The CLI
    /// reads its token from the same variable or default.
    #[arg(long, value_name = "DIR", env = DATA_DIR_ENV)]
    pub data_dir: Option<PathBuf>,

    /// The API's address; port 0 picks a free one. The chosen address is
    /// printed on stdout as `listening on ADDR`.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_DEV_LISTEN)]
    pub listen: SocketAddr,

    /// How many jobs run at once.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub slots: u16,
}

#[cfg(test)]
mod tests {
    use crate::args::{Cli, Command};
    use clap::Parser;

    #[test]
    fn defaults_match_the_cli_default_api_url() {
        let cli = Cli::try_parse_from(["jobs", "dev"]).unwrap();
        let Command::Dev(args) = cli.command else {
            panic!("dev parses as Dev");
        };
        assert_eq!(
            format!("http://{}", args.listen),
            crate::args::DEFAULT_API_URL
        );
        assert_eq!(args.slots, 4);
    }

    #[test]
    fn slots_must_be_positive() {
        let err = Cli::try_parse_from(["jobs", "dev", "--slots", "0"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }
}
