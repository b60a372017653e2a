//! What a container may write on the host's disk, and what it wrote: its
//! `/.jobs` (the shim's volumes, [`super::shim_volume`]) and its own
//! writable layer (everything outside `/tmp` and its volumes), whose limit
//! is its size's `disk_bytes`, carried in a label so that a worker taking
//! the container over knows it too.

use bollard::query_parameters::InspectContainerOptionsBuilder;
use jobs_core::Size;

use super::Runtime;

/// On a job container: its size (`S`…`XL`).
pub const LABEL_SIZE: &str = "jobs.size";
/// On a job container: the most bytes its writable layer may hold.
pub const LABEL_DISK_LIMIT: &str = "jobs.disk_limit";

/// The caps of one container; none for one made by an older worker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskCaps {
    /// Of what `/.jobs/log` and `/.jobs/art` hold.
    pub jobs_dir: Option<u64>,
    /// Of its writable layer.
    pub layer: Option<u64>,
    /// The job's size, for the reason.
    pub size: Option<Size>,
}

impl Runtime {
    /// The caps of `id`, from its mounts, memory and labels.
    pub async fn disk_caps_of(&self, id: &str) -> anyhow::Result<DiskCaps> {
        let inspected = self.docker.inspect_container(id, None).await?;
        let labels = inspected
            .config
            .as_ref()
            .and_then(|config| config.labels.clone())
            .unwrap_or_default();
        Ok(DiskCaps {
            jobs_dir: super::shim_volume::jobs_dir_cap_of(&inspected),
            layer: labels
                .get(LABEL_DISK_LIMIT)
                .and_then(|limit| limit.parse().ok()),
            size: labels.get(LABEL_SIZE).and_then(|size| size.parse().ok()),
        })
    }

    /// What `id`'s writable layer holds (Docker's `SizeRw`), in bytes.
    pub async fn writable_layer_size(&self, id: &str) -> anyhow::Result<Option<u64>> {
        let options = InspectContainerOptionsBuilder::default().size(true).build();
        let inspected = self.docker.inspect_container(id, Some(options)).await?;
        Ok(inspected
            .size_rw
            .and_then(|bytes| u64::try_from(bytes).ok()))
    }
}
