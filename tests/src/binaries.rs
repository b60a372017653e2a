//! Where the binaries under test are: in the same target directory as the
//! test executable, so the tests always drive the build they belong to.

use std::path::{Path, PathBuf};

/// The profile directory, such as `target/debug`.
///
/// A test executable lives in `target/debug/deps/NAME-HASH`; the binaries
/// of the same build live in `target/debug`.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    let deps = exe.parent().expect("the test executable is in a directory");
    let profile = if deps.file_name().is_some_and(|name| name == "deps") {
        deps.parent().expect("deps/ has a parent")
    } else {
        deps
    };
    profile.to_path_buf()
}

/// The directory that holds the profile directories, such as `target`.
pub fn target_dir() -> PathBuf {
    let profile = profile_dir();
    profile.parent().map(Path::to_path_buf).unwrap_or(profile)
}

/// The path of one binary of the workspace, checked to exist.
pub fn binary(name: &str) -> PathBuf {
    let path = profile_dir().join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "the binary {name} is missing at {}: run `cargo build --workspace --bins` first \
         (deploy/test.sh does it before the tests)",
        path.display()
    );
    path
}

/// The `jobs` CLI.
pub fn jobs_cli() -> PathBuf {
    binary("jobs")
}

/// The same CLI under the name no shell shadows, as scripts call it.
pub fn jobsctl() -> PathBuf {
    binary("jobsctl")
}

/// The repository's root, where `deploy/` and the docs are.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the repository")
        .to_path_buf()
}

/// The API server.
pub fn jobs_api() -> PathBuf {
    binary("jobs-api")
}

/// The worker.
pub fn jobs_worker() -> PathBuf {
    binary("jobs-worker")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_binary_says_how_to_build_it() {
        let panic = std::panic::catch_unwind(|| binary("no-such-binary-of-jobs"))
            .expect_err("a missing binary panics");
        let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(
            message.contains("run `cargo build --workspace --bins` first"),
            "{message}"
        );
    }

    #[test]
    fn the_profile_dir_is_where_cargo_puts_binaries() {
        // This unit test runs from target/<profile>/deps/.
        let profile = profile_dir();
        assert!(profile.join("deps").is_dir(), "{}", profile.display());
        assert!(target_dir().join(profile.file_name().unwrap()).is_dir());
    }
}
