//! One man page per subcommand (`jobs.1`, `jobs-run.1`, `jobs-apps-create.1`,
//! …), generated from the parser by `clap_mangen`.

use std::path::{Path, PathBuf};

/// Writes the pages into `dir` (created if missing) and returns their
/// paths, sorted.
pub fn write_all(cli: clap::Command, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    clap_mangen::generate_to(cli, dir)?;
    let mut pages = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|extension| extension == "1") {
            pages.push(path);
        }
    }
    pages.sort();
    Ok(pages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn every_subcommand_has_a_page() {
        let dir = std::env::temp_dir().join(format!("jobs-man-{}", std::process::id()));
        let pages = write_all(crate::args::Cli::command(), &dir).unwrap();
        let names: Vec<String> = pages
            .iter()
            .map(|page| page.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        for page in [
            "jobs.1",
            "jobs-run.1",
            "jobs-apps-create.1",
            "jobs-shell-init.1",
        ] {
            assert!(names.iter().any(|name| name == page), "{page} in {names:?}");
        }
        let run = std::fs::read_to_string(dir.join("jobs-run.1")).unwrap();
        assert!(run.contains("on\\-interrupt"), "{run}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
