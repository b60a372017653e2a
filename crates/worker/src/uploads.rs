//! Uploaded files, streamed from the object store into a created container
//! before its command starts.
//!
//! Each file goes as its own tar archive, built on the fly: a header made
//! here, the object's bytes as they arrive, then the padding and the end
//! of the archive. The bytes are hashed as they pass; a file whose bytes do
//! not hash to the SHA-256 the API recorded is cut off before its end (so
//! Docker refuses the archive) and fails the job, naming the file.
//!
//! [`prepare_uploads`] takes the claimed job and the created container's
//! id, so that both the queued path and the interactive (direct start)
//! path call it.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream};
use jobs_blobs::upload_key;
use jobs_core::wire::Upload;
use jobs_store::ClaimedJob;
use sha2::{Digest, Sha256};

use crate::{
    runtime::{
        Runtime,
        uploads_volume::{LOADER_DIR, UploadsLoader},
    },
    worker::WorkerContext,
};

/// The tar block size: headers and data are padded to it.
const BLOCK: u64 = 512;

/// Copies every upload of `claimed` into `/tmp/uploads` of the container
/// `container_id`: created and not yet started, or a warm one that runs. The error is the job's
/// reason, such as `upload data.csv: sha256 mismatch`.
pub async fn prepare_uploads(
    context: &WorkerContext,
    claimed: &ClaimedJob,
    container_id: &str,
) -> Result<(), String> {
    // The job's own mount is read-only: the files go in through a loader
    // with the same volume writable (runtime::uploads_volume).
    let loader = context
        .runtime
        .uploads_loader(container_id)
        .await
        .map_err(|error| format!("uploads: {error:#}"))?;
    let mut loader = LoaderGuard {
        runtime: context.runtime.clone(),
        loader: Some(loader),
    };
    let mut copied = Ok(());
    for upload in &claimed.job.uploads {
        copied = copy_upload(context, loader.id(), upload)
            .await
            .map_err(|why| format!("upload {}: {why}", upload.name));
        if copied.is_err() {
            break;
        }
        tracing::info!(job_id = %claimed.fence.job_id, upload = %upload.name, size = upload.size, "upload copied into the container");
    }
    loader.remove().await;
    copied
}

/// Removes the loader at the end of the copy, or, when the copy is
/// interrupted (a cancel drops it), in a task of its own.
struct LoaderGuard {
    runtime: Runtime,
    loader: Option<UploadsLoader>,
}

impl LoaderGuard {
    fn id(&self) -> &str {
        self.loader.as_ref().map_or("", |loader| loader.id.as_str())
    }

    async fn remove(&mut self) {
        if let Some(loader) = self.loader.take() {
            remove_loader(&self.runtime, loader).await;
        }
    }
}

impl Drop for LoaderGuard {
    fn drop(&mut self) {
        if let Some(loader) = self.loader.take() {
            let runtime = self.runtime.clone();
            tokio::spawn(async move { remove_loader(&runtime, loader).await });
        }
    }
}

async fn remove_loader(runtime: &Runtime, loader: UploadsLoader) {
    let id = loader.id.clone();
    if let Err(error) = runtime.remove_uploads_loader(loader).await {
        tracing::warn!(
            loader = id,
            error = format!("{error:#}"),
            "removing an uploads' loader failed"
        );
    }
}

/// What the bytes turned out to be, once the object stream ended.
#[derive(Debug, Default)]
struct Verdict {
    mismatch: Option<String>,
}

async fn copy_upload(
    context: &WorkerContext,
    loader_id: &str,
    upload: &Upload,
) -> Result<(), String> {
    // The name was checked when stored; checked again so that a row from
    // elsewhere can never make a path.
    jobs_core::spec::validate_upload_name(&upload.name).map_err(|error| error.message)?;
    let expected_size = u64::try_from(upload.size).map_err(|_| "negative size".to_owned())?;
    let blob = context
        .blobs
        .get(&upload_key(&upload.id))
        .await
        .map_err(|error| format!("reading it from the object store failed: {error}"))?;
    let header = tar_header(&upload.name, expected_size)?;
    let verdict = Arc::new(Mutex::new(Verdict::default()));
    let hasher = Arc::new(Mutex::new((Sha256::new(), 0u64)));

    let counted = {
        let hasher = hasher.clone();
        blob.chunks
            .map_err(std::io::Error::other)
            .map_ok(move |chunk: Bytes| {
                let mut state = hasher.lock().expect("the hasher lock is never poisoned");
                state.0.update(&chunk);
                state.1 += chunk.len() as u64;
                chunk
            })
    };
    let end = {
        let verdict = verdict.clone();
        let expected_sha256 = upload.sha256.clone();
        stream::once(async move {
            let (hasher, size) = std::mem::take(&mut *hasher.lock().expect("not poisoned"));
            let sha256 = jobs_blobs::hex(&hasher.finalize());
            let mismatch = if size != expected_size {
                Some(format!(
                    "size mismatch: {size} bytes in the object store, {expected_size} recorded"
                ))
            } else if sha256 != expected_sha256 {
                Some("sha256 mismatch".to_owned())
            } else {
                None
            };
            match mismatch {
                // Ending the archive early makes Docker refuse it.
                Some(why) => {
                    verdict.lock().expect("not poisoned").mismatch = Some(why.clone());
                    Err(std::io::Error::other(why))
                }
                None => Ok(archive_end(size)),
            }
        })
    };
    let tar = stream::once(async move { Ok(header) })
        .chain(counted)
        .chain(end);
    let copied = context
        .runtime
        .upload_archive(loader_id, LOADER_DIR, tar)
        .await;
    if let Some(why) = verdict.lock().expect("not poisoned").mismatch.take() {
        return Err(why);
    }
    copied.map_err(|error| format!("copying it into the container failed: {error:#}"))
}

/// A ustar header for a regular file `name` of `size` bytes, readable by
/// every user (the job may run as any `--user`), owned by root.
fn tar_header(name: &str, size: u64) -> Result<Bytes, String> {
    let mut header = tar::Header::new_gnu();
    header
        .set_path(name)
        .map_err(|error| format!("cannot name it in a tar archive: {error}"))?;
    header.set_size(size);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mtime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs()),
    );
    header.set_cksum();
    Ok(Bytes::copy_from_slice(header.as_bytes()))
}

/// The padding of a `size`-byte entry to a whole block, then the two zero
/// blocks that end a tar archive.
fn archive_end(size: u64) -> Bytes {
    let padding = (BLOCK - size % BLOCK) % BLOCK;
    Bytes::from(vec![0u8; (padding + 2 * BLOCK) as usize])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_data_and_end_make_a_tar_archive() {
        let data = b"hello, container\n";
        let mut archive = tar_header("data.csv", data.len() as u64).unwrap().to_vec();
        archive.extend_from_slice(data);
        archive.extend_from_slice(&archive_end(data.len() as u64));
        assert_eq!(archive.len() % BLOCK as usize, 0);
        let mut reader = tar::Archive::new(&archive[..]);
        let mut entries = reader.entries().unwrap();
        let mut entry = entries.next().unwrap().unwrap();
        assert_eq!(entry.path().unwrap().to_str(), Some("data.csv"));
        assert_eq!(entry.header().mode().unwrap(), 0o644);
        let mut read = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut read).unwrap();
        assert_eq!(read, data);
        assert!(entries.next().is_none());
    }

    #[test]
    fn whole_blocks_need_no_padding() {
        assert_eq!(archive_end(1024).len(), 1024);
        assert_eq!(archive_end(1).len(), 511 + 1024);
    }
}
