//! `jobs shell-init`, `jobs completions` and `jobs man-pages`.

use clap::CommandFactory;

use crate::args::{Cli, CompletionsArgs, ManPagesArgs, ShellInitArgs};
use crate::error::CliError;
use crate::output;
use crate::shell::{self, completions, integration, man_pages};

pub fn shell_init(args: ShellInitArgs) -> Result<u8, CliError> {
    // The function runs this very binary by its absolute path, as
    // `direnv hook` does; without one, the name no shell shadows.
    let binary = std::env::current_exe()
        .ok()
        .and_then(|path| path.to_str().map(str::to_owned))
        .unwrap_or_else(|| shell::SCRIPT_NAME.to_owned());
    output::print_stdout(&integration::script(args.shell, &Cli::command(), &binary))?;
    Ok(0)
}

pub fn completions(args: CompletionsArgs) -> Result<u8, CliError> {
    output::print_stdout(&completions::script(args.shell, &Cli::command()))?;
    Ok(0)
}

pub fn man_pages(args: ManPagesArgs) -> Result<u8, CliError> {
    let pages = man_pages::write_all(Cli::command(), &args.dir).map_err(|err| {
        CliError::LocalOutput(format!(
            "cannot write the man pages into {}: {err}",
            args.dir.display()
        ))
    })?;
    let listing: String = pages
        .iter()
        .map(|page| format!("{}\n", page.display()))
        .collect();
    output::print_stdout(&listing)?;
    Ok(0)
}
