//! The container runtime: Docker, the only home of bollard in the project.
//!
//! The rest of the worker speaks in [`ContainerSpec`], [`ContainerExit`] and
//! [`StartError`], never in Docker's types.

use std::{collections::HashMap, time::Duration};

use bollard::{
    Docker,
    container::LogOutput,
    errors::Error as DockerError,
    models::{ContainerCreateBody, HostConfig, HostConfigCgroupnsModeEnum, ImageInspect, Mount},
    query_parameters::{
        AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, CreateImageOptionsBuilder,
        DownloadFromContainerOptionsBuilder, ListContainersOptionsBuilder,
        RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
        UploadToContainerOptionsBuilder, WaitContainerOptions,
    },
};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use jobs_core::{hardening::Hardening, size::SizeLimits};

pub const LABEL_JOB_ID: &str = "jobs.job_id";
pub const LABEL_ATTEMPT: &str = "jobs.attempt";
pub const LABEL_WORKER_ID: &str = "jobs.worker_id";
/// Set on a container that runs under the shim ([`crate::shim`]).
pub const LABEL_SHIM: &str = "jobs.shim";
/// Set on a warm container ([`warm`]): its job is known by its name, given
/// when the job takes it, since labels cannot change.
pub const LABEL_WARM: &str = "jobs.warm";

pub mod app_network;
pub mod disk;
pub mod shim_image;
pub mod shim_volume;
pub mod uploads_volume;
pub mod warm;

/// What to do when the image is not on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PullPolicy {
    /// Pull it from its registry.
    Missing,
    /// Fail the job with `image not found`.
    Never,
}

/// Everything needed to create one job's container.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub command: Vec<String>,
    pub env: Vec<(String, String)>,
    pub labels: HashMap<String, String>,
    pub limits: SizeLimits,
    /// The app's capability allow-list, user, read-only root and network.
    pub hardening: Hardening,
    /// Docker's network mode: `none`, or the app's network
    /// ([`app_network::network_mode`]), made before the container.
    pub network: String,
    /// For an interactive run: its stdin comes through the shim, at a
    /// terminal (the shim's pty) if asked.
    pub interactive: Option<jobs_core::wire::Interactive>,
    /// Whether the job has uploads: they get a volume of their own at
    /// `/tmp/uploads` (see [`uploads_mount`]).
    pub uploads: bool,
    /// Whether the command runs under the shim, which keeps a copy of its
    /// output and of these artifact paths under `/tmp` ([`crate::shim`]).
    pub shim: Option<Vec<String>>,
    /// A warm container ([`warm`]): the shim waits in it for a job on its
    /// stdin, and `/tmp/uploads` is a volume, since a job's uploads are put
    /// into it while it runs.
    pub warm: bool,
}

/// How a container ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainerExit {
    pub exit_code: i64,
    pub oom_killed: bool,
    /// Whether the engine went away while the container was waited for
    /// (a restart of dockerd): its attach stream may have missed the end.
    pub engine_lost: bool,
}

/// Why a container's end can never be known.
#[derive(Debug, thiserror::Error)]
pub enum EngineLost {
    #[error("its container is gone from the Docker engine")]
    ContainerGone,
    #[error("the Docker engine stayed unreachable for {}", humantime::format_duration(*.0))]
    Unreachable(Duration),
}

/// How long a wait rides out an unreachable Docker engine (a restart of
/// dockerd) before the job is given up as lost.
pub const DEFAULT_ENGINE_GRACE: Duration = Duration::from_secs(300);

/// Why a container could not be created or started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("image not found: {0}")]
    ImageNotFound(String),
    #[error("command not found: {0}")]
    CommandNotFound(String),
    #[error("command not executable: {0}")]
    CommandNotExecutable(String),
    #[error("container start failed: {0}")]
    Other(String),
    /// The app's network went away between its check and the container's
    /// creation; [`Runtime::create`] makes it again.
    #[error("container start failed: {0}")]
    NetworkGone(String),
}

impl StartError {
    /// The exit code a shell would give for this failure, when there is one.
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            StartError::CommandNotFound(_) => Some(127),
            StartError::CommandNotExecutable(_) => Some(126),
            StartError::ImageNotFound(_) | StartError::Other(_) | StartError::NetworkGone(_) => {
                None
            }
        }
    }
}

/// A connection to one Docker engine.
#[derive(Clone)]
pub struct Runtime {
    docker: Docker,
    /// The same engine, for archive transfers into and out of containers,
    /// whose answer comes only once gigabytes have streamed through.
    archives: Docker,
    pull: PullPolicy,
    engine_grace: Duration,
    /// The images with the shim made or found so far ([`shim_image`]).
    shim_images: std::sync::Arc<shim_image::ShimImages>,
    /// The app networks known to exist ([`app_network`]).
    networks: std::sync::Arc<app_network::KnownNetworks>,
    /// The deployment's id, which scopes its app networks.
    deployment: String,
    /// Whether this process checked the shim's volume ([`shim_volume`]).
    shim_volume_checked: std::sync::Arc<tokio::sync::Mutex<bool>>,
}

/// The writing end of an interactive container's stdin.
pub type ContainerInput = std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>;
/// How long one archive transfer (an upload into a container, an artifact
/// out of one) may take before the engine's answer. bollard's default of
/// two minutes would cut a multi-gigabyte upload short.
pub const ARCHIVE_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

/// Why an archive could not be read out of a container.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The path does not exist in the container.
    #[error("no such file or directory")]
    Missing,
    #[error("{0}")]
    Other(String),
}

/// A container's demultiplexed output.
pub type OutputStream =
    std::pin::Pin<Box<dyn Stream<Item = Result<LogOutput, DockerError>> + Send>>;

impl Runtime {
    /// Connects to `host` (`unix://…` or `tcp://…`), or with Docker's
    /// defaults when it is `None`, and agrees on an API version the engine
    /// speaks.
    pub async fn connect(host: Option<&str>, pull: PullPolicy) -> anyhow::Result<Self> {
        use anyhow::Context;
        const TIMEOUT_SECONDS: u64 = 120;
        let connected = match host {
            None => Docker::connect_with_defaults(),
            Some(host) if host.starts_with("unix://") => {
                Docker::connect_with_unix(host, TIMEOUT_SECONDS, bollard::API_DEFAULT_VERSION)
            }
            Some(host) => {
                Docker::connect_with_http(host, TIMEOUT_SECONDS, bollard::API_DEFAULT_VERSION)
            }
        };
        let docker = connected
            .context("connecting to the Docker engine")?
            .negotiate_version()
            .await
            .context("negotiating the Docker API version")?;
        docker.ping().await.context("pinging the Docker engine")?;
        let archives = docker.clone().with_timeout(ARCHIVE_TIMEOUT);
        Ok(Self {
            docker,
            archives,
            pull,
            engine_grace: DEFAULT_ENGINE_GRACE,
            shim_images: Default::default(),
            networks: Default::default(),
            deployment: String::new(),
            shim_volume_checked: Default::default(),
        })
    }

    /// The deployment whose app networks this runtime makes and removes.
    pub fn with_deployment(mut self, deployment: &str) -> Self {
        self.deployment = deployment.to_owned();
        self
    }

    /// How long [`Runtime::wait`] rides out an unreachable engine.
    pub fn with_engine_grace(mut self, grace: Duration) -> Self {
        self.engine_grace = grace;
        self
    }

    /// Creates the container, without starting it; with the shim, from
    /// the image with the shim ([`shim_image`]).
    pub async fn create(&self, spec: &ContainerSpec) -> Result<String, StartError> {
        let inspected = self.ensure_image(&spec.image).await?;
        self.ensure_network(&spec.network).await?;
        match self.create_from(spec, &inspected).await {
            // Another worker of this engine removed the app's network with
            // the app's last container: it is made again.
            Err(StartError::NetworkGone(_)) => {
                self.forget_network(&spec.network);
                self.ensure_network(&spec.network).await?;
                self.create_from(spec, &inspected).await
            }
            // The image with the shim went away since it was made (an
            // operator pruned it): it is made again.
            Err(StartError::ImageNotFound(_)) if spec.shim.is_some() => {
                self.forget_shim_image(&inspected).await;
                self.create_from(spec, &inspected).await
            }
            created => created,
        }
    }

    /// [`Self::create`] of a spec whose image, on this host, is `inspected`.
    async fn create_from(
        &self,
        spec: &ContainerSpec,
        inspected: &ImageInspect,
    ) -> Result<String, StartError> {
        let host_config = host_config(spec);
        let mut labels = spec.labels.clone();
        labels.insert(
            disk::LABEL_DISK_LIMIT.to_owned(),
            spec.limits.disk_bytes.to_string(),
        );
        let (image, entrypoint, cmd) = match &spec.shim {
            None => (spec.image.clone(), None, spec.command.clone()),
            Some(artifacts) => {
                self.ensure_shim_volume(spec).await?;
                let shim_image = self.shim_image(&spec.image, inspected).await?;
                labels.insert(LABEL_SHIM.to_owned(), "1".to_owned());
                let line = if spec.warm {
                    labels.insert(LABEL_WARM.to_owned(), "1".to_owned());
                    crate::shim::wait_command_line()
                } else {
                    // The shim runs the image's entrypoint with the
                    // command, as Docker would have.
                    let command = shim_image.command.with(&spec.command);
                    crate::shim::command_line(artifacts, spec.interactive, command)
                };
                (shim_image.reference, Some(line), Vec::new())
            }
        };
        let body = ContainerCreateBody {
            image: Some(image),
            entrypoint,
            cmd: Some(cmd),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(labels),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            // A warm container's job arrives on its stdin (`shim wait`),
            // which stays open across attaches so that a worker taking it
            // over can send the job again. An interactive run's stdin
            // comes through its shim's socket instead, and its terminal is
            // the shim's (a pty of its own): Docker's is never used.
            attach_stdin: Some(spec.warm),
            tty: Some(false),
            open_stdin: Some(spec.warm),
            stdin_once: Some(false),
            // Empty means the image's own user.
            user: spec.hardening.user.clone(),
            host_config: Some(host_config),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default()
            .name(&spec.name)
            .build();
        let id = match self.docker.create_container(Some(options), body).await {
            Ok(created) => created.id,
            Err(DockerError::DockerResponseServerError {
                status_code: 404,
                message,
            }) if message.contains("network") => return Err(StartError::NetworkGone(message)),
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => return Err(StartError::ImageNotFound(spec.image.clone())),
            Err(error) => return Err(StartError::Other(error.to_string())),
        };
        Ok(id)
    }

    /// Whether the container runs under the shim.
    pub async fn has_shim(&self, id: &str) -> anyhow::Result<bool> {
        let inspected = self.docker.inspect_container(id, None).await?;
        Ok(inspected
            .config
            .and_then(|config| config.labels)
            .is_some_and(|labels| labels.contains_key(LABEL_SHIM)))
    }

    /// Sends `signal` (`SIGTERM`, …) to the container's first process.
    pub async fn kill(&self, id: &str, signal: &str) -> anyhow::Result<()> {
        let options = bollard::query_parameters::KillContainerOptionsBuilder::default()
            .signal(signal)
            .build();
        match self.docker.kill_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            // 409: not running any more.
            Err(DockerError::DockerResponseServerError {
                status_code: 404 | 409,
                ..
            }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Runs `command` in the running container, as its user, and streams
    /// its output.
    pub async fn exec_output(
        &self,
        id: &str,
        command: Vec<String>,
    ) -> anyhow::Result<OutputStream> {
        Ok(self.exec(id, command, false).await?.0)
    }

    /// Runs `command` in the container with its stdin, stdout and stderr
    /// attached: what the shim's `feed` takes and gives.
    pub async fn exec_attached(
        &self,
        id: &str,
        command: Vec<String>,
    ) -> anyhow::Result<(OutputStream, ContainerInput)> {
        self.exec(id, command, true).await
    }

    async fn exec(
        &self,
        id: &str,
        command: Vec<String>,
        stdin: bool,
    ) -> anyhow::Result<(OutputStream, ContainerInput)> {
        let exec = self
            .docker
            .create_exec(
                id,
                bollard::exec::CreateExecOptions {
                    cmd: Some(command),
                    attach_stdin: Some(stdin),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await?;
        match self.archives.start_exec(&exec.id, None).await? {
            bollard::exec::StartExecResults::Attached { output, input } => Ok((output, input)),
            bollard::exec::StartExecResults::Detached => {
                anyhow::bail!("the exec started detached")
            }
        }
    }

    /// The image, pulled first if it is missing and the policy allows.
    async fn ensure_image(&self, image: &str) -> Result<ImageInspect, StartError> {
        match self.docker.inspect_image(image).await {
            Ok(inspected) => return Ok(inspected),
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            Err(error) => return Err(StartError::Other(error.to_string())),
        }
        if self.pull == PullPolicy::Never {
            return Err(StartError::ImageNotFound(image.to_owned()));
        }
        let options = CreateImageOptionsBuilder::default()
            .from_image(image)
            .build();
        let mut progress = self.docker.create_image(Some(options), None, None);
        while let Some(step) = progress.next().await {
            if let Err(error) = step {
                tracing::info!(image, %error, "pulling the image failed");
                return Err(StartError::ImageNotFound(image.to_owned()));
            }
        }
        self.docker
            .inspect_image(image)
            .await
            .map_err(|error| StartError::Other(error.to_string()))
    }

    /// Attaches to stdout and stderr. Call before `start`, so that no byte
    /// written at start-up is missed.
    pub async fn attach_output(&self, id: &str) -> anyhow::Result<OutputStream> {
        Ok(self.attach(id, false).await?.output)
    }

    /// Attaches to stdin, stdout and stderr of a warm container, whose job
    /// arrives on its stdin.
    pub async fn attach_stdin(&self, id: &str) -> anyhow::Result<(OutputStream, ContainerInput)> {
        let attached = self.attach(id, true).await?;
        Ok((attached.output, attached.input))
    }

    async fn attach(
        &self,
        id: &str,
        stdin: bool,
    ) -> Result<bollard::container::AttachContainerResults, DockerError> {
        let options = AttachContainerOptionsBuilder::default()
            .stdin(stdin)
            .stdout(true)
            .stderr(true)
            .stream(true)
            .logs(false)
            .build();
        self.docker.attach_container(id, Some(options)).await
    }

    pub async fn start(&self, id: &str, command: &[String]) -> Result<(), StartError> {
        match self.start_once(id, command).await {
            // Another worker removed the app's network between this
            // container's creation and its start (Docker counts only
            // started containers as its users): made again under the same
            // name, which the container finds at its start.
            Err(StartError::NetworkGone(_)) => {
                self.remake_network_of(id).await?;
                self.start_once(id, command).await
            }
            started => started,
        }
    }

    async fn start_once(&self, id: &str, command: &[String]) -> Result<(), StartError> {
        match self.docker.start_container(id, None).await {
            Ok(()) => Ok(()),
            // 304: started already (by a worker that died meanwhile).
            Err(DockerError::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(DockerError::DockerResponseServerError {
                status_code: 404,
                message,
            }) if message.contains("network") => Err(StartError::NetworkGone(message)),
            Err(error) => Err(classify_start_error(&error.to_string(), command)),
        }
    }

    /// Waits until the container stops, then reads how it ended. Rides
    /// out a restart of the engine: every request opens a new connection,
    /// so the wait resumes once dockerd answers again, for up to the
    /// engine grace; then, or when the container is gone, the error is an
    /// [`EngineLost`].
    pub async fn wait(&self, id: &str) -> anyhow::Result<ContainerExit> {
        let mut engine_lost = false;
        let mut unreachable_since: Option<tokio::time::Instant> = None;
        loop {
            let mut waiting = self.docker.wait_container(id, None::<WaitContainerOptions>);
            // A non-zero exit arrives as an error; the inspect below is the
            // single source of the exit code and the OOM flag either way.
            while let Some(step) = waiting.next().await {
                match step {
                    Err(
                        DockerError::DockerResponseServerError { .. }
                        | DockerError::DockerContainerWaitError { .. },
                    ) => break,
                    Err(error) => {
                        tracing::warn!(container = id, %error, "waiting for the container broke off");
                        engine_lost = true;
                        break;
                    }
                    Ok(_) => {}
                }
            }
            match self.docker.inspect_container(id, None).await {
                Ok(inspected) => {
                    unreachable_since = None;
                    let state = inspected.state.unwrap_or_default();
                    if state.running == Some(true) {
                        // The wait broke off early: wait again.
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                    return Ok(ContainerExit {
                        exit_code: state.exit_code.unwrap_or(-1),
                        oom_killed: state.oom_killed.unwrap_or(false),
                        engine_lost,
                    });
                }
                Err(DockerError::DockerResponseServerError {
                    status_code: 404, ..
                }) => return Err(EngineLost::ContainerGone.into()),
                Err(error) => {
                    engine_lost = true;
                    let since = *unreachable_since.get_or_insert_with(tokio::time::Instant::now);
                    if since.elapsed() >= self.engine_grace {
                        return Err(EngineLost::Unreachable(self.engine_grace).into());
                    }
                    tracing::warn!(container = id, %error, "the Docker engine does not answer; waiting for it");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Whether the container is running now.
    pub async fn is_running(&self, id: &str) -> anyhow::Result<bool> {
        let inspected = self.docker.inspect_container(id, None).await?;
        Ok(inspected.state.and_then(|state| state.running) == Some(true))
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub async fn stop(&self, id: &str, grace: Duration) -> anyhow::Result<()> {
        let options = StopContainerOptionsBuilder::default()
            .t(grace.as_secs().max(1) as i32)
            .build();
        match self.docker.stop_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            // 304: already stopped.
            Err(DockerError::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Streams a tar archive into the container, extracted under `dir`.
    /// Works on a created, not yet started container: Docker writes into
    /// its volumes then (the uploads volume is one).
    pub async fn upload_archive(
        &self,
        id: &str,
        dir: &str,
        tar: impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    ) -> anyhow::Result<()> {
        let options = UploadToContainerOptionsBuilder::default().path(dir).build();
        self.archives
            .upload_to_container(id, Some(options), bollard::body_try_stream(tar))
            .await?;
        Ok(())
    }

    /// A tar archive of `path` in a (stopped) container, as a stream.
    /// Docker answers before the first byte, so a missing path is the
    /// first item: [`DownloadError::Missing`].
    pub async fn download_archive(
        &self,
        id: &str,
        path: &str,
    ) -> Result<
        impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + use<>,
        DownloadError,
    > {
        let options = DownloadFromContainerOptionsBuilder::default()
            .path(path)
            .build();
        let mut stream = Box::pin(self.archives.download_from_container(id, Some(options)));
        let first = match stream.next().await {
            None => Bytes::new(),
            Some(Ok(first)) => first,
            Some(Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            })) => return Err(DownloadError::Missing),
            Some(Err(error)) => return Err(DownloadError::Other(error.to_string())),
        };
        let rest = stream.map(|chunk| chunk.map_err(std::io::Error::other));
        Ok(futures::stream::once(async move { Ok(first) }).chain(rest))
    }

    /// The bytes of one regular file of a container, read out of the tar
    /// archive Docker makes of it.
    pub async fn read_file(
        &self,
        id: &str,
        path: &str,
    ) -> anyhow::Result<impl tokio::io::AsyncRead + Unpin + use<>> {
        use tokio::io::AsyncReadExt;
        let archive = self
            .download_archive(id, path)
            .await
            .map_err(|error| anyhow::anyhow!("{path}: {error}"))?;
        let mut tar = tokio_util::io::StreamReader::new(Box::pin(archive));
        loop {
            let mut header = [0u8; 512];
            tar.read_exact(&mut header).await?;
            let size = octal(&header[124..136])?;
            match header[156] {
                b'0' | 0 => return Ok(tar.take(size)),
                // A PAX or GNU long-name header: skip its data.
                _ => {
                    let padded = size.div_ceil(512) * 512;
                    tokio::io::copy(&mut (&mut tar).take(padded), &mut tokio::io::sink()).await?;
                }
            }
        }
    }

    /// Removes the container, its anonymous volumes (the shim's log and
    /// artifacts) and its uploads' volume, unless another container
    /// still holds that ([`uploads_volume`]); its app network's idle time
    /// starts ([`app_network`]). Every removal path goes through here.
    pub async fn remove(&self, id: &str) -> anyhow::Result<()> {
        let held = self.held_by(id).await;
        self.remove_container_only(id).await?;
        for volume in held.uploads_volumes {
            self.remove_uploads_volume(&volume).await?;
        }
        if let Some(network) = held.network {
            self.network_released(&network);
        }
        Ok(())
    }

    /// What a container holds that may go with it: its uploads' volumes
    /// and its network. Nothing if it is gone.
    async fn held_by(&self, id: &str) -> Held {
        let Ok(inspected) = self.docker.inspect_container(id, None).await else {
            return Held::default();
        };
        Held {
            uploads_volumes: inspected
                .mounts
                .unwrap_or_default()
                .into_iter()
                .filter_map(|mount| mount.name)
                .filter(|name| uploads_volume::is_uploads_volume(name))
                .collect(),
            network: inspected.host_config.and_then(|config| config.network_mode),
        }
    }

    async fn remove_container_only(&self, id: &str) -> anyhow::Result<()> {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            // A removal already under way (a dead worker's, finishing in
            // dockerd) removes it just as well.
            Err(DockerError::DockerResponseServerError {
                status_code: 409,
                message,
            }) if message.contains("already in progress") => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Every container, running or not, that carries this worker's label.
    pub async fn containers_of_worker(
        &self,
        worker_id: &str,
    ) -> anyhow::Result<Vec<LabelledContainer>> {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![format!("{LABEL_WORKER_ID}={worker_id}")],
        )]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let containers = self.docker.list_containers(Some(options)).await?;
        Ok(containers
            .into_iter()
            .filter_map(|container| {
                let labels = container.labels.unwrap_or_default();
                if labels.contains_key(LABEL_WARM) {
                    // Its job, if one took it, is in its name; whether the
                    // job reached its shim is unknown, so it counts as never
                    // started: adopted only if its start was recorded, and
                    // sent the job again (the shim runs a job once).
                    let names = container.names.unwrap_or_default();
                    let job = names.iter().find_map(|name| warm::job_of_name(name));
                    return Some(LabelledContainer {
                        id: container.id?,
                        job_id: job.as_ref().map(|(job_id, _)| job_id.clone()),
                        attempt: job.map(|(_, attempt)| attempt),
                        shim: true,
                        started: false,
                        warm: true,
                    });
                }
                Some(LabelledContainer {
                    id: container.id?,
                    job_id: labels.get(LABEL_JOB_ID).cloned(),
                    attempt: labels.get(LABEL_ATTEMPT).and_then(|a| a.parse().ok()),
                    shim: labels.contains_key(LABEL_SHIM),
                    // "created" is the only state of a container never started.
                    started: container.state.is_none_or(|state| {
                        state != bollard::models::ContainerSummaryStateEnum::CREATED
                    }),
                    warm: false,
                })
            })
            .collect())
    }
}

fn octal(field: &[u8]) -> anyhow::Result<u64> {
    let text = std::str::from_utf8(field)?.trim_matches(|c: char| c == '\0' || c == ' ');
    Ok(u64::from_str_radix(text, 8)?)
}

/// The largest `/tmp` a job gets, whatever its memory: tmpfs pages count
/// against the container's memory limit, so a bigger one could only OOM.
pub const TMP_MAX_BYTES: i64 = 1024 * 1024 * 1024;

/// The container's `HostConfig`: the resource limits of its size and every
/// hardening measure of docs/security.md. Measures marked "never" have no
/// knob on purpose.
fn host_config(spec: &ContainerSpec) -> HostConfig {
    let limits = &spec.limits;
    let hardening = &spec.hardening;
    HostConfig {
        memory: Some(limits.memory_bytes),
        // Swap equal to memory: the job gets no swap beyond its memory.
        memory_swap: Some(limits.memory_bytes),
        nano_cpus: Some(limits.nano_cpus),
        // A fork bomb hits this limit instead of the host's process table.
        pids_limit: Some(limits.pids),
        // An init as PID 1 forwards signals and reaps zombies, so that
        // SIGTERM reaches the command and `kill $$` behaves as in a shell.
        init: Some(true),
        // Least privilege: start from no capability at all and add back
        // only the app's allow-list (validated against Docker's defaults).
        cap_drop: Some(vec!["ALL".into()]),
        cap_add: Some(hardening.cap_add.clone()),
        security_opt: Some(security_options()),
        // Never privileged: it would give back every capability and device.
        privileged: Some(false),
        // Never a host namespace: each stays the container's own ("" is
        // Docker's private default). The network is the default bridge or
        // none for an app that asks.
        network_mode: Some(spec.network.clone()),
        pid_mode: Some(String::new()),
        ipc_mode: Some("private".into()),
        uts_mode: Some(String::new()),
        cgroupns_mode: Some(HostConfigCgroupnsModeEnum::PRIVATE),
        // The daemon's user-namespace setting applies (off by default, see
        // docs/security.md); never "host", which would opt out of it.
        userns_mode: Some(String::new()),
        // Never a bind mount, so never the Docker socket nor any host path:
        // the job sees its image, its tmpfs, its own volumes and the
        // shim's, read-only.
        binds: Some(Vec::new()),
        mounts: Some(mounts(spec)),
        volumes_from: Some(Vec::new()),
        readonly_rootfs: Some(hardening.read_only_root),
        tmpfs: Some(tmp_mount(limits)),
        // The worker streams output itself; a log driver would only
        // duplicate every byte onto the host's disk.
        log_config: Some(bollard::models::HostConfigLogConfig {
            typ: Some("none".into()),
            config: None,
        }),
        ..Default::default()
    }
}

/// `no-new-privileges`: setuid binaries and file capabilities cannot raise
/// the job's privileges above what it started with. No `seccomp=` option:
/// Docker's default seccomp profile applies, and `seccomp=unconfined` is
/// never set.
fn security_options() -> Vec<String> {
    vec!["no-new-privileges".into()]
}

/// A private, size-capped, world-writable (sticky) `/tmp`, writable even
/// with a read-only root. `nosuid,nodev`: nothing placed there can raise
/// privileges or open a device. `exec` overrides Docker's tmpfs default of
/// `noexec`, as on Heroku: jobs download tools and unpack native libraries
/// into /tmp, and `noexec` stops none of `sh /tmp/script`.
fn tmp_mount(limits: &SizeLimits) -> HashMap<String, String> {
    let size = limits.memory_bytes.min(TMP_MAX_BYTES);
    HashMap::from([(
        "/tmp".to_string(),
        format!("rw,exec,nosuid,nodev,mode=1777,size={size}"),
    )])
}

/// The container's volumes: under the shim, the shim's, read-only at
/// `/.jobs`, and its writable directories' ([`shim_volume`]); the
/// uploads'.
fn mounts(spec: &ContainerSpec) -> Vec<Mount> {
    let mut mounts = Vec::new();
    if spec.shim.is_some() {
        mounts.extend(shim_volume::shim_mounts());
    }
    if spec.uploads || spec.warm {
        mounts.push(uploads_volume::uploads_mount(spec));
    }
    mounts
}

/// What [`Runtime::held_by`] found.
#[derive(Debug, Default)]
struct Held {
    uploads_volumes: Vec<String>,
    network: Option<String>,
}

/// A container found by its worker label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelledContainer {
    pub id: String,
    pub job_id: Option<String>,
    pub attempt: Option<i32>,
    /// Whether the container was ever started.
    pub started: bool,
    /// Whether its command runs under the shim, which runs it at most once
    /// however often the container is started.
    pub shim: bool,
    /// Whether it was a warm container ([`warm`]), whose job arrives on
    /// its stdin.
    pub warm: bool,
}

/// Maps the engine's start error to what the user needs to know, as
/// `docker run` does with 127 and 126.
fn classify_start_error(message: &str, command: &[String]) -> StartError {
    let program = command.first().cloned().unwrap_or_default();
    if message.contains("executable file not found")
        || message.contains("no such file or directory")
    {
        StartError::CommandNotFound(program)
    } else if message.contains("permission denied") {
        StartError::CommandNotExecutable(program)
    } else {
        StartError::Other(message.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::MountType;

    #[test]
    fn classifies_start_errors_like_docker_run() {
        let cmd = vec!["nope".to_string()];
        let not_found = "OCI runtime create failed: exec: \"nope\": executable file not found in $PATH: unknown";
        assert!(
            matches!(classify_start_error(not_found, &cmd), StartError::CommandNotFound(p) if p == "nope")
        );
        let denied = "OCI runtime create failed: exec: \"/etc\": permission denied: unknown";
        assert_eq!(classify_start_error(denied, &cmd).exit_code(), Some(126));
        assert_eq!(classify_start_error("boom", &cmd).exit_code(), None);
        assert_eq!(
            StartError::ImageNotFound("foo:1".into()).to_string(),
            "image not found: foo:1"
        );
    }

    fn spec(size: jobs_core::Size, hardening: Hardening) -> ContainerSpec {
        ContainerSpec {
            name: "jobs-x-1".into(),
            image: "busybox".into(),
            command: vec!["true".into()],
            env: Vec::new(),
            labels: HashMap::new(),
            limits: size.default_limits(),
            hardening,
            interactive: None,
            uploads: false,
            shim: None,
            warm: false,
            network: "jobs-app-x".into(),
        }
    }

    #[test]
    fn every_container_is_hardened_by_default() {
        let config = host_config(&spec(jobs_core::Size::S, Hardening::default()));
        assert_eq!(config.cap_drop, Some(vec!["ALL".to_string()]));
        assert_eq!(config.cap_add, Some(Vec::new()));
        assert_eq!(config.privileged, Some(false));
        assert_eq!(
            config.security_opt,
            Some(vec!["no-new-privileges".to_string()])
        );
        assert_eq!(config.memory, config.memory_swap);
        assert_eq!(config.pids_limit, Some(256));
        assert_eq!(config.binds, Some(Vec::new()));
        assert_eq!(config.mounts, Some(Vec::new()));
        assert_eq!(config.readonly_rootfs, Some(false));
        for mode in [
            &config.network_mode,
            &config.pid_mode,
            &config.ipc_mode,
            &config.userns_mode,
            &config.uts_mode,
        ] {
            assert_ne!(mode.as_deref(), Some("host"));
        }
        // The app's own network, never Docker's shared default bridge.
        assert_eq!(config.network_mode.as_deref(), Some("jobs-app-x"));
        let tmp = &config.tmpfs.as_ref().unwrap()["/tmp"];
        assert_eq!(tmp, "rw,exec,nosuid,nodev,mode=1777,size=268435456");
    }

    #[test]
    fn uploads_get_a_read_only_volume_of_their_own_and_nothing_else() {
        let mut with_uploads = spec(jobs_core::Size::S, Hardening::default());
        with_uploads.uploads = true;
        let config = host_config(&with_uploads);
        let mounts = config.mounts.unwrap();
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].target.as_deref(), Some("/tmp/uploads"));
        assert_eq!(mounts[0].typ, Some(MountType::VOLUME));
        // A volume of its own, named after the container: never a host
        // path nor another job's volume.
        assert_eq!(mounts[0].source.as_deref(), Some("jobs-uploads-jobs-x-1"));
        assert_eq!(mounts[0].read_only, Some(true));
        assert_eq!(config.binds, Some(Vec::new()));
        assert!(config.tmpfs.unwrap().contains_key("/tmp"));
    }

    #[test]
    fn tmp_is_capped_at_one_gib() {
        let config = host_config(&spec(jobs_core::Size::XL, Hardening::default()));
        assert!(config.tmpfs.unwrap()["/tmp"].ends_with(&format!("size={TMP_MAX_BYTES}")));
    }

    #[test]
    fn app_options_reach_the_host_config() {
        let hardening = Hardening {
            cap_add: vec!["NET_BIND_SERVICE".into()],
            user: Some("65534".into()),
            read_only_root: true,
            network_none: true,
            network: None,
        };
        let mut spec = spec(jobs_core::Size::M, hardening.clone());
        spec.network = "none".into();
        let config = host_config(&spec);
        assert_eq!(config.cap_add, Some(vec!["NET_BIND_SERVICE".to_string()]));
        assert_eq!(config.cap_drop, Some(vec!["ALL".to_string()]));
        assert_eq!(config.readonly_rootfs, Some(true));
        assert_eq!(config.network_mode.as_deref(), Some("none"));
    }
}
