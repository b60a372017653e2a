//! The shim's own volume, mounted read-only AT `/.jobs` in every container
//! under the shim, so that no job, root included, can change the file the
//! worker execs there (`shim cat` after a restart, `shim feed` for an
//! interactive run's stdin, `shim du` for the cap).
//!
//! A job runs as the same user as its shim, with the same (empty)
//! capabilities: file permissions cannot keep it from its shim. A read-only
//! mount can, when the path the worker execs through is the mount point
//! itself: a directory that only *contains* a mount point can be renamed
//! away (`mv /.jobs /x`, the mount goes along) and replaced, while a mount
//! point cannot be renamed or removed (`EBUSY`), written, nor unmounted or
//! remounted without `CAP_SYS_ADMIN`, which no job gets.
//!
//! The volume is named after the shim's hash (`jobs-shim-HASH`), holds only
//! the shim binary (mode `0111`: executable, not readable, so that the
//! kernel makes every shim process undumpable and a job cannot ptrace it)
//! and the empty mount points `log` and `art`, and is shared by every job:
//! it holds nothing of any job's. Docker's archive API refuses to write
//! into a read-only mount, so it is filled once, as the uploads' volume is,
//! through a *loader*: a container of the job's image that is never
//! started, with the volume writable. The worker checks its content, byte
//! for byte, the first time it needs it.
//!
//! Below it, the shim's writable directories `/.jobs/log` and `/.jobs/art`
//! are anonymous volumes of the container's own (mount points, too),
//! removed with it; Docker gives each the mode of the image's directory
//! ([`super::shim_image`]: `0777`, for any `--user`). What a job can write
//! there is measured while it runs ([`Runtime::measure_jobs_dir`]).

use std::collections::HashMap;

use anyhow::Context;
use bollard::{
    models::{ContainerCreateBody, HostConfig, Mount, MountType, MountVolumeOptions},
    query_parameters::{CreateContainerOptionsBuilder, RemoveVolumeOptions},
};
use tokio::io::AsyncReadExt;

use super::{LABEL_WORKER_ID, Runtime, StartError, shim_image::SHIM_HASH};
use crate::shim;

/// Set on the shim's volume: the shim's hash.
pub const LABEL_SHIM_VOLUME: &str = "jobs.shim_volume";
/// What the name of every shim volume starts with.
const VOLUME_PREFIX: &str = "jobs-shim-";
/// Where the loader sees the shim's volume.
const LOADER_DIR: &str = "/shim-volume";

/// The ring's most: its 4 segments of 16 MiB (`shim.c`).
const RING_BYTES: u64 = 4 * 16 * 1024 * 1024;
/// Room for the shim's small files (status, exit, done, the socket).
const SLACK_BYTES: u64 = 16 * 1024 * 1024;
/// How long `shim du` may take before its silence counts against the job.
const MEASURE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The cap of `/.jobs` of an inspected container: `None` for one without
/// the shim's volume (an older worker's).
pub(super) fn jobs_dir_cap_of(
    inspected: &bollard::models::ContainerInspectResponse,
) -> Option<u64> {
    let capped = inspected.mounts.iter().flatten().any(|mount| {
        mount.destination.as_deref() == Some(shim::DIR)
            && mount
                .name
                .as_deref()
                .is_some_and(|name| name.starts_with(VOLUME_PREFIX))
    });
    if !capped {
        return None;
    }
    let memory = inspected
        .host_config
        .as_ref()
        .and_then(|config| config.memory)
        .filter(|memory| *memory > 0)
        .unwrap_or(super::TMP_MAX_BYTES);
    let tmp = memory.min(super::TMP_MAX_BYTES) as u64;
    Some(jobs_dir_cap(tmp))
}

/// What a container's `/.jobs/log` and `/.jobs/art` may hold together:
/// what the shim writes there, its ring and the copy of the artifacts
/// under `/tmp` (at most `/tmp`'s size, `tmp_bytes`), and some slack.
pub fn jobs_dir_cap(tmp_bytes: u64) -> u64 {
    RING_BYTES + tmp_bytes + SLACK_BYTES
}

/// What measuring a container's `/.jobs` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Measure {
    /// It holds this many bytes.
    Size(u64),
    /// The measure ran in the container and gave no size (an entry it
    /// cannot read, a measure the job killed or stopped, a full pids
    /// limit): the job's doing, said why.
    Refused(String),
}

/// This shim's volume.
pub fn volume_name() -> String {
    format!("{VOLUME_PREFIX}{}", *SHIM_HASH)
}

/// The mounts of a container under the shim: the shim's volume read-only
/// at `/.jobs`, and a writable anonymous volume of its own at each of the
/// shim's directories.
pub(super) fn shim_mounts() -> Vec<Mount> {
    let mut mounts = vec![Mount {
        target: Some(shim::DIR.to_owned()),
        source: Some(volume_name()),
        typ: Some(MountType::VOLUME),
        read_only: Some(true),
        // Filled by the loader only, never from an image.
        volume_options: Some(MountVolumeOptions {
            no_copy: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    }];
    for dir in [shim::LOG_DIR, shim::ART_DIR] {
        mounts.push(Mount {
            target: Some(dir.to_owned()),
            typ: Some(MountType::VOLUME),
            read_only: Some(false),
            ..Default::default()
        });
    }
    mounts
}

/// What the shim's volume holds, as a tar archive for its root.
fn volume_archive() -> bytes::Bytes {
    let mut builder = tar::Builder::new(Vec::with_capacity(shim::BINARY.len() + 4096));
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
    add("log", 0o755, &[], tar::EntryType::Directory);
    add("art", 0o755, &[], tar::EntryType::Directory);
    add("shim", 0o111, shim::BINARY, tar::EntryType::Regular);
    bytes::Bytes::from(builder.into_inner().expect("an in-memory tar"))
}

impl Runtime {
    /// Makes sure this shim's volume exists and holds this shim, filling
    /// it through a loader of `spec`'s image if it does not. Checked byte
    /// for byte once per process, and for its existence every time (an
    /// operator may have removed it: Docker would then make an empty one).
    pub(super) async fn ensure_shim_volume(
        &self,
        spec: &super::ContainerSpec,
    ) -> Result<(), StartError> {
        let mut checked = self.shim_volume_checked.lock().await;
        let name = volume_name();
        let exists = self.docker.inspect_volume(&name).await.is_ok();
        if *checked && exists {
            return Ok(());
        }
        self.fill_shim_volume(spec, &name).await.map_err(|error| {
            StartError::Other(format!("preparing the shim's volume: {error:#}"))
        })?;
        *checked = true;
        Ok(())
    }

    async fn fill_shim_volume(
        &self,
        spec: &super::ContainerSpec,
        name: &str,
    ) -> anyhow::Result<()> {
        let mut labels = HashMap::from([(LABEL_SHIM_VOLUME.to_owned(), SHIM_HASH.clone())]);
        self.docker
            .create_volume(bollard::models::VolumeCreateRequest {
                name: Some(name.to_owned()),
                labels: Some(labels.clone()),
                ..Default::default()
            })
            .await
            .context("creating the shim's volume")?;
        labels.insert(
            super::uploads_volume::LABEL_LOADER.to_owned(),
            "1".to_owned(),
        );
        if let Some(worker) = spec.labels.get(LABEL_WORKER_ID) {
            labels.insert(LABEL_WORKER_ID.to_owned(), worker.clone());
        }
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            entrypoint: Some(vec!["/never-started".to_owned()]),
            cmd: Some(Vec::new()),
            network_disabled: Some(true),
            labels: Some(labels),
            host_config: Some(HostConfig {
                network_mode: Some("none".to_owned()),
                mounts: Some(vec![Mount {
                    target: Some(LOADER_DIR.to_owned()),
                    source: Some(name.to_owned()),
                    typ: Some(MountType::VOLUME),
                    read_only: Some(false),
                    volume_options: Some(MountVolumeOptions {
                        no_copy: Some(true),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default()
            .name(&format!(
                "jobs-shim-loader-{}",
                uuid::Uuid::now_v7().simple()
            ))
            .build();
        let loader = self
            .docker
            .create_container(Some(options), body)
            .await
            .context("creating the shim's loader")?
            .id;
        let filled = async {
            if self.holds_this_shim(&loader).await {
                return anyhow::Ok(());
            }
            let archive = volume_archive();
            self.upload_archive(
                &loader,
                LOADER_DIR,
                futures::stream::once(async { Ok(archive) }),
            )
            .await
            .context("writing the shim into its volume")?;
            anyhow::ensure!(
                self.holds_this_shim(&loader).await,
                "the shim's volume does not hold the shim after it was written"
            );
            tracing::info!(volume = name, "filled the shim's volume");
            Ok(())
        }
        .await;
        let _ = self.remove_container_only(&loader).await;
        filled
    }

    /// Whether the shim in the volume, as the loader sees it, is this one.
    async fn holds_this_shim(&self, loader: &str) -> bool {
        let path = format!("{LOADER_DIR}/shim");
        let Ok(mut file) = self.read_file(loader, &path).await else {
            return false;
        };
        let mut found = Vec::with_capacity(shim::BINARY.len());
        let read = (&mut file)
            .take(shim::BINARY.len() as u64 + 1)
            .read_to_end(&mut found)
            .await;
        read.is_ok() && found == shim::BINARY
    }

    /// Measures what `id`'s `/.jobs/log` and `/.jobs/art` hold, with the
    /// shim's `du` (the real one: its volume is read-only). An error is
    /// the engine's, not the job's.
    pub async fn measure_jobs_dir(&self, id: &str) -> anyhow::Result<Measure> {
        use futures::StreamExt;
        let mut output = self
            .exec_output(id, vec![shim::PATH.to_owned(), "du".to_owned()])
            .await?;
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let read = tokio::time::timeout(MEASURE_TIMEOUT, async {
            while let Some(item) = output.next().await {
                match item {
                    Ok(bollard::container::LogOutput::StdOut { message }) => {
                        stdout.extend_from_slice(&message)
                    }
                    Ok(other) => stderr.extend_from_slice(&other.into_bytes()),
                    Err(error) => return Err(error),
                }
                if stdout.len() + stderr.len() > 4096 {
                    break;
                }
            }
            Ok(())
        })
        .await;
        match read {
            Err(_) => {
                return Ok(Measure::Refused(format!(
                    "no answer in {}s",
                    MEASURE_TIMEOUT.as_secs()
                )));
            }
            Ok(Err(error)) => return Err(error.into()),
            Ok(Ok(())) => {}
        }
        let text = String::from_utf8_lossy(&stdout);
        Ok(match text.trim().parse() {
            Ok(size) if text.ends_with('\n') => Measure::Size(size),
            _ => Measure::Refused(
                String::from_utf8_lossy(&stderr[..stderr.len().min(200)])
                    .trim()
                    .to_owned(),
            ),
        })
    }

    /// Removes the volumes of older shims; those still mounted stay
    /// (Docker refuses).
    pub async fn remove_stale_shim_volumes(&self) {
        let filters = HashMap::from([("label".to_owned(), vec![LABEL_SHIM_VOLUME.to_owned()])]);
        let options = bollard::query_parameters::ListVolumesOptionsBuilder::default()
            .filters(&filters)
            .build();
        let Ok(listed) = self.docker.list_volumes(Some(options)).await else {
            return;
        };
        let current = volume_name();
        for volume in listed.volumes.unwrap_or_default() {
            if volume.name == current || !volume.name.starts_with(VOLUME_PREFIX) {
                continue;
            }
            match self
                .docker
                .remove_volume(&volume.name, None::<RemoveVolumeOptions>)
                .await
            {
                Ok(()) => tracing::info!(volume = volume.name, "removed an older shim's volume"),
                Err(error) => {
                    tracing::debug!(volume = volume.name, %error, "an older shim's volume stays")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shim_s_volume_is_read_only_at_jobs_and_its_directories_are_the_container_s() {
        let mounts = shim_mounts();
        let seen: Vec<_> = mounts
            .iter()
            .map(|mount| {
                (
                    mount.target.as_deref().unwrap(),
                    mount.source.as_deref(),
                    mount.read_only,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("/.jobs", Some(volume_name().as_str()), Some(true)),
                ("/.jobs/log", None, Some(false)),
                ("/.jobs/art", None, Some(false)),
            ]
        );
        assert!(
            mounts
                .iter()
                .all(|mount| mount.typ == Some(MountType::VOLUME))
        );
        assert_eq!(volume_name(), format!("jobs-shim-{}", *SHIM_HASH));
    }

    #[test]
    fn the_cap_is_the_ring_the_tmp_copy_and_slack() {
        assert_eq!(jobs_dir_cap(512 << 20), (64 + 512 + 16) << 20);
    }

    #[test]
    fn the_volume_holds_the_shim_unreadable_and_the_mount_points() {
        let archive = volume_archive();
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
            found,
            [
                ("log".into(), 0o755, 0),
                ("art".into(), 0o755, 0),
                ("shim".into(), 0o111, shim::BINARY.len() as u64),
            ]
        );
    }
}
