//! Warm containers: created and started before any job needs them, with
//! the shim waiting in them (`shim wait`), blocked on reading its stdin. A
//! job takes one instead of creating and starting its own: the container
//! is renamed after the job, and the job's command line and env are
//! written to its stdin ([`crate::shim::spec_message`]), which sets the
//! shim going. From there on it is the job's container, run, followed,
//! taken over and removed as any other under the shim.

use bollard::query_parameters::RenameContainerOptionsBuilder;
use tokio::io::AsyncWriteExt;

use super::{ContainerInput, ContainerSpec, Runtime, StartError};

/// The name of a job's container, cold or warm: how a warm container,
/// whose labels were fixed before it had a job, is found by its job.
pub fn container_name(job_id: &str, attempt: i32) -> String {
    format!("jobs-{job_id}-{attempt}")
}

/// The job and attempt a warm container's name says it was given to, if
/// any (`/jobs-ID-ATTEMPT`, as Docker lists names; a warm container no job
/// took is `jobs-warm-…`).
pub fn job_of_name(name: &str) -> Option<(String, i32)> {
    let rest = name.trim_start_matches('/').strip_prefix("jobs-")?;
    if rest.starts_with("warm-") {
        return None;
    }
    let (job_id, attempt) = rest.rsplit_once('-')?;
    Some((job_id.to_owned(), attempt.parse().ok()?))
}

/// The image's own entrypoint and command, which a job's command replaces
/// the second of, as `docker run IMAGE CMD…` does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageCommand {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
}

impl ImageCommand {
    /// The entrypoint and command of an image's config.
    pub fn of(config: &bollard::models::ImageConfig) -> Self {
        Self {
            entrypoint: config.entrypoint.clone().unwrap_or_default(),
            cmd: config.cmd.clone().unwrap_or_default(),
        }
    }

    /// The command line that runs `command` (or, if it is empty, the
    /// image's own command) in this image.
    pub fn with(&self, command: &[String]) -> Vec<String> {
        let mut line = self.entrypoint.clone();
        if command.is_empty() {
            line.extend(self.cmd.iter().cloned());
        } else {
            line.extend(command.iter().cloned());
        }
        line
    }
}

/// A started warm container no job has taken yet.
#[derive(Debug, Clone)]
pub struct WarmContainer {
    pub id: String,
    /// The image's id when it was made: a tag moved since makes it stale.
    pub image_id: String,
    pub image_command: ImageCommand,
}

impl Runtime {
    /// The image's id and its own command line.
    pub async fn inspect_image_command(
        &self,
        image: &str,
    ) -> Result<(String, ImageCommand), StartError> {
        let inspected = self
            .docker
            .inspect_image(image)
            .await
            .map_err(|error| StartError::Other(error.to_string()))?;
        Ok((
            inspected.id.unwrap_or_default(),
            ImageCommand::of(&inspected.config.unwrap_or_default()),
        ))
    }

    pub(super) async fn image_command(&self, image: &str) -> Result<ImageCommand, StartError> {
        Ok(self.inspect_image_command(image).await?.1)
    }

    /// Creates and starts a warm container for jobs that would be created
    /// from `template` (its image, limits and hardening; its command, env,
    /// name and labels other than the worker's are not used).
    pub async fn create_warm(&self, template: &ContainerSpec) -> Result<WarmContainer, StartError> {
        let inspected = self.ensure_image(&template.image).await?;
        let image_id = inspected.id.clone().unwrap_or_default();
        let image_command = ImageCommand::of(&inspected.config.unwrap_or_default());
        let spec = ContainerSpec {
            name: format!("jobs-warm-{}", uuid::Uuid::now_v7().simple()),
            command: Vec::new(),
            env: Vec::new(),
            interactive: None,
            uploads: true,
            shim: Some(Vec::new()),
            warm: true,
            ..template.clone()
        };
        let id = self.create(&spec).await?;
        if let Err(error) = self.start(&id, &[]).await {
            let _ = self.remove(&id).await;
            return Err(error);
        }
        Ok(WarmContainer {
            id,
            image_id,
            image_command,
        })
    }

    /// Gives a warm container to the job `spec` describes: it takes the
    /// job's container name, by which a restarted worker finds its job.
    /// Returns the job's spec for [`send_spec`], which runs it.
    pub async fn bind_warm(
        &self,
        warm: &WarmContainer,
        spec: &ContainerSpec,
    ) -> anyhow::Result<Vec<u8>> {
        let artifacts = spec.shim.as_deref().unwrap_or_default();
        let message = crate::shim::spec_message(
            &spec.env,
            artifacts,
            spec.interactive,
            warm.image_command.with(&spec.command),
        )?;
        let options = RenameContainerOptionsBuilder::default()
            .name(&spec.name)
            .build();
        self.docker.rename_container(&warm.id, options).await?;
        Ok(message)
    }

    /// The own command line of the image a container was made from.
    pub async fn container_image_command(&self, id: &str) -> anyhow::Result<ImageCommand> {
        let inspected = self.docker.inspect_container(id, None).await?;
        let image = inspected
            .image
            .ok_or_else(|| anyhow::anyhow!("container {id} names no image"))?;
        let base = self.base_image_of(&image).await;
        Ok(self.image_command(&base).await?)
    }
}

/// Writes a job's spec to its warm container's stdin, which sets the shim
/// going. Sending it again does nothing: once it has its job, the shim
/// reads its stdin no more.
pub async fn send_spec(input: &mut ContainerInput, message: &[u8]) -> std::io::Result<()> {
    input.write_all(message).await?;
    input.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_warm_container_s_name_gives_its_job() {
        let name = format!("/{}", container_name("01a2b3", 2));
        assert_eq!(job_of_name(&name), Some(("01a2b3".to_owned(), 2)));
        assert_eq!(job_of_name("/jobs-warm-0196abc"), None);
        assert_eq!(job_of_name("/something-else"), None);
        assert_eq!(job_of_name("/jobs-01a2b3-x"), None);
    }

    #[test]
    fn a_job_s_command_replaces_the_image_s_and_keeps_its_entrypoint() {
        let image = ImageCommand {
            entrypoint: vec!["/entry".into()],
            cmd: vec!["serve".into()],
        };
        assert_eq!(image.with(&[]), ["/entry", "serve"]);
        assert_eq!(
            image.with(&["rake".into(), "x".into()]),
            ["/entry", "rake", "x"]
        );
    }
}
