//! A network per app: the jobs of one app never share a network with
//! another app's, so no job reaches a job of another app.
//!
//! Each app's jobs run on the bridge network `jobs-app-DEPLOYMENT-APP`
//! (the first 8 characters of the deployment's id, so that two
//! installations sharing an engine never share a network), made by the
//! worker before the app's first container on this host and removed once
//! no container has used it for [`NETWORK_IDLE`] (making a bridge takes
//! tens of milliseconds: a run after a run of the same app should not pay
//! it), when the worker stops, and at its start for those a crash left.
//! Two options of Docker's own bridge driver close it further:
//! - `enable_icc=false`: its containers cannot reach each other either, so
//!   a job reaches no other job at all, even of its own app (Docker drops
//!   the traffic between the bridge's ports);
//! - `bridge.name=jbr-…`: a known interface name, so that the worker's
//!   firewall ([`crate::host_firewall`]) can close the host's own ports to
//!   every app network with one rule (`-i jbr-+`).
//!
//! Egress to other hosts is Docker's usual masquerading, unchanged.
//! Different bridges are kept apart by Docker itself (its isolation
//! chains). `--network none` keeps its container without any network.

use std::collections::HashMap;
use std::time::Instant;

use bollard::{
    errors::Error as DockerError,
    models::NetworkCreateRequest,
    query_parameters::{
        InspectNetworkOptions, ListContainersOptionsBuilder, ListNetworksOptionsBuilder,
    },
};
use jobs_core::hardening::Hardening;
use sha2::{Digest, Sha256};

use super::{Runtime, StartError};

/// What every app network's name starts with.
pub const NETWORK_PREFIX: &str = "jobs-app-";
/// What every app network's bridge interface is called, then 11 hex digits
/// (an interface name holds at most 15 characters).
pub const BRIDGE_PREFIX: &str = "jbr-";
/// Set on every app network.
pub const LABEL_APP_NETWORK: &str = "jobs.app_network";
/// Set on every app network: the deployment's whole id.
pub const LABEL_DEPLOYMENT: &str = "jobs.deployment";
/// How long an app network stays after its last container.
pub const NETWORK_IDLE: std::time::Duration = std::time::Duration::from_secs(600);

/// The network of `app`'s jobs in the deployment `deployment`.
pub fn app_network(deployment: &str, app: &str) -> String {
    let scope: String = deployment.chars().take(8).collect();
    format!("{NETWORK_PREFIX}{scope}-{app}")
}

impl Runtime {
    /// The network mode a job container of `app` gets: `none`, the
    /// operator's network the app names, or the app's own network.
    pub fn network_mode(&self, app: &str, hardening: &Hardening) -> String {
        match (&hardening.network, hardening.network_none) {
            (_, true) => "none".to_owned(),
            (Some(named), false) => named.clone(),
            (None, false) => app_network(&self.deployment, app),
        }
    }
}

/// The bridge interface of the network `name`.
pub fn bridge_name(name: &str) -> String {
    let digest = Sha256::digest(name.as_bytes());
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("{BRIDGE_PREFIX}{}", &hex[..11])
}

/// The app networks known to exist on this engine, each with when a
/// container of this worker last used it, so that a container of an app
/// whose network is there costs no request.
#[derive(Default)]
pub struct KnownNetworks {
    used: std::sync::Mutex<HashMap<String, Instant>>,
    /// Held while a network is made: two jobs of one app starting at once
    /// would both make it, and Docker answers the second with an error of
    /// its bridge, not always a 409.
    making: tokio::sync::Mutex<()>,
}

impl KnownNetworks {
    fn contains(&self, name: &str) -> bool {
        self.used.lock().expect("not poisoned").contains_key(name)
    }

    /// Records a use of `name` now.
    fn touch(&self, name: &str) {
        self.used
            .lock()
            .expect("not poisoned")
            .insert(name.to_owned(), Instant::now());
    }

    fn forget(&self, name: &str) {
        self.used.lock().expect("not poisoned").remove(name);
    }

    /// The networks unused for at least `idle`.
    fn idle_for(&self, idle: std::time::Duration) -> Vec<String> {
        self.used
            .lock()
            .expect("not poisoned")
            .iter()
            .filter(|(_, used)| used.elapsed() >= idle)
            .map(|(name, _)| name.clone())
            .collect()
    }
}

impl Runtime {
    /// Makes the app network `name` unless it exists. Other modes (`none`)
    /// need nothing.
    pub(super) async fn ensure_network(&self, name: &str) -> Result<(), StartError> {
        if !name.starts_with(NETWORK_PREFIX) || self.networks.contains(name) {
            return Ok(());
        }
        let _making = self.networks.making.lock().await;
        if self.networks.contains(name) {
            return Ok(());
        }
        let exists = self
            .docker
            .inspect_network(name, None::<InspectNetworkOptions>)
            .await
            .is_ok();
        if !exists {
            let request = NetworkCreateRequest {
                name: name.to_owned(),
                driver: Some("bridge".to_owned()),
                options: Some(HashMap::from([
                    (
                        "com.docker.network.bridge.enable_icc".to_owned(),
                        "false".to_owned(),
                    ),
                    (
                        "com.docker.network.bridge.name".to_owned(),
                        bridge_name(name),
                    ),
                ])),
                labels: Some(HashMap::from([
                    (LABEL_APP_NETWORK.to_owned(), "1".to_owned()),
                    (LABEL_DEPLOYMENT.to_owned(), self.deployment.clone()),
                ])),
                ..Default::default()
            };
            match self.docker.create_network(request).await {
                Ok(_) => tracing::info!(network = name, "app network created"),
                // Made meanwhile by another worker of this engine; its
                // answer is not always a 409, so what is there decides.
                Err(error) => {
                    let made = self
                        .docker
                        .inspect_network(name, None::<InspectNetworkOptions>)
                        .await
                        .is_ok();
                    if !made {
                        return Err(StartError::Other(format!(
                            "creating the app's network {name} failed: {error}"
                        )));
                    }
                }
            }
        }
        self.networks.touch(name);
        Ok(())
    }

    /// Records that a container of this worker left the network `name`:
    /// its idle time starts now.
    pub(super) fn network_released(&self, name: &str) {
        if name.starts_with(NETWORK_PREFIX) {
            self.networks.touch(name);
        }
    }

    /// Removes the app networks this worker used that no container has
    /// used for `idle` (zero: every unused one, at shutdown).
    pub async fn remove_idle_networks(&self, idle: std::time::Duration) {
        for name in self.networks.idle_for(idle) {
            self.remove_network_if_unused(&name).await;
        }
    }

    /// Removes every app network of this deployment on this engine that no
    /// container uses: those a crashed worker left.
    pub async fn remove_unused_app_networks(&self) {
        let filters = HashMap::from([(
            "label".to_owned(),
            vec![format!("{LABEL_DEPLOYMENT}={}", self.deployment)],
        )]);
        let options = ListNetworksOptionsBuilder::default()
            .filters(&filters)
            .build();
        match self.docker.list_networks(Some(options)).await {
            Ok(networks) => {
                for name in networks.into_iter().filter_map(|network| network.name) {
                    self.remove_network_if_unused(&name).await;
                }
            }
            Err(error) => tracing::warn!(%error, "listing the app networks failed"),
        }
    }

    /// Removes the app network `name` if no container, started or not, is
    /// on it any more (Docker itself would remove one whose containers are
    /// only created); one still in use (another job of the app) stays. A
    /// container created meanwhile by another worker finds it made again
    /// at its start ([`Runtime::start`]).
    pub(super) async fn remove_network_if_unused(&self, name: &str) {
        if !name.starts_with(NETWORK_PREFIX) {
            return;
        }
        let filters = HashMap::from([("network".to_owned(), vec![name.to_owned()])]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        match self.docker.list_containers(Some(options)).await {
            Ok(containers) if containers.is_empty() => {}
            Ok(_) => return,
            Err(error) => {
                tracing::warn!(network = name, %error, "listing an app network's containers failed");
                return;
            }
        }
        match self.docker.remove_network(name).await {
            Ok(()) => {
                self.networks.forget(name);
                tracing::info!(network = name, "app network removed");
            }
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => self.networks.forget(name),
            // Active endpoints: another container of the app uses it.
            Err(DockerError::DockerResponseServerError {
                status_code: 403 | 409,
                ..
            }) => {}
            Err(error) => tracing::warn!(network = name, %error, "removing an app network failed"),
        }
    }

    /// Forgets that `name` exists: a container's creation found it gone
    /// (removed by another worker with the app's last container).
    pub(super) fn forget_network(&self, name: &str) {
        self.networks.forget(name);
    }

    /// Makes again the app network of the created container `id`, found
    /// gone at its start.
    pub(super) async fn remake_network_of(&self, id: &str) -> Result<(), StartError> {
        let network = self
            .docker
            .inspect_container(id, None)
            .await
            .ok()
            .and_then(|inspected| inspected.host_config)
            .and_then(|config| config.network_mode)
            .ok_or_else(|| StartError::Other("the container's network is gone".to_owned()))?;
        self.forget_network(&network);
        self.ensure_network(&network).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_app_of_each_deployment_has_its_network_and_a_short_bridge_name() {
        assert_eq!(
            app_network("0123456789abcdef", "billing"),
            "jobs-app-01234567-billing"
        );
        assert_ne!(
            app_network("0123456789abcdef", "billing"),
            app_network("fedcba9876543210", "billing")
        );
        let bridge = bridge_name(&app_network(
            "0123456789abcdef",
            "a-very-long-app-name-of-sixty-three-characters-at-most-x",
        ));
        assert!(bridge.starts_with("jbr-") && bridge.len() == 15, "{bridge}");
        assert_ne!(
            bridge_name(&app_network("d", "one")),
            bridge_name(&app_network("d", "two"))
        );
    }
}
