//! The warm pool. For each app whose `warm` setting is above 0, this worker
//! keeps that many warm containers ([`crate::runtime::warm`]) of the app's
//! image, hardening and default size: created, started, the shim waiting in
//! them. A queued job of that app at that size takes one instead of
//! creating and starting its own; each serves one job and is removed after
//! it, as any job's container. The pool refills in the background, and
//! drops the containers of an app whose image (or the image's id behind its
//! tag), hardening or size changed, or that no longer wants them.

use std::{sync::Arc, time::Duration};

use jobs_core::{Size, hardening::Hardening, wire::App};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{
    runtime::{ContainerSpec, LABEL_WORKER_ID, warm::WarmContainer},
    worker::WorkerContext,
};

/// How often the pool reads the apps' settings when nothing woke it.
const REFRESH: Duration = Duration::from_secs(2);
/// How long it waits after a container could not be made, before trying
/// that app again (an image that is missing, a full disk).
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(10);

/// What makes warm containers interchangeable: a job may take one made
/// for the same app, image, size and hardening.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PoolKey {
    app: String,
    image: String,
    size: Size,
    hardening: Hardening,
}

struct Shelf {
    key: PoolKey,
    ready: Vec<WarmContainer>,
}

#[derive(Default)]
pub struct WarmPool {
    shelves: std::sync::Mutex<Vec<Shelf>>,
    refill: Notify,
}

impl WarmPool {
    /// A warm container for a job of `app` that would be created from
    /// `spec` at `size`, if one is ready and its image is still the one
    /// the tag names. Interactive runs take one too: their stdin and their
    /// terminal are the shim's, which gets them with the job.
    pub async fn take(
        &self,
        context: &WorkerContext,
        app: &str,
        size: Size,
        spec: &ContainerSpec,
    ) -> Option<WarmContainer> {
        // Only a job under the shim can be sent to one.
        spec.shim.as_ref()?;
        let key = PoolKey {
            app: app.to_owned(),
            image: spec.image.clone(),
            size,
            hardening: spec.hardening.clone(),
        };
        let taken = {
            let mut shelves = self.shelves.lock().expect("the pool's lock");
            shelves
                .iter_mut()
                .find(|shelf| shelf.key == key)
                .and_then(|shelf| shelf.ready.pop())
        }?;
        self.refill.notify_one();
        context.metrics.warm_containers.dec();
        // A tag moved since the container was made: the job gets the image
        // the tag names now, in a container of its own.
        let current = context.runtime.inspect_image_command(&spec.image).await;
        if current.map(|(id, _)| id).ok().as_deref() != Some(taken.image_id.as_str()) {
            remove(context, &taken.id).await;
            return None;
        }
        context.metrics.warm_starts.inc();
        Some(taken)
    }

    /// Every ready container, taken out of the pool.
    fn take_all(&self) -> Vec<WarmContainer> {
        let mut shelves = self.shelves.lock().expect("the pool's lock");
        shelves.drain(..).flat_map(|shelf| shelf.ready).collect()
    }
}

/// Keeps the pool filled until `shutdown`, then removes what it holds.
pub async fn keep_filled(context: Arc<WorkerContext>, shutdown: CancellationToken) {
    let mut failed: Vec<(PoolKey, tokio::time::Instant)> = Vec::new();
    while !shutdown.is_cancelled() {
        failed.retain(|(_, at)| at.elapsed() < RETRY_AFTER_FAILURE);
        match wanted(&context).await {
            Ok(wanted) => refill(&context, &wanted, &mut failed, &shutdown).await,
            Err(error) => tracing::warn!(%error, "reading the apps' warm pools failed"),
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = context.warm_pool.refill.notified() => {}
            () = tokio::time::sleep(REFRESH) => {}
        }
    }
    for warm in context.warm_pool.take_all() {
        context.metrics.warm_containers.dec();
        remove(&context, &warm.id).await;
    }
}

/// The pools the apps ask for: none while this worker drains.
async fn wanted(context: &WorkerContext) -> anyhow::Result<Vec<(PoolKey, usize)>> {
    if context.is_draining() {
        return Ok(Vec::new());
    }
    let apps: Vec<App> = context.store.list_apps().await?;
    Ok(apps
        .into_iter()
        .filter(|app| app.warm > 0)
        .map(|app| {
            let key = PoolKey {
                app: app.name,
                image: app.image,
                size: app.size,
                hardening: app.hardening,
            };
            (key, app.warm as usize)
        })
        .collect())
}

/// Removes what is no longer wanted, then makes what is missing, one
/// container at a time, each shelf in turn.
async fn refill(
    context: &WorkerContext,
    wanted: &[(PoolKey, usize)],
    failed: &mut Vec<(PoolKey, tokio::time::Instant)>,
    shutdown: &CancellationToken,
) {
    let surplus: Vec<WarmContainer> = {
        let mut shelves = context.warm_pool.shelves.lock().expect("the pool's lock");
        let mut surplus = Vec::new();
        shelves.retain_mut(|shelf| {
            let count = wanted
                .iter()
                .find(|(key, _)| *key == shelf.key)
                .map_or(0, |(_, count)| *count);
            while shelf.ready.len() > count {
                surplus.extend(shelf.ready.pop());
            }
            count > 0
        });
        surplus
    };
    for warm in surplus {
        context.metrics.warm_containers.dec();
        remove(context, &warm.id).await;
    }
    for (key, count) in wanted {
        if failed.iter().any(|(failed_key, _)| failed_key == key) {
            continue;
        }
        drop_stale(context, key).await;
        while ready_count(context, key) < *count && !shutdown.is_cancelled() {
            match context.runtime.create_warm(&template(context, key)).await {
                Ok(warm) => {
                    context.metrics.warm_containers.inc();
                    let mut shelves = context.warm_pool.shelves.lock().expect("the pool's lock");
                    match shelves.iter_mut().find(|shelf| shelf.key == *key) {
                        Some(shelf) => shelf.ready.push(warm),
                        None => shelves.push(Shelf {
                            key: key.clone(),
                            ready: vec![warm],
                        }),
                    }
                }
                Err(error) => {
                    tracing::warn!(app = key.app, image = key.image, %error, "making a warm container failed");
                    failed.push((key.clone(), tokio::time::Instant::now()));
                    break;
                }
            }
        }
    }
}

fn ready_count(context: &WorkerContext, key: &PoolKey) -> usize {
    let shelves = context.warm_pool.shelves.lock().expect("the pool's lock");
    shelves
        .iter()
        .find(|shelf| shelf.key == *key)
        .map_or(0, |shelf| shelf.ready.len())
}

/// Removes the shelf's containers whose image is no longer the one its
/// tag names.
async fn drop_stale(context: &WorkerContext, key: &PoolKey) {
    let Ok((image_id, _)) = context.runtime.inspect_image_command(&key.image).await else {
        return;
    };
    let stale: Vec<WarmContainer> = {
        let mut shelves = context.warm_pool.shelves.lock().expect("the pool's lock");
        let Some(shelf) = shelves.iter_mut().find(|shelf| shelf.key == *key) else {
            return;
        };
        let (keep, stale) = shelf
            .ready
            .drain(..)
            .partition(|warm| warm.image_id == image_id);
        shelf.ready = keep;
        stale
    };
    for warm in stale {
        context.metrics.warm_containers.dec();
        remove(context, &warm.id).await;
    }
}

/// What a warm container of `key` is made from: the spec a job of that
/// app at that size would get, but for the job's own parts.
fn template(context: &WorkerContext, key: &PoolKey) -> ContainerSpec {
    ContainerSpec {
        name: String::new(),
        image: key.image.clone(),
        command: Vec::new(),
        env: Vec::new(),
        labels: [
            (LABEL_WORKER_ID.to_owned(), context.worker_id.clone()),
            (
                crate::runtime::disk::LABEL_SIZE.to_owned(),
                key.size.to_string(),
            ),
        ]
        .into(),
        limits: context.config.limits_for(key.size),
        hardening: key.hardening.clone(),
        network: context.runtime.network_mode(&key.app, &key.hardening),
        interactive: None,
        uploads: true,
        shim: Some(Vec::new()),
        warm: true,
    }
}

async fn remove(context: &WorkerContext, id: &str) {
    if let Err(error) = context.runtime.remove(id).await {
        tracing::warn!(container = id, %error, "removing a warm container failed");
    }
}
