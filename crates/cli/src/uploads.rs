//! `jobs run -f`: the files and directories sent to the object store
//! before the job is created.
//!
//! 1. Every local check comes first ([`crate::args::RunArgs::local_uploads`],
//!    and here the links of each directory), so that a wrong command line
//!    sends nothing.
//! 2. The API is asked, with `dry_run`, whether each file's size and the
//!    job's total fit its limits, before any byte is sent.
//! 3. Each file streams from disk (a directory as a gzipped tar archive
//!    made on the fly), hashed as it goes; the API's SHA-256 must match.
//!
//! The job then names the uploads with the SHA-256 computed here, and the
//! API compares them once more.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use jobs_core::wire::UploadRef;
use sha2::{Digest, Sha256};

use crate::args::{LocalKind, LocalUpload, usage_error};
use crate::client::ApiClient;
use crate::error::CliError;
use crate::{archive, progress};

/// How many bytes one read of a file takes.
const READ_CHUNK_BYTES: usize = 256 * 1024;

/// Sends every upload of the run and returns what the job names.
pub async fn upload_all(
    client: &ApiClient,
    app: &str,
    uploads: &[LocalUpload],
) -> Result<Vec<UploadRef>, CliError> {
    // A directory's size is known once archived; its files' bytes stand
    // in for it in the declared total.
    let mut declared = Vec::with_capacity(uploads.len());
    for upload in uploads {
        declared.push(match upload.kind {
            LocalKind::File { size } => size,
            LocalKind::Directory => {
                let path = upload.path.clone();
                tokio::task::spawn_blocking(move || archive::scan_directory(&path))
                    .await
                    .map_err(|err| CliError::LocalOutput(err.to_string()))?
                    .map_err(|err| {
                        usage_error(
                            clap::error::ErrorKind::ValueValidation,
                            format!(
                                "invalid value '{}' for '--file <PATH>': {err}",
                                upload.path.display()
                            ),
                        )
                    })?
                    .file_bytes
            }
        });
    }
    let total: u64 = declared.iter().sum();
    for upload in uploads {
        client
            .check_upload(app, &upload.name, known_size(upload), total)
            .await?;
    }
    let mut refs = Vec::with_capacity(uploads.len());
    for upload in uploads {
        refs.push(send(client, app, upload, total).await?);
    }
    Ok(refs)
}

fn known_size(upload: &LocalUpload) -> Option<u64> {
    match upload.kind {
        LocalKind::File { size } => Some(size),
        LocalKind::Directory => None,
    }
}

/// What was sent: counted and hashed as the bytes left.
#[derive(Default)]
struct Sent {
    hasher: Sha256,
    bytes: u64,
}

async fn send(
    client: &ApiClient,
    app: &str,
    upload: &LocalUpload,
    total: u64,
) -> Result<UploadRef, CliError> {
    let local_error = |err: std::io::Error| {
        CliError::LocalOutput(format!("reading {}: {err}", upload.path.display()))
    };
    let bar = progress::transfer_bar(&format!("upload {}", upload.name), known_size(upload));
    let sent = Arc::new(Mutex::new(Sent::default()));
    let body: std::pin::Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>> =
        match upload.kind {
            LocalKind::File { .. } => {
                let file = tokio::fs::File::open(&upload.path)
                    .await
                    .map_err(local_error)?;
                Box::pin(tokio_util::io::ReaderStream::with_capacity(
                    file,
                    READ_CHUNK_BYTES,
                ))
            }
            LocalKind::Directory => {
                let top = upload.name.trim_end_matches(".tar.gz").to_owned();
                Box::pin(archive::directory_archive_stream(upload.path.clone(), top))
            }
        };
    let counted = {
        let sent = sent.clone();
        let bar = bar.clone();
        body.map(move |chunk| {
            if let Ok(chunk) = &chunk {
                let mut sent = sent.lock().expect("never poisoned");
                sent.hasher.update(chunk);
                sent.bytes += chunk.len() as u64;
                bar.inc(chunk.len() as u64);
            }
            chunk
        })
    };
    let stored = client
        .upload(
            app,
            &upload.name,
            known_size(upload),
            total,
            reqwest::Body::wrap_stream(counted),
        )
        .await;
    bar.finish_and_clear();
    let stored = stored?;
    let sent = std::mem::take(&mut *sent.lock().expect("never poisoned"));
    let sha256 = jobs_blobs::hex(&sent.hasher.finalize());
    if stored.sha256 != sha256 || u64::try_from(stored.size).ok() != Some(sent.bytes) {
        return Err(CliError::UnexpectedAnswer(format!(
            "upload {}: sha256 mismatch: sent {} bytes hashing to {sha256}, the API stored {} bytes hashing to {}",
            upload.name, sent.bytes, stored.size, stored.sha256
        )));
    }
    Ok(UploadRef {
        id: stored.id,
        sha256,
    })
}
