//! Closes the worker host's own ports to jobs.
//!
//! A job on an app network ([`crate::runtime::app_network`]) reaches the
//! host through its bridge's gateway address, or any other address of the
//! host, where RabbitMQ, PostgreSQL, the API or an operator's services may
//! listen. Docker closes nothing there, so the worker does, with iptables:
//! a chain, [`CHAIN`], and one rule in `INPUT` that sends it every packet
//! coming in from an app network's bridge (`-i jbr-+`). In the chain,
//! replies of connections the host opened pass, the ports the operator
//! allows (`JOBS_HOST_PORTS_ALLOWED`, TCP and UDP) pass, and the rest is
//! dropped. One more rule, first in Docker's `DOCKER-USER`, drops what
//! goes from one app network to another (`-i jbr-+ -o jbr-+`), beside
//! Docker's own isolation of its bridges.
//!
//! Installing is idempotent: the chain is made or emptied and filled again,
//! and the `INPUT` rule is added only if `iptables -C` does not find it, so
//! a worker that crashed finds its rules as it left them and makes them
//! anew. The worker removes both when it stops. The chain is the host's,
//! as the app networks are: several workers of one host share it, the
//! last one started sets its ports, and one that stops removes it until
//! another starts (docs/security.md). IPv4 only: app networks have no
//! IPv6.

use std::process::Command;

use anyhow::{Context, bail};

use crate::runtime::app_network::BRIDGE_PREFIX;

/// The chain of the rules.
pub const CHAIN: &str = "JOBS-HOST";
/// Docker's chain for its users' own forwarding rules, first in `FORWARD`.
const DOCKER_USER: &str = "DOCKER-USER";

/// `DOCKER-USER -i jbr-+ -o jbr-+ -j DROP`, without its command: nothing
/// passes from one app network to another, nor within one.
fn between_app_networks() -> Vec<String> {
    let bridges = format!("{BRIDGE_PREFIX}+");
    [DOCKER_USER, "-i", &bridges, "-o", &bridges, "-j", "DROP"]
        .map(str::to_owned)
        .to_vec()
}

/// The rules, removed by [`HostFirewall::remove`].
#[derive(Debug)]
pub struct HostFirewall {
    chain: String,
}

impl HostFirewall {
    /// Closes the host's ports to jobs, but `allowed_ports`.
    pub fn install(allowed_ports: &[u16]) -> anyhow::Result<Self> {
        let firewall = Self {
            chain: CHAIN.to_owned(),
        };
        let chain = firewall.chain.as_str();
        if iptables(&["-L", chain, "-n"]).is_err() {
            iptables(&["-N", chain])?;
        }
        iptables(&["-F", chain])?;
        iptables(&[
            "-A",
            chain,
            "-m",
            "conntrack",
            "--ctstate",
            "ESTABLISHED,RELATED",
            "-j",
            "RETURN",
        ])?;
        for port in allowed_ports {
            let port = port.to_string();
            for protocol in ["tcp", "udp"] {
                iptables(&[
                    "-A", chain, "-p", protocol, "--dport", &port, "-j", "RETURN",
                ])?;
            }
        }
        iptables(&["-A", chain, "-j", "DROP"])?;
        let jump = firewall.jump();
        if iptables(&prepend("-C", &jump)).is_err() {
            iptables(&prepend("-I", &jump))?;
        }
        // Docker's own isolation of its bridges, programmed as networks
        // come and go, has been seen to let a packet through while another
        // network was made: this rule holds whatever Docker does.
        if iptables(&["-L", DOCKER_USER, "-n"]).is_err() {
            iptables(&["-N", DOCKER_USER])?;
        }
        let between = between_app_networks();
        if iptables(&prepend("-C", &between)).is_err() {
            iptables(&prepend("-I", &between))?;
        }
        tracing::info!(chain, ?allowed_ports, "the host's ports are closed to jobs");
        Ok(firewall)
    }

    /// Removes the `INPUT` and `DOCKER-USER` rules and the chain.
    pub fn remove(&self) {
        let between = between_app_networks();
        while iptables(&prepend("-C", &between)).is_ok() {
            if let Err(error) = iptables(&prepend("-D", &between)) {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "removing the firewall's isolation rule failed"
                );
                break;
            }
        }
        let jump = self.jump();
        while iptables(&prepend("-C", &jump)).is_ok() {
            if let Err(error) = iptables(&prepend("-D", &jump)) {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "removing the host firewall's rule failed"
                );
                break;
            }
        }
        for step in ["-F", "-X"] {
            if let Err(error) = iptables(&[step, &self.chain]) {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "removing the host firewall's chain failed"
                );
            }
        }
    }

    /// `INPUT -i jbr-+ -j CHAIN`, without its command.
    fn jump(&self) -> Vec<String> {
        [
            "INPUT",
            "-i",
            &format!("{BRIDGE_PREFIX}+"),
            "-j",
            &self.chain,
        ]
        .map(str::to_owned)
        .to_vec()
    }
}

fn prepend<'a>(command: &'a str, rule: &'a [String]) -> Vec<&'a str> {
    std::iter::once(command)
        .chain(rule.iter().map(String::as_str))
        .collect()
}

/// Runs `iptables -w ARGS` (waiting for the xtables lock).
fn iptables(args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("iptables")
        .arg("-w")
        .args(args)
        .output()
        .context("running iptables")?;
    if !output.status.success() {
        bail!(
            "iptables {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_app_bridge_jumps_to_the_chain() {
        let firewall = HostFirewall {
            chain: CHAIN.to_owned(),
        };
        assert_eq!(firewall.jump(), ["INPUT", "-i", "jbr-+", "-j", "JOBS-HOST"]);
        assert_eq!(
            between_app_networks(),
            ["DOCKER-USER", "-i", "jbr-+", "-o", "jbr-+", "-j", "DROP"]
        );
    }
}
