//! The object store: the one home of uploads and artifacts.
//!
//! [`Blobs`] wraps the `object_store` crate behind the few operations the
//! API and the worker need, and it is the only place in the project that
//! names a bucket or a directory of objects:
//! - `s3://bucket/prefix`: S3 or any S3-compatible server, configured by the
//!   standard `AWS_*` variables (`AWS_ENDPOINT` and `AWS_ALLOW_HTTP` for a
//!   server of your own);
//! - `file:///path`: a local directory (what `jobs dev` uses).
//!
//! Every transfer streams: [`Blobs::put_stream`] sends parts of
//! [`PART_BYTES`] as they fill, with at most [`PARTS_IN_FLIGHT`] parts on
//! the way, counting the bytes and hashing them (SHA-256) as they pass, and
//! aborts the upload as soon as a limit is crossed. [`Blobs::get`] returns a
//! stream of chunks. Nothing holds a whole object in memory.
//!
//! Keys are made here too ([`upload_key`], [`artifact_key`]), so the layout
//! of the store is written down once.

use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt, stream::BoxStream};
/// The object store's own error, for callers that tell "not found" apart.
pub use object_store::Error as ObjectError;
use object_store::{
    ObjectStore, ObjectStoreExt, WriteMultipart, aws::AmazonS3Builder, local::LocalFileSystem,
    path::Path as ObjectPath, prefix::PrefixStore,
};
use sha2::{Digest, Sha256};

/// The size of one part of a multipart upload. S3 needs at least 5 MiB.
pub const PART_BYTES: usize = 8 * 1024 * 1024;
/// How many parts may be on their way at once: with [`PART_BYTES`], at
/// most this times 8 MiB of an upload is in memory.
pub const PARTS_IN_FLIGHT: usize = 3;

/// The key of an uploaded file.
pub fn upload_key(upload_id: &str) -> String {
    format!("uploads/{upload_id}")
}

/// The key of a job's `index`-th artifact: the tar stream Docker gave.
pub fn artifact_key(job_id: &str, index: usize) -> String {
    format!("artifacts/{job_id}/{index}.tar")
}

/// What a stored object turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub size: u64,
    /// Lowercase hex.
    pub sha256: String,
}

/// Limits and checks applied while an object streams in.
#[derive(Debug, Clone, Default)]
pub struct PutChecks {
    /// Abort once more than this many bytes came.
    pub max_bytes: Option<u64>,
    /// Abort, storing nothing, unless the bytes hash to this (lowercase hex).
    pub expected_sha256: Option<String>,
}

/// Why an object was not stored. Nothing is left in the store after any of
/// them: the multipart upload is aborted.
#[derive(Debug, thiserror::Error)]
pub enum PutError {
    #[error("more than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("sha256 mismatch: expected {expected}, got {actual}")]
    Sha256Mismatch { expected: String, actual: String },
    /// The incoming stream failed (the client went away, say).
    #[error("reading the data failed: {0}")]
    Source(String),
    #[error("the object store failed: {0}")]
    Store(#[from] object_store::Error),
}

/// An object being read.
pub struct BlobStream {
    pub size: u64,
    pub chunks: BoxStream<'static, Result<Bytes, object_store::Error>>,
}

/// A handle on the object store; cheap to clone.
#[derive(Clone, Debug)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
    /// The URL it was opened from, for messages (no secret is in it).
    url: String,
}

impl Blobs {
    /// Opens `s3://bucket[/prefix]` or `file:///path` (the directory is
    /// created when missing).
    pub fn from_url(url: &str) -> anyhow::Result<Self> {
        use anyhow::Context;
        let parsed = url::Url::parse(url).with_context(|| {
            format!("object store {url:?} is not a URL: use s3://bucket/prefix or file:///path")
        })?;
        let store: Arc<dyn ObjectStore> = match parsed.scheme() {
            "s3" => {
                let bucket = parsed
                    .host_str()
                    .filter(|bucket| !bucket.is_empty())
                    .with_context(|| format!("object store {url:?} names no bucket"))?;
                let s3 = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .build()
                    .with_context(|| format!("configuring the S3 store {url:?} from AWS_*"))?;
                with_prefix(s3, parsed.path())?
            }
            "file" => {
                let dir = parsed.to_file_path().ok().with_context(|| {
                    format!("object store {url:?} is not an absolute file path")
                })?;
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("creating the object directory {}", dir.display()))?;
                // Empty directories left by deleted objects are removed too.
                Arc::new(
                    LocalFileSystem::new_with_prefix(&dir)
                        .with_context(|| format!("opening the object directory {}", dir.display()))?
                        .with_automatic_cleanup(true),
                )
            }
            other => anyhow::bail!(
                "object store {url:?} has the scheme {other:?}: use s3://bucket/prefix or file:///path"
            ),
        };
        Ok(Self {
            store,
            url: url.to_owned(),
        })
    }

    /// A store in a local directory, as `jobs dev` uses.
    pub fn local(dir: &std::path::Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let dir = dir.canonicalize()?;
        Self::from_url(&format!("file://{}", dir.display()))
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Streams `chunks` into the object `key`, counting and hashing as the
    /// bytes pass, and stores it only if every check in `checks` holds.
    pub async fn put_stream<S, E>(
        &self,
        key: &str,
        chunks: S,
        checks: &PutChecks,
    ) -> Result<Stored, PutError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        let path = ObjectPath::from(key);
        let upload = self.store.put_multipart(&path).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let mut chunks = std::pin::pin!(chunks);
        let failure = loop {
            let chunk = match chunks.next().await {
                None => break None,
                Some(Err(error)) => break Some(PutError::Source(error.to_string())),
                Some(Ok(chunk)) => chunk,
            };
            size += chunk.len() as u64;
            if let Some(limit) = checks.max_bytes.filter(|limit| size > *limit) {
                break Some(PutError::TooLarge { limit });
            }
            hasher.update(&chunk);
            // Backpressure: the client is read no faster than parts leave.
            if let Err(error) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                break Some(PutError::Store(error));
            }
            writer.put(chunk);
        };
        let sha256 = hex(&hasher.finalize());
        let failure = failure.or_else(|| match &checks.expected_sha256 {
            Some(expected) if !expected.eq_ignore_ascii_case(&sha256) => {
                Some(PutError::Sha256Mismatch {
                    expected: expected.clone(),
                    actual: sha256.clone(),
                })
            }
            _ => None,
        });
        if let Some(failure) = failure {
            if let Err(error) = writer.abort().await {
                tracing::warn!(key, %error, "aborting a multipart upload failed");
            }
            return Err(failure);
        }
        writer.finish().await?;
        Ok(Stored { size, sha256 })
    }

    /// Opens the object `key` for reading, chunk by chunk.
    pub async fn get(&self, key: &str) -> Result<BlobStream, object_store::Error> {
        let result = self.store.get(&ObjectPath::from(key)).await?;
        Ok(BlobStream {
            size: result.meta.size,
            chunks: result.into_stream(),
        })
    }

    /// Deletes the object `key`; an object already gone is no error.
    pub async fn delete(&self, key: &str) -> Result<(), object_store::Error> {
        match self.store.delete(&ObjectPath::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(error),
        }
    }
}

fn with_prefix<T: ObjectStore>(store: T, path: &str) -> anyhow::Result<Arc<dyn ObjectStore>> {
    let prefix = path.trim_matches('/');
    if prefix.is_empty() {
        return Ok(Arc::new(store));
    }
    let prefix = ObjectPath::parse(prefix)
        .map_err(|error| anyhow::anyhow!("object store prefix {prefix:?}: {error}"))?;
    Ok(Arc::new(PrefixStore::new(store, prefix)))
}

/// Lowercase hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(64), |mut text, byte| {
            let _ = write!(text, "{byte:02x}");
            text
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
        futures::stream::iter(
            parts
                .iter()
                .map(|part| Ok(Bytes::from_static(part)))
                .collect::<Vec<_>>(),
        )
    }

    async fn read_all(blobs: &Blobs, key: &str) -> Vec<u8> {
        let mut stream = blobs.get(key).await.expect("get").chunks;
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            bytes.extend_from_slice(&chunk.expect("chunk"));
        }
        bytes
    }

    #[tokio::test]
    async fn objects_round_trip_with_their_size_and_hash() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::local(dir.path()).unwrap();
        let stored = blobs
            .put_stream(
                "uploads/u1",
                chunks(&[b"hello ", b"world"]),
                &PutChecks::default(),
            )
            .await
            .unwrap();
        assert_eq!(stored.size, 11);
        assert_eq!(
            stored.sha256,
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
        assert_eq!(read_all(&blobs, "uploads/u1").await, b"hello world");
        blobs.delete("uploads/u1").await.unwrap();
        blobs.delete("uploads/u1").await.unwrap();
        assert!(blobs.get("uploads/u1").await.is_err());
    }

    #[tokio::test]
    async fn a_limit_or_a_wrong_hash_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::local(dir.path()).unwrap();
        let too_large = blobs
            .put_stream(
                "k",
                chunks(&[b"1234", b"5678"]),
                &PutChecks {
                    max_bytes: Some(5),
                    expected_sha256: None,
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(too_large, PutError::TooLarge { limit: 5 }));
        let mismatch = blobs
            .put_stream(
                "k",
                chunks(&[b"abc"]),
                &PutChecks {
                    max_bytes: None,
                    expected_sha256: Some("00".repeat(32)),
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(mismatch, PutError::Sha256Mismatch { .. }),
            "{mismatch}"
        );
        assert!(blobs.get("k").await.is_err());
    }

    #[test]
    fn bad_urls_are_refused_with_the_forms_that_work() {
        for bad in ["nope", "ftp://x/y", "s3:///prefix"] {
            let message = format!("{:#}", Blobs::from_url(bad).unwrap_err());
            assert!(message.contains(bad), "{message}");
        }
    }
}
