//! The uploads' volume, read-only to the job and filled from outside it.
//!
//! A job's container mounts a volume of its own read-only at
//! `/tmp/uploads` (named `jobs-uploads-` and the container's name, since
//! Docker mounts only named volumes read-only), so that no job, root or
//! not, can change or add a file there. Docker's archive API refuses to
//! write into a read-only mount, so the files go in through a *loader*: a
//! container that is never started, made of the job's own image, with the
//! same volume writable at [`LOADER_DIR`]. It is removed once the files are
//! in, which also works while the job's container runs (a warm container's
//! uploads arrive then).
//!
//! Removing a container removes the uploads' volume it mounts unless
//! another still does (Docker answers 409): the job's container and its
//! loader may go in either order, as when a job is canceled during its
//! uploads. A volume left by a crash carries the worker's label, and the
//! next start removes it once no container holds it.

use std::collections::HashMap;

use anyhow::Context;
use bollard::{
    errors::Error as DockerError,
    models::{ContainerCreateBody, HostConfig, Mount, MountType, MountVolumeOptions},
    query_parameters::{
        CreateContainerOptionsBuilder, ListVolumesOptionsBuilder, RemoveVolumeOptions,
    },
};
use jobs_core::spec::UPLOADS_DIR;

use super::{ContainerSpec, LABEL_WORKER_ID, Runtime};

/// Where a loader sees the uploads' volume.
pub const LOADER_DIR: &str = "/uploads";
/// Set on a loader, beside the worker's label.
pub const LABEL_LOADER: &str = "jobs.uploads_loader";
/// What the name of every uploads' volume starts with.
const VOLUME_PREFIX: &str = "jobs-uploads-";

/// Whether `name` is an uploads' volume.
pub fn is_uploads_volume(name: &str) -> bool {
    name.starts_with(VOLUME_PREFIX)
}

/// A container, never started, through which a job's uploads are written.
#[derive(Debug)]
pub struct UploadsLoader {
    pub id: String,
}

/// The job's mount of its uploads' volume: read-only, created with the
/// container, labelled with the worker so that a crash's leftover is found.
pub(super) fn uploads_mount(spec: &ContainerSpec) -> Mount {
    let labels = spec
        .labels
        .get(LABEL_WORKER_ID)
        .map(|worker| HashMap::from([(LABEL_WORKER_ID.to_owned(), worker.clone())]));
    Mount {
        target: Some(UPLOADS_DIR.to_owned()),
        source: Some(format!("{VOLUME_PREFIX}{}", spec.name)),
        typ: Some(MountType::VOLUME),
        read_only: Some(true),
        volume_options: Some(MountVolumeOptions {
            labels,
            ..Default::default()
        }),
        ..Default::default()
    }
}

impl Runtime {
    /// Makes the loader of `container_id`'s uploads' volume.
    pub async fn uploads_loader(&self, container_id: &str) -> anyhow::Result<UploadsLoader> {
        let inspected = self
            .docker
            .inspect_container(container_id, None)
            .await
            .context("inspecting the job's container")?;
        let volume = inspected
            .mounts
            .unwrap_or_default()
            .into_iter()
            .find(|mount| mount.destination.as_deref() == Some(UPLOADS_DIR))
            .and_then(|mount| mount.name)
            .context("the container has no uploads volume")?;
        let image = inspected.image.context("the container has no image")?;
        let mut labels = HashMap::from([(LABEL_LOADER.to_owned(), "1".to_owned())]);
        if let Some(worker) = inspected
            .config
            .and_then(|config| config.labels)
            .and_then(|mut labels| labels.remove(LABEL_WORKER_ID))
        {
            labels.insert(LABEL_WORKER_ID.to_owned(), worker);
        }
        let body = ContainerCreateBody {
            image: Some(image),
            // Never run: any command will do, for images that have none.
            entrypoint: Some(vec!["/never-started".to_owned()]),
            cmd: Some(Vec::new()),
            network_disabled: Some(true),
            labels: Some(labels),
            host_config: Some(HostConfig {
                network_mode: Some("none".to_owned()),
                mounts: Some(vec![loader_mount(&volume)]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default()
            .name(&format!(
                "jobs-uploads-loader-{}",
                uuid::Uuid::now_v7().simple()
            ))
            .build();
        let id = self
            .docker
            .create_container(Some(options), body)
            .await
            .context("creating the uploads' loader")?
            .id;
        Ok(UploadsLoader { id })
    }

    /// Removes the loader, and the volume too if its job's container is
    /// already gone.
    pub async fn remove_uploads_loader(&self, loader: UploadsLoader) -> anyhow::Result<()> {
        self.remove(&loader.id).await
    }

    /// Removes an uploads' volume, unless a container still holds it.
    pub(super) async fn remove_uploads_volume(&self, volume: &str) -> anyhow::Result<()> {
        match self
            .docker
            .remove_volume(volume, None::<RemoveVolumeOptions>)
            .await
        {
            Ok(())
            | Err(DockerError::DockerResponseServerError {
                status_code: 404 | 409,
                ..
            }) => Ok(()),
            Err(error) => Err(error).context("removing the uploads' volume"),
        }
    }

    /// Removes every uploads' volume of `worker_id` that no container
    /// holds: those a crash left between a container's removal and its
    /// volume's. Volumes are only made with their container, so none is
    /// ever unheld before it is used; one still held answers 409 and stays.
    pub async fn remove_leftover_uploads_volumes(&self, worker_id: &str) -> anyhow::Result<()> {
        let filters = HashMap::from([(
            "label".to_owned(),
            vec![format!("{LABEL_WORKER_ID}={worker_id}")],
        )]);
        let options = ListVolumesOptionsBuilder::default()
            .filters(&filters)
            .build();
        let listed = self
            .docker
            .list_volumes(Some(options))
            .await
            .context("listing the uploads' volumes")?;
        for volume in listed.volumes.unwrap_or_default() {
            if volume.name.starts_with(VOLUME_PREFIX) {
                self.remove_uploads_volume(&volume.name).await?;
            }
        }
        Ok(())
    }
}

/// The uploads' volume, by its name, writable.
fn loader_mount(volume: &str) -> Mount {
    Mount {
        target: Some(LOADER_DIR.to_owned()),
        source: Some(volume.to_owned()),
        typ: Some(MountType::VOLUME),
        read_only: Some(false),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loader_writes_the_volume_by_its_name() {
        let mount = loader_mount("jobs-uploads-x");
        assert_eq!(mount.source.as_deref(), Some("jobs-uploads-x"));
        assert_eq!(mount.target.as_deref(), Some(LOADER_DIR));
        assert_eq!(mount.read_only, Some(false));
    }
}
