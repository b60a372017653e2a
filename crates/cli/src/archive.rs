//! Tar archives on this machine: a directory of `-f` made into a gzipped
//! archive as it is sent, and artifacts extracted safely as they arrive.
//!
//! Both sides hold the same rule: nothing in an archive may reach outside
//! its directory. A directory is archived with relative names only, and a
//! link that points outside it is refused before anything is sent. An
//! artifact's entries with an absolute name, a `..`, a link leading out,
//! or a device are refused, and nothing is written outside the target.
//!
//! Both run on a blocking thread: `tar` and `flate2` are synchronous. They
//! stream: chunks go through a bounded channel (the directory) or a
//! blocking bridge over the HTTP body (artifacts), never a whole archive.

use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use tokio::sync::mpsc;

/// How many bytes the archive writer gathers before it hands a chunk on.
const CHUNK_BYTES: usize = 256 * 1024;

/// What a scan of a directory found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DirectoryScan {
    /// Bytes of its regular files: about what the archive holds.
    pub file_bytes: u64,
}

/// Walks `dir` and checks that every link in it stays inside it. The error
/// names the link and its target.
pub fn scan_directory(dir: &Path) -> io::Result<DirectoryScan> {
    let mut scan = DirectoryScan::default();
    walk(dir, Path::new(""), &mut |entry| {
        match entry {
            Entry::File { size, .. } => scan.file_bytes += size,
            Entry::Link { relative, target } => {
                if !link_stays_inside(relative, &target) {
                    return Err(io::Error::other(format!(
                        "{} is a link to {} outside the directory: links must stay inside it",
                        dir.join(relative).display(),
                        target.display()
                    )));
                }
            }
            Entry::Directory { .. } => {}
        }
        Ok(())
    })?;
    Ok(scan)
}

enum Entry<'a> {
    Directory {
        relative: &'a Path,
        full: &'a Path,
    },
    File {
        relative: &'a Path,
        full: &'a Path,
        size: u64,
    },
    Link {
        relative: &'a Path,
        target: PathBuf,
    },
}

/// Visits every entry under `dir` in name order, with its path relative
/// to `dir`; links are reported, never followed. Sockets and FIFOs are
/// skipped: they hold no data.
fn walk(
    dir: &Path,
    relative: &Path,
    visit: &mut dyn FnMut(Entry<'_>) -> io::Result<()>,
) -> io::Result<()> {
    let mut names: Vec<_> = std::fs::read_dir(dir.join(relative))?
        .map(|entry| entry.map(|entry| entry.file_name()))
        .collect::<io::Result<_>>()?;
    names.sort();
    for name in names {
        let relative = relative.join(&name);
        let full = dir.join(&relative);
        let metadata = std::fs::symlink_metadata(&full)?;
        let kind = metadata.file_type();
        if kind.is_symlink() {
            let target = std::fs::read_link(&full)?;
            visit(Entry::Link {
                relative: &relative,
                target,
            })?;
        } else if kind.is_dir() {
            visit(Entry::Directory {
                relative: &relative,
                full: &full,
            })?;
            walk(dir, &relative, visit)?;
        } else if kind.is_file() {
            visit(Entry::File {
                relative: &relative,
                full: &full,
                size: metadata.len(),
            })?;
        }
    }
    Ok(())
}

/// Whether a link at `link` (relative to the archive's root) pointing at
/// `target` resolves inside the root: a relative target whose `..` never
/// climbs above it.
pub fn link_stays_inside(link: &Path, target: &Path) -> bool {
    let mut depth: i64 = link.parent().map_or(0, |parent| {
        parent
            .components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .count() as i64
    });
    for component in target.components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// Writes chunks of at most [`CHUNK_BYTES`] into a bounded channel, so the
/// archive is made no faster than it is sent.
struct ChannelWriter {
    sender: mpsc::Sender<io::Result<Bytes>>,
    buffer: Vec<u8>,
}

impl ChannelWriter {
    fn send_buffer(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(CHUNK_BYTES),
        ));
        self.sender
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the upload stopped"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= CHUNK_BYTES {
            self.send_buffer()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_buffer()
    }
}

/// Starts archiving `dir` as `<top>/...` in a gzipped tar on a blocking
/// thread, and returns the stream of its bytes. A failure ends the stream
/// with an error, so the API stores nothing.
pub fn directory_archive_stream(
    dir: PathBuf,
    top: String,
) -> impl futures::Stream<Item = io::Result<Bytes>> + Send + 'static {
    let (sender, receiver) = mpsc::channel(4);
    let error_sender = sender.clone();
    tokio::task::spawn_blocking(move || {
        let writer = ChannelWriter {
            sender,
            buffer: Vec::with_capacity(CHUNK_BYTES),
        };
        if let Err(error) = write_directory_archive(&dir, &top, writer) {
            let _ = error_sender.blocking_send(Err(error));
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(receiver)
}

fn write_directory_archive(dir: &Path, top: &str, writer: ChannelWriter) -> io::Result<()> {
    let gzip = flate2::write::GzEncoder::new(writer, flate2::Compression::fast());
    let mut builder = tar::Builder::new(gzip);
    builder.follow_symlinks(false);
    builder.mode(tar::HeaderMode::Deterministic);
    let top = Path::new(top);
    builder.append_dir(top, dir)?;
    walk(dir, Path::new(""), &mut |entry| match entry {
        Entry::Directory { relative, full } => builder.append_dir(top.join(relative), full),
        Entry::File { relative, full, .. } => {
            builder.append_path_with_name(full, top.join(relative))
        }
        Entry::Link { relative, target } => {
            // Checked by the scan; checked again, as the tree may change.
            if !link_stays_inside(relative, &target) {
                return Err(io::Error::other(format!(
                    "{} is a link outside the directory",
                    relative.display()
                )));
            }
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            header.set_mode(0o777);
            builder.append_link(&mut header, top.join(relative), &target)
        }
    })?;
    let mut writer = builder.into_inner()?.finish()?;
    writer.flush()
}

/// What one artifact's extraction wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// The top-level names written under the target directory.
    pub names: Vec<String>,
    pub bytes: u64,
}

/// Extracts the tar archive read from `reader` into `target`, refusing any
/// entry that would write or point outside it.
pub fn extract_safely(reader: impl Read, target: &Path) -> io::Result<Extracted> {
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(false);
    archive.set_overwrite(true);
    let mut extracted = Extracted::default();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        check_entry_path(&path)?;
        let kind = entry.header().entry_type();
        match kind {
            tar::EntryType::Regular
            | tar::EntryType::Continuous
            | tar::EntryType::Directory
            | tar::EntryType::GNUSparse => {}
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target_path = entry
                    .link_name()?
                    .ok_or_else(|| refused(&path, "a link without a target"))?
                    .into_owned();
                // A hard link's target is a path in the archive, from its root.
                let from = if kind == tar::EntryType::Link {
                    Path::new("x")
                } else {
                    path.as_path()
                };
                if !link_stays_inside(from, &target_path) {
                    return Err(refused(
                        &path,
                        &format!("a link to {} outside the directory", target_path.display()),
                    ));
                }
            }
            // Global and extended headers are read by `tar` itself.
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => continue,
            other => return Err(refused(&path, &format!("an entry of type {other:?}"))),
        }
        if let Some(Component::Normal(top)) = path.components().next() {
            let top = top.to_string_lossy().into_owned();
            if !extracted.names.contains(&top) {
                extracted.names.push(top);
            }
        }
        extracted.bytes += entry.header().size().unwrap_or(0);
        if !entry.unpack_in(target)? {
            return Err(refused(&path, "a path outside the directory"));
        }
    }
    Ok(extracted)
}

fn check_entry_path(path: &Path) -> io::Result<()> {
    for component in path.components() {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return Err(refused(path, "a `..` in its name")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(refused(path, "an absolute name"));
            }
        }
    }
    Ok(())
}

fn refused(path: &Path, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("refused archive entry {}: {why}", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_must_resolve_inside() {
        assert!(link_stays_inside(Path::new("a/link"), Path::new("../b")));
        assert!(link_stays_inside(Path::new("link"), Path::new("b/c")));
        assert!(!link_stays_inside(Path::new("link"), Path::new("../b")));
        assert!(!link_stays_inside(
            Path::new("a/link"),
            Path::new("../../b")
        ));
        assert!(!link_stays_inside(
            Path::new("a/link"),
            Path::new("/etc/passwd")
        ));
    }

    fn archive(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        build(&mut builder);
        builder.into_inner().unwrap()
    }

    fn file_header(size: u64) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        header.set_size(size);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        header
    }

    /// Writes a raw name into a header, bypassing the tar crate's checks,
    /// as a hostile archive would.
    fn raw_named(name: &str, size: u64) -> tar::Header {
        let mut header = file_header(size);
        let bytes = header.as_old_mut();
        bytes.name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_cksum();
        header
    }

    #[test]
    fn extraction_writes_ordinary_entries_and_refuses_escapes() {
        let dir = tempfile_dir("extract");
        let good = archive(|b| {
            let mut header = file_header(5);
            b.append_data(&mut header, "report/out.txt", &b"hello"[..])
                .unwrap();
        });
        let extracted = extract_safely(&good[..], &dir).unwrap();
        assert_eq!(extracted.names, vec!["report"]);
        assert_eq!(std::fs::read(dir.join("report/out.txt")).unwrap(), b"hello");

        for name in ["../escape.txt", "/abs.txt", "a/../../x"] {
            let hostile = archive(|b| {
                let mut header = raw_named(name, 1);
                b.append(&header.clone(), &b"x"[..]).unwrap();
                let _ = &mut header;
            });
            let err = extract_safely(&hostile[..], &dir).unwrap_err();
            assert!(err.to_string().contains("refused"), "{name}: {err}");
        }
        let link_out = archive(|b| {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            b.append_link(&mut header, "evil", "/etc/passwd").unwrap();
        });
        let err = extract_safely(&link_out[..], &dir).unwrap_err();
        assert!(err.to_string().contains("outside"), "{err}");
        assert!(!dir.join("evil").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempfile_dir(what: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "jobs-cli-{what}-{}-{}",
            std::process::id(),
            uuid_like()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn uuid_like() -> u128 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    }

    #[tokio::test]
    async fn a_directory_round_trips_and_an_outside_link_is_refused() {
        use futures::StreamExt;
        let dir = tempfile_dir("archive");
        let source = dir.join("data");
        std::fs::create_dir_all(source.join("sub")).unwrap();
        std::fs::write(source.join("a.txt"), b"alpha").unwrap();
        std::fs::write(source.join("sub/b.bin"), [0u8, 1, 2, 255]).unwrap();
        std::os::unix::fs::symlink("../a.txt", source.join("sub/link")).unwrap();
        assert_eq!(scan_directory(&source).unwrap().file_bytes, 9);

        let mut stream = Box::pin(directory_archive_stream(source.clone(), "data".into()));
        let mut gz = Vec::new();
        while let Some(chunk) = stream.next().await {
            gz.extend_from_slice(&chunk.unwrap());
        }
        let out = dir.join("out");
        std::fs::create_dir_all(&out).unwrap();
        extract_safely(flate2::read::GzDecoder::new(&gz[..]), &out).unwrap();
        assert_eq!(std::fs::read(out.join("data/a.txt")).unwrap(), b"alpha");
        assert_eq!(
            std::fs::read(out.join("data/sub/b.bin")).unwrap(),
            [0u8, 1, 2, 255]
        );
        assert_eq!(
            std::fs::read_link(out.join("data/sub/link")).unwrap(),
            Path::new("../a.txt")
        );

        std::os::unix::fs::symlink("/etc/passwd", source.join("outside")).unwrap();
        let err = scan_directory(&source).unwrap_err();
        assert!(err.to_string().contains("outside the directory"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
