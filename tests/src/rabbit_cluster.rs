//! A RabbitMQ cluster of a test's own: several [`PrivateRabbit`] nodes on
//! this machine that share an Erlang cookie and were joined with
//! `rabbitmqctl join_cluster`, as an operator joins the hosts of a real
//! cluster. A quorum queue declared on it has a member on every node, so
//! a test can stop the node that holds its leader.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use crate::poll::wait_until;
use crate::services::PrivateRabbit;

/// The Debian package's CLI, run without the wrapper in /usr/sbin, which
/// would switch to the `rabbitmq` user and its cookie.
const RABBITMQCTL: &str = "/usr/lib/rabbitmq/bin/rabbitmqctl";
/// How long the nodes may take to agree on a cluster or a queue's leader.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(90);

/// The nodes of one cluster; all are killed when it is dropped.
pub struct RabbitCluster {
    pub nodes: Vec<PrivateRabbit>,
}

impl RabbitCluster {
    /// Starts `size` nodes in `parent/rabbitmq-N` at once, then joins the
    /// second and later to the first.
    pub fn start(parent: &Path, size: usize) -> RabbitCluster {
        assert!(size >= 1, "a cluster has at least one node");
        let cookie = uuid::Uuid::now_v7().simple().to_string().to_uppercase();
        let mut nodes: Vec<PrivateRabbit> = (1..=size)
            .map(|n| {
                PrivateRabbit::prepare(
                    parent.join(format!("rabbitmq-{n}")),
                    Ipv4Addr::LOCALHOST,
                    &[],
                )
            })
            .collect();
        for node in &nodes {
            write_cookie(node.dir(), &cookie);
        }
        // Each node takes seconds to boot: boot them side by side.
        for node in &mut nodes {
            node.spawn();
        }
        for node in &mut nodes {
            node.wait_until_up();
        }
        let first = nodes[0].node_name.clone();
        for node in &nodes[1..] {
            for args in [
                &["stop_app"][..],
                &["reset"],
                &["join_cluster", &first],
                &["start_app"],
            ] {
                node.ctl_ok(args);
            }
        }
        let cluster = RabbitCluster { nodes };
        wait_until("every node running in one cluster", CLUSTER_TIMEOUT, || {
            let status = cluster.nodes[0].ctl(&["cluster_status", "--formatter", "json"]);
            let status: serde_json::Value = serde_json::from_slice(&status.stdout).ok()?;
            let running = status["running_nodes"].as_array()?.len();
            (running == size).then_some(())
        });
        cluster
    }

    /// Every node's AMQP URL, separated by commas, as `JOBS_AMQP_URL` takes
    /// them.
    pub fn urls(&self) -> String {
        let urls: Vec<String> = self.nodes.iter().map(PrivateRabbit::url).collect();
        urls.join(",")
    }

    /// A node that runs, to ask about the cluster.
    fn running_node(&self) -> &PrivateRabbit {
        self.nodes
            .iter()
            .find(|node| node.is_running())
            .expect("a node of the cluster runs")
    }

    /// The index in [`RabbitCluster::nodes`] of the node that holds the
    /// leader of `queue`, once the queue exists and has one.
    pub fn queue_leader(&self, queue: &str) -> usize {
        wait_until(
            &format!("a leader of queue {queue}"),
            CLUSTER_TIMEOUT,
            || {
                let leader = self
                    .queue_info(queue, &["leader"])?
                    .pop()
                    .filter(|leader| !leader.is_empty())?;
                self.nodes
                    .iter()
                    .position(|node| node.node_name == leader && node.is_running())
            },
        )
    }

    /// Messages ready and unacknowledged in `queue`.
    pub fn queue_depth(&self, queue: &str) -> (u64, u64) {
        let info = self
            .queue_info(queue, &["messages_ready", "messages_unacknowledged"])
            .unwrap_or_else(|| panic!("queue {queue} is listed"));
        let count = |text: &str| {
            text.parse()
                .unwrap_or_else(|_| panic!("a message count, not {text:?}"))
        };
        (count(&info[0]), count(&info[1]))
    }

    /// The named columns of `queue` in `rabbitmqctl list_queues`.
    fn queue_info(&self, queue: &str, columns: &[&str]) -> Option<Vec<String>> {
        let mut args = vec!["list_queues", "--quiet", "--no-table-headers", "name"];
        args.extend_from_slice(columns);
        let output = self.running_node().ctl(&args);
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| line.split('\t').map(str::to_owned).collect::<Vec<_>>())
            .find(|fields| fields.first().is_some_and(|name| name == queue))
            .map(|mut fields| fields.split_off(1))
    }
}

impl PrivateRabbit {
    /// `rabbitmqctl -n NODE ARGS`, with this node's cookie.
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(RABBITMQCTL)
            .env("HOME", self.dir())
            .args(["-n", &self.node_name])
            .args(args)
            .output()
            .expect("run rabbitmqctl")
    }

    /// Like [`PrivateRabbit::ctl`]; panics with its output if it failed.
    #[track_caller]
    fn ctl_ok(&self, args: &[&str]) {
        let output = self.ctl(args);
        assert!(
            output.status.success(),
            "rabbitmqctl {args:?} on {} failed: {}{}",
            self.node_name,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Erlang refuses a cookie file that others may read.
fn write_cookie(home: &Path, cookie: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = home.join(".erlang.cookie");
    std::fs::write(&path, cookie).expect("write the Erlang cookie");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400))
        .expect("make the Erlang cookie private");
}
