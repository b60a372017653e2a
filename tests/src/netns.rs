//! "Hosts" of their own on this machine: network namespaces on a bridge.
//!
//! [`Network::create`] makes a Linux bridge with an address `10.A.B.1/24`
//! and, for each host, a network namespace (`ip netns add`) joined to the
//! bridge by a veth pair: the namespace's end gets `10.A.B.(10+N)/24` and
//! `lo` is brought up. A process started in a namespace
//! ([`Host::command`], `ip netns exec NS …`) has its own loopback, on which
//! nothing of the host listens, and one route: to the bridge's subnet. So
//! it reaches the host's services only on the bridge address, as a process
//! on another machine would reach them on the host's address. Its files
//! (the Docker socket among them) are still the machine's.
//!
//! Traffic between the namespaces and the bridge address goes through the
//! host's INPUT chain, but bridged traffic (namespace to namespace) goes
//! through FORWARD, whose policy dockerd sets to DROP while
//! `br_netfilter` makes bridges obey it; an `ACCEPT` rule for this bridge
//! alone is inserted and removed again on drop.
//!
//! Names carry this process's id (`jnb4711x0`, `jobs-e2e-4711x0-h1`): two
//! runs at once never clash, and [`Network::create`] first removes what a
//! killed run left (names whose process is gone, the workers still in its
//! namespaces and the services still on its bridge's address). Everything
//! is removed on drop, a panic's included. Needs root, `ip` and `ss`
//! (iproute2) and `iptables`, as `deploy/setup.sh` installs.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The prefix of every bridge, veth and namespace name made here.
const BRIDGE_PREFIX: &str = "jnb";
const VETH_PREFIX: &str = "jnv";
const NETNS_PREFIX: &str = "jobs-e2e-";
/// Subnets are picked among `10.231.0.0/24` … `10.231.255.0/24`.
const SUBNET_FIRST_OCTETS: (u8, u8) = (10, 231);

/// Networks made by this process so far, for unique names.
static MADE: AtomicUsize = AtomicUsize::new(0);

/// A bridge with hosts (network namespaces) on it; removed on drop.
pub struct Network {
    bridge: String,
    /// The bridge's address: where the host's services listen.
    pub bridge_ip: Ipv4Addr,
    pub hosts: Vec<Host>,
    /// The FORWARD rule that lets bridged traffic through, once inserted.
    forward_rule: Option<Vec<String>>,
}

/// One network namespace on the bridge.
pub struct Host {
    /// The namespace's name, for `ip netns exec`.
    pub netns: String,
    /// Its address on the bridge.
    pub ip: Ipv4Addr,
}

impl Network {
    /// A bridge and `hosts` namespaces on it, each with its address and `lo`
    /// up. Panics, naming the step, if the machine refuses one.
    pub fn create(hosts: usize) -> Network {
        remove_leftovers();
        let tag = format!(
            "{}x{}",
            std::process::id(),
            MADE.fetch_add(1, Ordering::SeqCst)
        );
        let (a, b) = SUBNET_FIRST_OCTETS;
        let c = free_subnet_octet();
        let mut network = Network {
            bridge: format!("{BRIDGE_PREFIX}{tag}"),
            bridge_ip: Ipv4Addr::new(a, b, c, 1),
            hosts: Vec::new(),
            forward_rule: None,
        };
        // From here on, a panic drops `network`, which removes what exists.
        let bridge = network.bridge.clone();
        // A crashed run whose pid this process now has left names that
        // `remove_leftovers` keeps (their owner looks alive): go first.
        remove_names_of(&tag, hosts);
        ip(&["link", "add", &bridge, "type", "bridge"]);
        ip(&[
            "addr",
            "add",
            &format!("{}/24", network.bridge_ip),
            "dev",
            &bridge,
        ]);
        ip(&["link", "set", &bridge, "up"]);
        let rule = forward_rule(&bridge);
        if iptables("-I", &rule) {
            network.forward_rule = Some(rule);
        }
        for index in 1..=hosts {
            let host = Host {
                netns: format!("{NETNS_PREFIX}{tag}-h{index}"),
                ip: Ipv4Addr::new(a, b, c, 9 + index as u8),
            };
            ip(&["netns", "add", &host.netns]);
            network.hosts.push(host);
            let host = network.hosts.last().expect("just pushed");
            let outside = format!("{VETH_PREFIX}{tag}h{index}");
            let inside = format!("{VETH_PREFIX}{tag}p{index}");
            ip(&[
                "link", "add", &outside, "type", "veth", "peer", "name", &inside,
            ]);
            ip(&["link", "set", &outside, "master", &bridge]);
            ip(&["link", "set", &outside, "up"]);
            ip(&["link", "set", &inside, "netns", &host.netns]);
            host.ip_in(&["link", "set", "lo", "up"]);
            host.ip_in(&["addr", "add", &format!("{}/24", host.ip), "dev", &inside]);
            host.ip_in(&["link", "set", &inside, "up"]);
        }
        network
    }
}

impl Host {
    /// `ip netns exec NS PROGRAM`: `program` runs in this namespace (the
    /// same process: `ip` execs it, so its pid is the program's).
    pub fn command(&self, program: &std::path::Path) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.netns]).arg(program);
        command
    }

    /// Connects to `address` from inside this namespace, as a process of
    /// this host would: on a thread of the test moved into it (`setns`).
    pub fn connect(&self, address: SocketAddr) -> io::Result<TcpStream> {
        let path = format!("/run/netns/{}", self.netns);
        std::thread::spawn(move || {
            let namespace = std::fs::File::open(&path)?;
            // SAFETY: setns(2) on this thread only, with a namespace file
            // that stays open for the call; the thread ends right after.
            if unsafe { libc::setns(namespace.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            TcpStream::connect_timeout(&address, Duration::from_secs(2))
        })
        .join()
        .expect("the connecting thread does not panic")
    }

    fn ip_in(&self, args: &[&str]) {
        let mut full = vec!["-n", self.netns.as_str()];
        full.extend_from_slice(args);
        ip(&full);
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        // A namespace's deletion destroys its veth end, and with it the
        // pair; processes still inside keep it alive only until they exit.
        for host in &self.hosts {
            let _ = quiet("ip", &["netns", "delete", &host.netns]);
        }
        let _ = quiet("ip", &["link", "delete", &self.bridge]);
        if let Some(rule) = &self.forward_rule {
            iptables("-D", rule);
        }
    }
}

/// Runs `ip ARGS`; panics with its stderr if it fails.
fn ip(args: &[&str]) {
    let output = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("cannot run ip (install iproute2): {error}"));
    assert!(
        output.status.success(),
        "ip {} failed ({}): {} (the network tests need root)",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs a command for its stdout; `None` if it cannot run or fails.
fn quiet(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `iptables ACTION RULE…`; whether it worked. A machine without iptables
/// (or without dockerd's DROP policy) needs no rule.
fn iptables(action: &str, rule: &[String]) -> bool {
    let mut args = vec!["-w", action];
    args.extend(rule.iter().map(String::as_str));
    quiet("iptables", &args).is_some()
}

/// A third octet whose `10.231.C.0/24` no interface of this machine uses.
fn free_subnet_octet() -> u8 {
    let (a, b) = SUBNET_FIRST_OCTETS;
    let used = quiet("ip", &["-4", "-o", "addr", "show"]).unwrap_or_default();
    let start = (std::process::id() % 256) as u8;
    (0..=255u8)
        .map(|offset| start.wrapping_add(offset))
        .find(|c| !used.contains(&format!(" {a}.{b}.{c}.")))
        .expect("a free 10.231.C.0/24 subnet")
}

/// The process id in a name made here (`jnb4711x0`, `jnv4711x0h1`,
/// `jobs-e2e-4711x0-h1`).
fn owner_pid(name: &str, prefix: &str) -> Option<u32> {
    let rest = name.strip_prefix(prefix)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    rest[digits.len()..].starts_with('x').then_some(())?;
    digits.parse().ok()
}

fn owner_is_gone(name: &str, prefix: &str) -> bool {
    owner_pid(name, prefix)
        .is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
}

/// Removes whatever carries exactly the names [`Network::create`] is about
/// to make for `tag`; nothing if none exists.
fn remove_names_of(tag: &str, hosts: usize) {
    for index in 1..=hosts {
        let netns = format!("{NETNS_PREFIX}{tag}-h{index}");
        kill_processes_in(&netns);
        let _ = quiet("ip", &["netns", "delete", &netns]);
        let _ = quiet(
            "ip",
            &["link", "delete", &format!("{VETH_PREFIX}{tag}h{index}")],
        );
    }
    let bridge = format!("{BRIDGE_PREFIX}{tag}");
    let _ = quiet("ip", &["link", "delete", &bridge]);
    let rule = forward_rule(&bridge);
    while iptables("-D", &rule) {}
}

/// The FORWARD rule that lets traffic between `bridge`'s ports through.
fn forward_rule(bridge: &str) -> Vec<String> {
    ["FORWARD", "-i", bridge, "-o", bridge, "-j", "ACCEPT"]
        .iter()
        .map(|word| (*word).to_owned())
        .collect()
}

/// SIGKILL to every process in the namespace `name`: the workers a killed
/// test left behind, which would otherwise keep its namespace alive.
fn kill_processes_in(name: &str) {
    let pids = quiet("ip", &["netns", "pids", name]).unwrap_or_default();
    for pid in pids
        .lines()
        .filter_map(|line| line.trim().parse::<i32>().ok())
    {
        // SAFETY: kill(2) on a process of a namespace that only a test of
        // this harness made, and whose test process is gone.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// SIGKILL to every process listening on the address of `bridge`: the
/// API and the private PostgreSQL, RabbitMQ and moto a killed test left (only a
/// test's services listen on a bridge made here).
fn kill_listeners_on(bridge: &str) {
    let addresses = quiet("ip", &["-4", "-o", "addr", "show", "dev", bridge]).unwrap_or_default();
    // `7: jnb4711x0    inet 10.231.5.1/24 brd … scope global jnb4711x0`.
    let ips = addresses.lines().filter_map(|line| {
        let mut words = line.split_whitespace();
        words.find(|word| *word == "inet")?;
        words.next()?.split('/').next().map(str::to_owned)
    });
    for ip in ips {
        let listeners = quiet("ss", &["-Htlnp", "src", &ip]).unwrap_or_default();
        // `LISTEN 0 200 10.231.5.1:43983 0.0.0.0:* users:(("postgres",pid=31788,fd=6))`.
        for pid in listeners.split("pid=").skip(1) {
            let digits: String = pid.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(pid) = digits.parse::<i32>() {
                // SAFETY: kill(2) on a process that listens on a bridge of
                // a test whose process is gone.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

/// Removes the namespaces, bridges, veths and FORWARD rules of runs whose
/// process is gone (a crash, a kill -9 of the test), and the processes they
/// left: workers in the namespaces, services on the bridge's address.
fn remove_leftovers() {
    let namespaces = quiet("ip", &["netns", "list"]).unwrap_or_default();
    for name in namespaces
        .lines()
        .filter_map(|line| line.split_whitespace().next())
    {
        if owner_is_gone(name, NETNS_PREFIX) {
            kill_processes_in(name);
            let _ = quiet("ip", &["netns", "delete", name]);
        }
    }
    let links = quiet("ip", &["-o", "link", "show"]).unwrap_or_default();
    for line in links.lines() {
        // `7: jnb4711x0: <…>` or `8: jnv4711x0h1@if9: <…>`.
        let Some(name) = line.split(": ").nth(1) else {
            continue;
        };
        let name = name.split('@').next().unwrap_or(name);
        if owner_is_gone(name, BRIDGE_PREFIX) {
            kill_listeners_on(name);
        }
        if owner_is_gone(name, BRIDGE_PREFIX) || owner_is_gone(name, VETH_PREFIX) {
            let _ = quiet("ip", &["link", "delete", name]);
        }
    }
    let rules = quiet("iptables", &["-w", "-S", "FORWARD"]).unwrap_or_default();
    for rule in rules.lines() {
        let words: Vec<String> = rule.split_whitespace().map(str::to_owned).collect();
        let leftover = words.iter().any(|word| owner_is_gone(word, BRIDGE_PREFIX));
        if leftover && words.first().is_some_and(|word| word == "-A") {
            iptables("-D", &words[1..]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::owner_pid;

    #[test]
    fn the_owner_of_a_name_is_read_back_and_other_names_are_not_ours() {
        assert_eq!(owner_pid("jnb4711x0", "jnb"), Some(4711));
        assert_eq!(owner_pid("jnv4711x2h1", "jnv"), Some(4711));
        assert_eq!(owner_pid("jobs-e2e-4711x0-h3", "jobs-e2e-"), Some(4711));
        assert_eq!(owner_pid("jnbridge", "jnb"), None);
        assert_eq!(owner_pid("docker0", "jnb"), None);
        assert_eq!(owner_pid("jobs-e2e-x0", "jobs-e2e-"), None);
    }
}
