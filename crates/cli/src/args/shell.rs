//! `jobs shell-init`, `jobs completions` and `jobs man-pages`: the CLI's
//! place in a shell and on a system.

use std::path::PathBuf;

use crate::shell::integration::IntegrationShell;

#[derive(Debug, Clone, clap::Args)]
pub struct ShellInitArgs {
    /// The shell: bash, zsh or fish (with completions), or sh for dash and
    /// other POSIX shells.
    #[arg(value_enum)]
    pub shell: IntegrationShell,
}

#[derive(Debug, Clone, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ManPagesArgs {
    /// The directory to write them into, such as /usr/local/share/man/man1
    /// (created if missing).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}
