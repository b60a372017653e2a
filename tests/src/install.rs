//! The CLI installed as `deploy/install.sh` installs it, from the binaries
//! of this build, into a test's own prefix.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::binaries;
use crate::cli::run_bounded;

/// Where one install put things.
pub struct Installed {
    pub prefix: PathBuf,
}

impl Installed {
    /// Runs `deploy/install.sh --prefix PREFIX --binaries PROFILE_DIR EXTRA...`
    /// and asserts that it succeeded.
    #[track_caller]
    pub fn into(prefix: &Path, extra_args: &[&str]) -> Installed {
        binaries::jobsctl();
        let mut command = Command::new("bash");
        command
            .arg(binaries::repo_root().join("deploy/install.sh"))
            .arg("--prefix")
            .arg(prefix)
            .arg("--binaries")
            .arg(binaries::profile_dir())
            .args(extra_args);
        run_bounded(command, None, Duration::from_secs(120)).assert_success();
        Installed {
            prefix: prefix.to_path_buf(),
        }
    }

    pub fn bin_dir(&self) -> PathBuf {
        self.prefix.join("bin")
    }

    pub fn man_dir(&self) -> PathBuf {
        self.prefix.join("share/man")
    }

    /// `PATH` with the installed binaries first.
    pub fn path_env(&self) -> String {
        format!(
            "{}:{}",
            self.bin_dir().display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }
}
