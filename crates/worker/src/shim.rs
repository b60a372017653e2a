//! The shim: a static helper (`shim/shim.c`, built by `build.rs`) that the
//! worker bakes into an image of each app image at `/.jobs/shim`
//! ([`crate::runtime::shim_image`]) and runs as every queued job's command,
//! `/.jobs/shim run [-a PATH]... -- CMD ARGS...` (or, in a warm container,
//! `/.jobs/shim wait`).
//!
//! It keeps a copy of the command's output in a bounded ring of segment
//! files under `/.jobs/log` (read back by [`crate::capture`] after a worker
//! restart), and once the command ended it copies the artifacts under the
//! `/tmp` tmpfs to `/.jobs/art/N`, where Docker's archive API finds them in
//! the stopped container. `/.jobs` is the shim's read-only volume, and
//! `/.jobs/log` and `/.jobs/art` anonymous volumes of the container's own
//! ([`crate::runtime::shim_volume`]): never a host path.
//!
//! Interactive runs get it too: their stdin comes through it
//! ([`crate::shim_input`]), and at a terminal the shim makes the terminal
//! (a pty) whose output it keeps.

use std::io::Write;

use bytes::Bytes;
use jobs_core::wire::Interactive;

/// The shim binary, statically linked.
pub const BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/jobs-shim"));
/// Where the job's own files live in the container.
pub const DIR: &str = "/.jobs";
/// The shim's path in the container.
pub const PATH: &str = "/.jobs/shim";
/// The log segments' directory and files (see `shim.c`).
pub const LOG_DIR: &str = "/.jobs/log";
/// Where the shim copies the artifacts under `/tmp` when the command ends.
pub const ART_DIR: &str = "/.jobs/art";
pub const SEGMENTS: usize = 4;
/// Why the command could not be executed: `127 PROGRAM` or `126 PROGRAM`.
pub const STATUS_FILE: &str = "/.jobs/log/status";
/// The signal that tells the shim the grace is over: it SIGKILLs the
/// command's process group, copies the artifacts, and exits.
pub const KILL_SIGNAL: &str = "SIGUSR2";

/// The tar archive, for `/`, of `/.jobs` and the directories the shim
/// writes, writable by any `--user`: what the image with the shim adds to
/// an app's image ([`crate::runtime::shim_image`]). Not the shim itself,
/// which comes read-only in its volume ([`crate::runtime::shim_volume`]):
/// the image makes `/.jobs` a directory whatever the app image holds there
/// (a symlink would lead the mounts elsewhere), and gives the volumes
/// mounted on `log` and `art` their mode.
pub fn archive() -> Bytes {
    let mut builder = tar::Builder::new(Vec::with_capacity(4096));
    let mut add = |path: &str, mode: u32, data: &[u8], kind: tar::EntryType| {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_size(data.len() as u64);
        builder
            .append_data(&mut header, path, data)
            .expect("an in-memory tar");
    };
    add(".jobs", 0o755, &[], tar::EntryType::Directory);
    add(".jobs/log", 0o777, &[], tar::EntryType::Directory);
    add(".jobs/art", 0o777, &[], tar::EntryType::Directory);
    let mut bytes = builder.into_inner().expect("an in-memory tar");
    let _ = bytes.flush();
    Bytes::from(bytes)
}

/// A warm container's command line: the shim, waiting for its job.
pub fn wait_command_line() -> Vec<String> {
    vec![PATH.to_owned(), "wait".to_owned()]
}

/// What begins a warm container's job on its stdin (see `shim.c`, `wait`).
pub const SPEC_MAGIC: &[u8; 8] = b"JOBSPEC1";

/// The job a warm container's shim (`shim wait`) runs, as the worker
/// writes it to the container's stdin: [`SPEC_MAGIC`], the length (u32 LE),
/// then the tokens `run` takes after its name, each NUL-terminated: `-e
/// K=V`… `-a PATH`… `--` and the command line.
pub fn spec_message(
    env: &[(String, String)],
    artifacts: &[String],
    interactive: Option<Interactive>,
    command: Vec<String>,
) -> anyhow::Result<Vec<u8>> {
    let mut tokens: Vec<String> = Vec::new();
    for (key, value) in env {
        tokens.push("-e".to_owned());
        tokens.push(format!("{key}={value}"));
    }
    let line = command_line(artifacts, interactive, command);
    // Without the shim's path and `run`, which `shim wait` puts back.
    tokens.extend(line.into_iter().skip(2));
    if tokens.iter().any(|token| token.contains('\0')) {
        anyhow::bail!("a NUL byte in the command or its env");
    }
    let mut data = Vec::new();
    for token in &tokens {
        data.extend_from_slice(token.as_bytes());
        data.push(0);
    }
    let length = u32::try_from(data.len())
        .map_err(|_| anyhow::anyhow!("the command and its env take over 4 GiB"))?;
    let mut message = SPEC_MAGIC.to_vec();
    message.extend_from_slice(&length.to_le_bytes());
    message.extend_from_slice(&data);
    Ok(message)
}

/// Whether an artifact path lives on the `/tmp` tmpfs, which goes with the
/// stopped container (the uploads' volume at `/tmp/uploads` does not).
pub fn on_tmpfs(path: &str) -> bool {
    let under = |dir: &str| path == dir || path.starts_with(&format!("{dir}/"));
    under("/tmp") && !under(jobs_core::spec::UPLOADS_DIR)
}

/// The artifact paths the shim copies, in the order of its `-a` flags,
/// with their index among all of the job's paths.
pub fn tmpfs_artifacts(paths: &[String]) -> Vec<(usize, &str)> {
    paths
        .iter()
        .enumerate()
        .filter(|(_, path)| on_tmpfs(path))
        .map(|(index, path)| (index, path.as_str()))
        .collect()
}

/// Where the shim put the copy of the artifact at `path`, the `n`th of
/// [`tmpfs_artifacts`]: under the same name, so that its archive is the
/// one Docker would have made of `path`.
pub fn artifact_copy(n: usize, path: &str) -> String {
    let name = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(path);
    format!("{DIR}/art/{n}/{name}")
}

/// The container's command line: the shim, then `command`. For an
/// `interactive` run, the command's stdin comes through the shim's socket
/// ([`crate::shim_input`]), and a terminal is the shim's to make.
pub fn command_line(
    artifacts: &[String],
    interactive: Option<Interactive>,
    command: Vec<String>,
) -> Vec<String> {
    let mut line = vec![PATH.to_owned(), "run".to_owned()];
    if let Some(interactive) = interactive {
        line.push("-i".to_owned());
        if interactive.tty {
            line.push("-t".to_owned());
        }
    }
    for (_, path) in tmpfs_artifacts(artifacts) {
        line.push("-a".to_owned());
        line.push(path.to_owned());
    }
    line.push("--".to_owned());
    line.extend(command);
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_warm_container_s_spec_holds_run_s_tokens_each_nul_terminated() {
        let env = [
            ("A".to_owned(), "1 2".to_owned()),
            ("B".to_owned(), String::new()),
        ];
        let artifacts = ["/tmp/out.csv".to_owned(), "/app/report".to_owned()];
        let command = vec!["sh".to_owned(), "-c".to_owned(), "echo \"$A\"".to_owned()];
        let message = spec_message(&env, &artifacts, None, command).expect("a spec");
        let tokens: &[u8] = b"-e\0A=1 2\0-e\0B=\0-a\0/tmp/out.csv\0--\0sh\0-c\0echo \"$A\"\0";
        let mut expected = b"JOBSPEC1".to_vec();
        expected.extend_from_slice(&(tokens.len() as u32).to_le_bytes());
        expected.extend_from_slice(tokens);
        assert_eq!(message, expected);
        assert!(spec_message(&[], &[], None, vec!["a\0b".to_owned()]).is_err());
        // An interactive run's flags come before the command, as in `run`.
        let interactive =
            spec_message(&[], &[], Some(Interactive { tty: true }), vec!["sh".into()])
                .expect("a spec");
        assert!(interactive.ends_with(b"-i\0-t\0--\0sh\0"));
    }

    #[test]
    fn only_tmpfs_artifacts_are_copied_and_their_copies_keep_the_name() {
        let paths: Vec<String> = [
            "/tmp/a.csv",
            "/app/out",
            "/tmp/uploads/x",
            "/tmp/dir/",
            "/tmpx",
        ]
        .map(String::from)
        .into();
        assert_eq!(
            tmpfs_artifacts(&paths),
            vec![(0, "/tmp/a.csv"), (3, "/tmp/dir/")]
        );
        assert_eq!(artifact_copy(1, "/tmp/dir/"), "/.jobs/art/1/dir");
        assert_eq!(
            command_line(&paths, None, vec!["sh".into(), "-c".into(), "x".into()]),
            [
                "/.jobs/shim",
                "run",
                "-a",
                "/tmp/a.csv",
                "-a",
                "/tmp/dir/",
                "--",
                "sh",
                "-c",
                "x"
            ]
        );
        assert_eq!(
            command_line(&[], Some(Interactive { tty: false }), vec!["cat".into()]),
            ["/.jobs/shim", "run", "-i", "--", "cat"]
        );
        assert_eq!(
            command_line(&[], Some(Interactive { tty: true }), vec!["sh".into()]),
            ["/.jobs/shim", "run", "-i", "-t", "--", "sh"]
        );
    }

    #[test]
    fn the_image_s_archive_holds_the_writable_directories_and_not_the_shim() {
        let archive = archive();
        let mut entries = tar::Archive::new(archive.as_ref());
        let found: Vec<(String, u32, u64)> = entries
            .entries()
            .unwrap()
            .map(|entry| {
                let entry = entry.unwrap();
                let header = entry.header();
                (
                    entry.path().unwrap().display().to_string(),
                    header.mode().unwrap(),
                    header.size().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            found
                .iter()
                .map(|(path, ..)| path.as_str())
                .collect::<Vec<_>>(),
            [".jobs", ".jobs/log", ".jobs/art"]
        );
        assert_eq!((found[1].1, found[2].1), (0o777, 0o777));
        assert_eq!(&BINARY[..4], b"\x7fELF");
    }
}
