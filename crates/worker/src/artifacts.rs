//! Artifacts: the paths a job asked for, streamed out of its stopped (not
//! yet removed) container into the object store, each as the tar archive
//! Docker makes of it.
//!
//! They are collected after the command ended, whatever the ending
//! (succeeded, failed, timed out, canceled), and recorded before the
//! terminal state, so that a job seen as ended has its artifacts complete.
//! A missing path is noted in the job and does not change its outcome.
//!
//! Paths under `/tmp`, a tmpfs that goes with the stopped container, are
//! read from the copy the shim made at the command's end ([`crate::shim`]).

use jobs_blobs::{PutChecks, PutError, artifact_key};
use jobs_core::wire::Artifact;
use jobs_store::Fence;

use crate::{runtime::DownloadError, worker::WorkerContext};

/// Collects each of `paths` from the container and records the result,
/// fenced. A path that cannot be collected gets an `error` and no object.
pub async fn collect_artifacts(
    context: &WorkerContext,
    fence: &Fence,
    paths: &[String],
    container_id: &str,
) {
    if paths.is_empty() {
        return;
    }
    // Under the shim, what lived on the /tmp tmpfs was copied where the
    // stopped container's archive can be read.
    let shim = context
        .runtime
        .has_shim(container_id)
        .await
        .unwrap_or(false);
    let copies: std::collections::HashMap<usize, String> = crate::shim::tmpfs_artifacts(paths)
        .into_iter()
        .enumerate()
        .map(|(n, (index, path))| (index, crate::shim::artifact_copy(n, path)))
        .collect();
    let mut artifacts = Vec::with_capacity(paths.len());
    for (index, path) in paths.iter().enumerate() {
        let source = copies
            .get(&index)
            .filter(|_| shim)
            .map_or(path.as_str(), String::as_str);
        let artifact = collect_one(context, &fence.job_id, index, path, source, container_id).await;
        match &artifact.error {
            None => {
                tracing::info!(job_id = fence.job_id, path, size = ?artifact.size, "artifact collected")
            }
            Some(error) => {
                tracing::info!(job_id = fence.job_id, path, error, "artifact not collected")
            }
        }
        artifacts.push(artifact);
    }
    let recorded = crate::attempt::retry_until_ok("recording the artifacts", || {
        context.store.record_artifacts(fence, &artifacts)
    })
    .await;
    if !recorded {
        tracing::warn!(
            job_id = fence.job_id,
            "the job's fence moved on; its artifacts were not recorded"
        );
    }
}

async fn collect_one(
    context: &WorkerContext,
    job_id: &str,
    index: usize,
    path: &str,
    source: &str,
    container_id: &str,
) -> Artifact {
    let failed = |error: String| Artifact {
        path: path.to_owned(),
        size: None,
        error: Some(error),
    };
    let archive = match context.runtime.download_archive(container_id, source).await {
        Ok(archive) => archive,
        Err(DownloadError::Missing) => return failed("no such file or directory".to_owned()),
        Err(DownloadError::Other(error)) => {
            return failed(format!("reading it from the container failed: {error}"));
        }
    };
    let checks = PutChecks {
        max_bytes: Some(context.config.max_artifact_bytes),
        expected_sha256: None,
    };
    let key = artifact_key(job_id, index);
    match context.blobs.put_stream(&key, archive, &checks).await {
        Ok(stored) => Artifact {
            path: path.to_owned(),
            size: Some(i64::try_from(stored.size).unwrap_or(i64::MAX)),
            error: None,
        },
        Err(PutError::TooLarge { limit }) => failed(format!(
            "its archive is larger than {}: not kept",
            jobs_core::spec::describe_bytes(limit)
        )),
        Err(error) => failed(format!("storing it failed: {error}")),
    }
}
