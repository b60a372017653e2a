//! The data directory of `jobs dev`: where it is, and what it holds.
//!
//! ```text
//! DIR/                 mode 0700 when jobs dev creates it
//!   jobs.db            the SQLite store: apps, jobs, logs (mode 0600;
//!   jobs.db-wal, -shm  SQLite gives its side files the same mode)
//!   token              the dev admin token, mode 0600 (see `dev_token`)
//!   worker-id          the worker's id, which labels its containers
//!   lock               locked while a `jobs dev` runs on DIR
//! ```
//!
//! The same directory is where the CLI looks for the token, so both sides
//! resolve it with the functions here.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::dev_token;

/// The variable that moves the data directory, for `jobs dev` and the CLI.
pub const DATA_DIR_ENV: &str = "JOBS_DEV_DATA_DIR";

const DATABASE_FILE: &str = "jobs.db";
const WORKER_ID_FILE: &str = "worker-id";
const LOCK_FILE: &str = "lock";
/// The directory of uploads and artifacts under the data dir.
const OBJECTS_DIR: &str = "objects";

/// The default data directory: `$XDG_DATA_HOME/jobs/dev`, else
/// `$HOME/.local/share/jobs/dev`. `None` when neither variable is usable.
pub fn default_dir() -> Option<PathBuf> {
    // The XDG base directory spec says to ignore a relative XDG_DATA_HOME.
    let xdg = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|path| path.is_absolute());
    let base = xdg.or_else(|| {
        std::env::var_os("HOME")
            .filter(|home| !home.is_empty())
            .map(|home| PathBuf::from(home).join(".local/share"))
    })?;
    Some(base.join("jobs").join("dev"))
}

/// The data directory as the CLI sees it: [`DATA_DIR_ENV`], else the
/// default.
pub fn cli_dir() -> Option<PathBuf> {
    std::env::var_os(DATA_DIR_ENV)
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(default_dir)
}

/// An open data directory, locked for this process until it is dropped.
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    /// Holds the `flock`; the kernel releases it when the process dies, even
    /// by SIGKILL, so a crash never leaves a stale lock behind.
    _lock: File,
}

impl DataDir {
    /// Creates the directory if needed (mode 0700) and locks it. Fails when
    /// another `jobs dev` holds it: two workers with one id would remove
    /// each other's containers.
    pub fn open(path: &Path) -> anyhow::Result<DataDir> {
        let path = std::path::absolute(path)
            .with_context(|| format!("resolving the data dir {}", path.display()))?;
        if !path.is_dir() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&path)
                .with_context(|| format!("creating the data dir {}", path.display()))?;
        }
        let lock = lock(&path.join(LOCK_FILE))?;
        Ok(DataDir { path, _lock: lock })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn token_file(&self) -> PathBuf {
        self.path.join(dev_token::TOKEN_FILE)
    }

    /// The store's URL, `sqlite:///DIR/jobs.db`. The file is created first,
    /// empty and private, because SQLite would create it with the umask's
    /// mode, and it holds the apps' config vars.
    pub fn database_url(&self) -> anyhow::Result<String> {
        let file = self.path.join(DATABASE_FILE);
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&file)
            .with_context(|| format!("creating {}", file.display()))?;
        let Some(text) = file.to_str() else {
            bail!("the data dir must be a UTF-8 path: {}", file.display());
        };
        Ok(format!("sqlite://{}", percent_encode_path(text)))
    }

    /// The object store of uploads and artifacts, `file:///DIR/objects`,
    /// created private: uploads are the apps' data.
    pub fn objects_url(&self) -> anyhow::Result<String> {
        let dir = self.path.join(OBJECTS_DIR);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making {} private", dir.display()))?;
        let dir = dir
            .canonicalize()
            .with_context(|| format!("resolving {}", dir.display()))?;
        let Some(text) = dir.to_str() else {
            bail!("the data dir must be a UTF-8 path: {}", dir.display());
        };
        Ok(format!("file://{}", percent_encode_path(text)))
    }

    /// The worker's id: made once per data directory and kept, because a
    /// restarted worker takes over exactly the containers labelled with its
    /// id, and removes the others it finds with that label. One id per
    /// directory lets several `jobs dev` share a Docker engine.
    pub fn worker_id(&self) -> anyhow::Result<String> {
        let file = self.path.join(WORKER_ID_FILE);
        match std::fs::read_to_string(&file) {
            Ok(text) if !text.trim().is_empty() => return Ok(text.trim().to_owned()),
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(err).with_context(|| format!("reading {}", file.display())),
        }
        let id = format!("dev-{}", dev_token::random_hex(4)?);
        write_atomically(&file, id.as_bytes(), 0o644)
            .with_context(|| format!("writing {}", file.display()))?;
        Ok(id)
    }
}

/// Takes an exclusive `flock` on `file` without waiting.
fn lock(file: &Path) -> anyhow::Result<File> {
    let lock = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(file)
        .with_context(|| format!("opening {}", file.display()))?;
    // SAFETY: flock(2) on a descriptor this function owns.
    let locked = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if locked != 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::WouldBlock {
            bail!(
                "another jobs dev is running on {}; stop it, or pass another --data-dir",
                file.parent().unwrap_or(file).display()
            );
        }
        return Err(err).with_context(|| format!("locking {}", file.display()));
    }
    Ok(lock)
}

/// Writes `contents` to a new file with `mode` and renames it over `path`,
/// so that a reader never sees a half-written file, and a secret never sits
/// in a file with a wider mode, even briefly.
pub(crate) fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".new");
    let temporary = PathBuf::from(temporary);
    // A leftover from a crash in the middle of a write; the data dir's lock
    // makes this process the only writer.
    match std::fs::remove_file(&temporary) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
        _ => {}
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temporary)?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, path)
}

/// Escapes the characters that sqlx's SQLite URL parser decodes or splits
/// on (`%`, and `?` and `#` which start the query and the fragment).
fn percent_encode_path(path: &str) -> String {
    let mut encoded = String::with_capacity(path.len());
    for character in path.chars() {
        match character {
            '%' => encoded.push_str("%25"),
            '?' => encoded.push_str("%3F"),
            '#' => encoded.push_str("%23"),
            other => encoded.push(other),
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "jobs-cli-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_data_dir_is_private_and_locked() {
        let root = temp_dir("data-dir");
        let path = root.join("a/b");
        let dir = DataDir::open(&path).unwrap();
        assert_eq!(mode(&path), 0o700);
        let err = DataDir::open(&path).unwrap_err();
        assert!(err.to_string().contains("another jobs dev"), "{err:#}");
        drop(dir);
        DataDir::open(&path).expect("the lock is released on drop");
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn the_database_file_is_private_and_its_url_is_escaped() {
        let root = temp_dir("database");
        let path = root.join("odd?#%name");
        let dir = DataDir::open(&path).unwrap();
        let url = dir.database_url().unwrap();
        assert!(url.starts_with("sqlite:///"), "{url}");
        assert!(url.ends_with("/odd%3F%23%25name/jobs.db"), "{url}");
        assert_eq!(mode(&dir.path().join("jobs.db")), 0o600);
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn the_worker_id_is_made_once_and_kept() {
        let root = temp_dir("worker-id");
        let dir = DataDir::open(&root).unwrap();
        let id = dir.worker_id().unwrap();
        assert!(
            id.starts_with("dev-") && id.len() == "dev-".len() + 8,
            "{id}"
        );
        assert_eq!(dir.worker_id().unwrap(), id);
        std::fs::remove_dir_all(root).unwrap();
    }
}
