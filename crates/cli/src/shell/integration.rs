//! `jobs shell-init SHELL`: the integration an interactive shell loads with
//! `eval "$(env jobs shell-init bash)"`, as `zoxide init` and `direnv hook`
//! are loaded.
//!
//! It defines a function `jobs`. When its first word is one of the CLI's
//! subcommands or global options, it runs this binary, by the absolute
//! path it has now; anything else (`jobs`, `jobs -l`, `jobs %1`) goes to
//! the shell's own builtin, so job control works as before. The words are
//! read off the parser, so a new subcommand is routed with no edit here.

use std::fmt::Write as _;

use clap_complete::Shell;

use super::{INTEGRATION_ENV, INTEGRATION_NAME, completions};

/// The shells `shell-init` knows. `sh` is any POSIX shell (dash, ksh,
/// busybox): the function alone, since they have no programmable
/// completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IntegrationShell {
    Bash,
    Zsh,
    Fish,
    Sh,
}

/// The integration script for `shell`, calling the binary at `binary`.
pub fn script(shell: IntegrationShell, cli: &clap::Command, binary: &str) -> String {
    let words = cli_words(cli);
    let mut out = format!(
        "# The jobs CLI in {shell}: `jobs` is also the shell's job-control builtin.\n\
         # The CLI's subcommands and global options go to the binary; anything\n\
         # else (`jobs`, `jobs -l`, `jobs %1`) goes to the builtin.\n",
        shell = name(shell),
    );
    match shell {
        IntegrationShell::Fish => {
            let cases = words
                .iter()
                .map(|word| format!("'{word}'"))
                .collect::<Vec<_>>()
                .join(" ");
            let _ = write!(
                out,
                "function {INTEGRATION_NAME} --description 'the jobs CLI, or the job-control builtin'\n\
                 \x20   switch \"$argv[1]\"\n\
                 \x20       case {cases}\n\
                 \x20           {INTEGRATION_ENV}=fish {binary} $argv\n\
                 \x20       case '*'\n\
                 \x20           builtin jobs $argv\n\
                 \x20   end\n\
                 end\n",
                binary = fish_quote(binary),
            );
        }
        IntegrationShell::Bash | IntegrationShell::Zsh | IntegrationShell::Sh => {
            // POSIX's `command` skips functions but not builtins, which is
            // how dash reaches its own `jobs`; bash and zsh say `builtin`.
            let builtin = match shell {
                IntegrationShell::Sh => "command",
                _ => "builtin",
            };
            let _ = write!(
                out,
                "{INTEGRATION_NAME}() {{\n\
                 \x20   case \"${{1-}}\" in\n\
                 \x20       {cases})\n\
                 \x20           {INTEGRATION_ENV}={shell} {binary} \"$@\" ;;\n\
                 \x20       *)\n\
                 \x20           {builtin} jobs \"$@\" ;;\n\
                 \x20   esac\n\
                 }}\n",
                cases = words.join("|"),
                shell = name(shell),
                binary = sh_quote(binary),
            );
        }
    }
    match shell {
        IntegrationShell::Bash => out.push_str(&completions::script(Shell::Bash, cli)),
        IntegrationShell::Fish => out.push_str(&completions::script(Shell::Fish, cli)),
        // Completions need compinit; without it, `compdef` does not exist
        // and the function alone is loaded.
        IntegrationShell::Zsh => {
            out.push_str("if (( $+functions[compdef] )); then\n");
            out.push_str(&completions::script(Shell::Zsh, cli));
            out.push_str("fi\n");
        }
        IntegrationShell::Sh => {}
    }
    out
}

fn name(shell: IntegrationShell) -> &'static str {
    match shell {
        IntegrationShell::Bash => "bash",
        IntegrationShell::Zsh => "zsh",
        IntegrationShell::Fish => "fish",
        IntegrationShell::Sh => "sh",
    }
}

/// The first words that mean the CLI: every subcommand and alias
/// (`help` too), and every global option, with `--opt=VALUE` and `-aVALUE`
/// forms as glob patterns.
pub fn cli_words(cli: &clap::Command) -> Vec<String> {
    let mut cli = cli.clone();
    cli.build();
    let mut words = Vec::new();
    for subcommand in cli.get_subcommands() {
        words.push(subcommand.get_name().to_owned());
        words.extend(subcommand.get_all_aliases().map(str::to_owned));
    }
    for arg in cli.get_arguments() {
        let takes_value = arg.get_action().takes_values();
        if let Some(long) = arg.get_long() {
            words.push(format!("--{long}"));
            if takes_value {
                words.push(format!("--{long}=*"));
            }
        }
        if let Some(short) = arg.get_short() {
            words.push(format!("-{short}"));
            if takes_value {
                words.push(format!("-{short}?*"));
            }
        }
    }
    words
}

/// `value` as one word of a POSIX shell.
fn sh_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// `value` as one word of fish, whose single quotes take `\'` and `\\`.
fn fish_quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', r"\\").replace('\'', r"\'"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn cli() -> clap::Command {
        crate::args::Cli::command()
    }

    #[test]
    fn the_cli_words_are_its_subcommands_aliases_and_global_options() {
        let words = cli_words(&cli());
        for word in [
            "run",
            "follow",
            "ps",
            "stop",
            "show",
            "help",
            "dev",
            "--api-url",
            "--api-url=*",
            "-a",
            "-a?*",
            "--json",
            "--help",
            "-h",
            "--version",
            "-V",
        ] {
            assert!(words.iter().any(|w| w == word), "{word} in {words:?}");
        }
        // The builtin's own options and job specs stay with the builtin.
        for word in ["-l", "-p", "-r", "-s", "-n", "-x", "%1", "--json=*", "--"] {
            assert!(!words.iter().any(|w| w == word), "{word} in {words:?}");
        }
    }

    #[test]
    fn the_binary_path_is_quoted_for_each_shell() {
        assert_eq!(sh_quote("/opt/it's/jobs"), r"'/opt/it'\''s/jobs'");
        assert_eq!(fish_quote(r"/opt/it's\jobs"), r"'/opt/it\'s\\jobs'");
        let bash = script(IntegrationShell::Bash, &cli(), "/usr/bin/jobs");
        assert!(
            bash.contains("JOBS_SHELL_INTEGRATION=bash '/usr/bin/jobs' \"$@\""),
            "{bash}"
        );
        assert!(bash.contains("builtin jobs \"$@\""), "{bash}");
        assert!(bash.contains("complete -F _jobs"), "{bash}");
        let sh = script(IntegrationShell::Sh, &cli(), "/usr/bin/jobs");
        assert!(sh.contains("command jobs \"$@\""), "{sh}");
        assert!(!sh.contains("complete"), "{sh}");
        let fish = script(IntegrationShell::Fish, &cli(), "/usr/bin/jobs");
        assert!(
            fish.contains("JOBS_SHELL_INTEGRATION=fish '/usr/bin/jobs' $argv"),
            "{fish}"
        );
        let zsh = script(IntegrationShell::Zsh, &cli(), "/usr/bin/jobs");
        assert!(zsh.contains("if (( $+functions[compdef] )); then"), "{zsh}");
    }
}
