//! The shim baked into an image. For each app image (by its id), the
//! worker commits once an image of its own with `/.jobs` (the
//! directories it writes, not the shim itself, which comes in its
//! read-only volume: [`super::shim_volume`]) on top: `jobs-shim:BASE-SHIM`,
//! named after the app image's id and the shim's own hash. A queued job's
//! container is created from it, so nothing has to be put into the
//! container before its start (Docker's archive API costs tens of
//! milliseconds a call). The image makes `/.jobs` a directory whatever the
//! app image holds there, and Docker gives the volumes mounted at
//! `/.jobs/log` and `/.jobs/art` the mode of its directories.
//!
//! The image keeps the app image's config (env, user, working directory,
//! entrypoint and command) and says which image it was made from
//! ([`LABEL_BASE_IMAGE`]); a job's command line is still built from the app
//! image's own entrypoint and command.

use std::{collections::HashMap, sync::LazyLock};

use bollard::{
    models::{ContainerConfig, ContainerCreateBody, ImageInspect},
    query_parameters::{
        CommitContainerOptionsBuilder, CreateContainerOptionsBuilder, ListImagesOptionsBuilder,
        RemoveImageOptionsBuilder,
    },
};
use sha2::{Digest, Sha256};

use super::{Runtime, StartError, warm::ImageCommand};

/// The repository of the images with the shim.
pub const SHIM_IMAGE_REPO: &str = "jobs-shim";
/// On an image with the shim: the id of the app image it was made from.
pub const LABEL_BASE_IMAGE: &str = "jobs.base-image";

/// What the image with the shim holds, and where: a new layout gets a new
/// version, so that workers of two versions on one host never take each
/// other's images, even with the same shim binary.
const SHIM_IMAGE_LAYOUT: &[u8] = b"layout 2: /.jobs, log and art only; the shim in its volume";

/// The first 12 hex digits of the SHA-256 of the shim binary and the
/// image's layout: a worker with another shim, or another layout, makes
/// images of its own.
pub(super) static SHIM_HASH: LazyLock<String> = LazyLock::new(|| {
    Sha256::new()
        .chain_update(crate::shim::BINARY)
        .chain_update(SHIM_IMAGE_LAYOUT)
        .finalize()
        .iter()
        .take(6)
        .map(|byte| format!("{byte:02x}"))
        .collect()
});

/// An app image's image with the shim, and the app image's own command
/// line.
#[derive(Debug, Clone)]
pub struct ShimImage {
    pub reference: String,
    pub command: ImageCommand,
}

/// The images with the shim this worker made or found, by app image id.
#[derive(Default)]
pub struct ShimImages {
    known: tokio::sync::Mutex<HashMap<String, ShimImage>>,
}

/// The image's tag for an app image id (`sha256:…`) and this shim.
fn shim_tag(base_id: &str) -> String {
    let digits = base_id.trim_start_matches("sha256:");
    format!("{}-{}", &digits[..digits.len().min(16)], *SHIM_HASH)
}

impl Runtime {
    /// The image with the shim for `image`, which is on this host as
    /// `inspected`; made the first time, then known.
    pub(super) async fn shim_image(
        &self,
        image: &str,
        inspected: &ImageInspect,
    ) -> Result<ShimImage, StartError> {
        let base_id = inspected.id.clone().unwrap_or_default();
        let config = inspected.config.clone().unwrap_or_default();
        let command = ImageCommand::of(&config);
        // One at a time: two jobs of a new image make it once.
        let mut known = self.shim_images.known.lock().await;
        if let Some(found) = known.get(&base_id) {
            return Ok(found.clone());
        }
        let tag = shim_tag(&base_id);
        let reference = format!("{SHIM_IMAGE_REPO}:{tag}");
        if self.docker.inspect_image(&reference).await.is_err() {
            let config = serde_json::to_value(config)
                .and_then(serde_json::from_value::<ContainerConfig>)
                .map_err(|error| StartError::Other(error.to_string()))?;
            self.commit_shim_image(image, &base_id, config, &tag)
                .await
                .map_err(|error| {
                    StartError::Other(format!("making the image with the shim failed: {error}"))
                })?;
            tracing::info!(
                image,
                shim_image = reference,
                "made the image with the shim"
            );
        }
        let made = ShimImage { reference, command };
        known.insert(base_id, made.clone());
        Ok(made)
    }

    /// Forgets the image with the shim of `inspected`, so that the next
    /// container of it looks for it again.
    pub(super) async fn forget_shim_image(&self, inspected: &ImageInspect) {
        let base_id = inspected.id.as_deref().unwrap_or_default();
        self.shim_images.known.lock().await.remove(base_id);
    }

    /// Puts `/.jobs` into a container of `image` that is never started,
    /// and commits it as `jobs-shim:TAG` with the image's own `config`.
    async fn commit_shim_image(
        &self,
        image: &str,
        base_id: &str,
        mut config: ContainerConfig,
        tag: &str,
    ) -> anyhow::Result<()> {
        let body = ContainerCreateBody {
            image: Some(image.to_owned()),
            entrypoint: Some(vec![crate::shim::PATH.to_owned()]),
            cmd: Some(Vec::new()),
            network_disabled: Some(true),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default()
            .name(&format!(
                "jobs-shim-build-{}",
                uuid::Uuid::now_v7().simple()
            ))
            .build();
        let id = self.docker.create_container(Some(options), body).await?.id;
        let committed = async {
            let archive = crate::shim::archive();
            self.upload_archive(&id, "/", futures::stream::once(async { Ok(archive) }))
                .await?;
            // Empty, not absent: Docker fills absent ones from the
            // container's own config, whose entrypoint is the shim's.
            config.entrypoint = Some(config.entrypoint.take().unwrap_or_default());
            config.cmd = Some(config.cmd.take().unwrap_or_default());
            config
                .labels
                .get_or_insert_with(HashMap::new)
                .insert(LABEL_BASE_IMAGE.to_owned(), base_id.to_owned());
            let options = CommitContainerOptionsBuilder::default()
                .container(&id)
                .repo(SHIM_IMAGE_REPO)
                .tag(tag)
                .pause(false)
                .build();
            self.docker.commit_container(options, config).await?;
            anyhow::Ok(())
        }
        .await;
        let _ = self.remove(&id).await;
        committed
    }

    /// The app image a container's image with the shim was made from, or
    /// the container's image itself.
    pub(super) async fn base_image_of(&self, image: &str) -> String {
        match self.docker.inspect_image(image).await {
            Ok(inspected) => inspected
                .config
                .and_then(|config| config.labels)
                .and_then(|labels| labels.get(LABEL_BASE_IMAGE).cloned())
                .unwrap_or_else(|| image.to_owned()),
            Err(_) => image.to_owned(),
        }
    }

    /// Removes the images with the shim that an older shim made; those in
    /// use by a container stay (Docker refuses).
    pub async fn remove_stale_shim_images(&self) {
        let filters =
            HashMap::from([("reference".to_owned(), vec![format!("{SHIM_IMAGE_REPO}:*")])]);
        let options = ListImagesOptionsBuilder::default()
            .filters(&filters)
            .build();
        let Ok(images) = self.docker.list_images(Some(options)).await else {
            return;
        };
        let suffix = format!("-{}", *SHIM_HASH);
        for tag in images.iter().flat_map(|image| image.repo_tags.iter()) {
            if tag.starts_with(&format!("{SHIM_IMAGE_REPO}:")) && !tag.ends_with(&suffix) {
                let options = RemoveImageOptionsBuilder::default().build();
                match self.docker.remove_image(tag, Some(options), None).await {
                    Ok(_) => tracing::info!(image = tag, "removed an image of an older shim"),
                    Err(error) => {
                        tracing::debug!(image = tag, %error, "an image of an older shim stays")
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shim_image_is_named_after_its_base_image_and_the_shim() {
        let tag = shim_tag("sha256:0123456789abcdef0123456789abcdef");
        assert_eq!(tag, format!("0123456789abcdef-{}", *SHIM_HASH));
        assert_eq!(SHIM_HASH.len(), 12);
    }
}
