//! `jobs completions SHELL`: completion scripts for both names of the
//! program, generated from the parser itself by `clap_complete`.

use clap_complete::Shell;

use super::{INTEGRATION_NAME, SCRIPT_NAME};

/// The completions of `jobs` and `jobsctl` for `shell`, one after the other.
pub fn script(shell: Shell, cli: &clap::Command) -> String {
    [INTEGRATION_NAME, SCRIPT_NAME]
        .iter()
        .map(|name| script_for(shell, cli, name))
        .collect()
}

/// The completions of one command name.
pub fn script_for(shell: Shell, cli: &clap::Command, name: &str) -> String {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cli.clone(), name, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn both_names_complete_every_subcommand() {
        let cli = crate::args::Cli::command();
        for shell in [
            Shell::Bash,
            Shell::Zsh,
            Shell::Fish,
            Shell::Elvish,
            Shell::PowerShell,
        ] {
            let text = script(shell, &cli);
            for word in ["jobsctl", "run", "follow", "shell-init", "on-interrupt"] {
                assert!(text.contains(word), "{shell}: no {word}");
            }
        }
    }
}
