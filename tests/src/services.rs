//! Private service instances that a fault test may stop, start, restart
//! and kill without disturbing anybody else.
//!
//! The shared PostgreSQL and RabbitMQ of `deploy/setup.sh` serve every
//! other test that runs at the same time (and other people's work on the
//! same machine): a fault test never touches them. Instead it starts its
//! own:
//! - [`PrivatePostgres`]: a cluster made with `initdb` in the test's log
//!   directory, run as the `postgres` OS user (PostgreSQL refuses root) on
//!   a free port, with its socket in its own directory;
//! - [`PrivateRabbit`]: a RabbitMQ node of its own name
//!   (`jobs-fault-N@localhost`), AMQP and distribution ports, data and log
//!   directories and config file, with no plugins (so no management port
//!   to clash on). It registers with the machine's one `epmd`, as every
//!   node does, under its own name;
//! - [`PrivateMoto`]: an S3 server (moto, as `deploy/setup.sh` installs it)
//!   of its own on a free port.
//!
//! Each listens on 127.0.0.1 unless started on another address of this
//! machine (`start_on_address`), such as a bridge that network namespaces
//! reach it on ([`crate::netns`]); it then takes clients from that
//! address's subnet too.
//!
//! Both are torn down when dropped. Start-up times measured on the 2-core
//! CI machine under load: PostgreSQL about 2 s (initdb) plus 0.2 s,
//! RabbitMQ about 9 s per start.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::poll::poll_until;
use crate::slow_disk::SlowDisk;

const POSTGRES_BIN: &str = "/usr/lib/postgresql/15/bin";
/// The Debian package's own start script, which runs the node in the
/// foreground (the wrapper in /usr/sbin would switch to the `rabbitmq`
/// user and its shared home).
const RABBITMQ_SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";
/// moto's server, in the virtualenv `deploy/setup.sh` makes.
const MOTO_SERVER: &str = "/opt/jobs-moto/bin/moto_server";
/// How long a private service may take to answer after a start.
const SERVICE_START_TIMEOUT: Duration = Duration::from_secs(90);

/// Writes a file at `path` until its filesystem has no byte left; returns
/// how many bytes it took. Removing the file frees them again.
pub fn fill_with_file(path: &Path) -> u64 {
    use std::io::Write;
    let mut filler = File::create(path).expect("create the filler file");
    let block = vec![0u8; 1 << 20];
    let mut written = 0u64;
    while let Ok(n) = filler.write(&block) {
        if n == 0 {
            break;
        }
        written += n as u64;
    }
    written
}

/// A free TCP port on 127.0.0.1, as the kernel hands it out. Another
/// process could take it before the service binds it; the services here
/// bind within a second, and a clash fails the start loudly.
pub fn free_port() -> u16 {
    free_port_on(Ipv4Addr::LOCALHOST)
}

/// A free TCP port on `ip`, an address of this machine, as [`free_port`].
pub fn free_port_on(ip: Ipv4Addr) -> u16 {
    let listener = TcpListener::bind((ip, 0))
        .unwrap_or_else(|error| panic!("bind a free port on {ip}: {error}"));
    listener.local_addr().expect("a local address").port()
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
pub fn port_answers(port: u16) -> bool {
    address_answers(Ipv4Addr::LOCALHOST, port)
}

/// Whether something accepts TCP connections on `ip`:`port`.
pub fn address_answers(ip: Ipv4Addr, port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&SocketAddr::from((ip, port)), Duration::from_millis(200))
        .is_ok()
}

fn run_checked(command: &mut Command, what: &str) {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("{what}: cannot run: {error}"));
    assert!(
        output.status.success(),
        "{what} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A PostgreSQL cluster of one test. Its superuser is `jobs`, with trust
/// authentication on loopback and on its address's subnet (the cluster
/// lives for one test).
pub struct PrivatePostgres {
    dir: PathBuf,
    /// The cluster's data directory: `dir/data`, or `dir/disk/data` on a
    /// disk of its own.
    data: PathBuf,
    /// The mount point of its own disk, if it has one.
    disk: Option<PathBuf>,
    /// The address it listens on.
    pub host: Ipv4Addr,
    pub port: u16,
    running: bool,
    /// The latencies of its disk, if it is a slow one.
    slow: Option<SlowDisk>,
}

impl PrivatePostgres {
    /// `initdb`s a cluster in `parent/postgres` and starts it.
    pub fn start(parent: &Path) -> PrivatePostgres {
        PrivatePostgres::start_on(parent, None, Ipv4Addr::LOCALHOST)
    }

    /// Like [`Self::start`], listening on `host` (an address of this
    /// machine) instead of 127.0.0.1.
    pub fn start_on_address(parent: &Path, host: Ipv4Addr) -> PrivatePostgres {
        PrivatePostgres::start_on(parent, None, host)
    }

    /// Like [`Self::start`], with the data directory on a disk of its own
    /// of `mib` MiB (a tmpfs), which [`Self::fill_disk`] fills. Its server
    /// log stays outside, so that it can say what happened.
    pub fn start_on_own_disk(parent: &Path, mib: u64) -> PrivatePostgres {
        PrivatePostgres::start_on(parent, Some(mib), Ipv4Addr::LOCALHOST)
    }

    /// Like [`Self::start`], on a slow disk ([`SlowDisk`]), with `fsync` on
    /// so that every commit waits for it.
    pub fn start_on_slow_disk(parent: &Path, slow: SlowDisk) -> PrivatePostgres {
        let mut postgres = PrivatePostgres::init(parent, None, Ipv4Addr::LOCALHOST);
        postgres.slow = Some(slow);
        postgres.start_again();
        postgres
    }

    fn start_on(parent: &Path, disk_mib: Option<u64>, host: Ipv4Addr) -> PrivatePostgres {
        let mut postgres = PrivatePostgres::init(parent, disk_mib, host);
        postgres.start_again();
        postgres
    }

    /// `initdb`s a cluster, not started.
    fn init(parent: &Path, disk_mib: Option<u64>, host: Ipv4Addr) -> PrivatePostgres {
        let dir = parent.join("postgres");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the postgres directory");
        let disk = disk_mib.map(|mib| {
            let disk = dir.join("disk");
            std::fs::create_dir_all(&disk).expect("create the disk's mount point");
            run_checked(
                Command::new("mount")
                    .args(["-t", "tmpfs", "-o", &format!("size={mib}m,mode=0755")])
                    .arg("tmpfs")
                    .arg(&disk),
                "mount the private postgres's disk",
            );
            disk
        });
        run_checked(
            Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir),
            "chown the postgres directory",
        );
        let data = disk.as_deref().unwrap_or(&dir).join("data");
        let mut initdb = as_postgres(&format!("{POSTGRES_BIN}/initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "jobs", "--auth=trust", "-E", "UTF8", "--no-sync"]);
        run_checked(&mut initdb, "initdb of the private cluster");
        if !host.is_loopback() {
            // initdb trusts loopback only; clients come from the subnet.
            let hba = data.join("pg_hba.conf");
            let mut lines = std::fs::read_to_string(&hba).expect("read pg_hba.conf");
            lines.push_str("host all all samenet trust\n");
            std::fs::write(&hba, lines).expect("write pg_hba.conf");
        }
        PrivatePostgres {
            dir,
            data,
            disk,
            host,
            port: free_port_on(host),
            running: false,
            slow: None,
        }
    }

    /// The server's URL without a database name.
    pub fn url(&self) -> String {
        format!("postgres://jobs@{}:{}", self.host, self.port)
    }

    fn pg_ctl(&self, args: &[&str]) -> Command {
        let pg_ctl = format!("{POSTGRES_BIN}/pg_ctl");
        let mut command = match &self.slow {
            // The server it starts inherits the slow disk.
            Some(slow) => {
                let mut command = as_postgres("/usr/bin/env");
                for (name, value) in slow.env() {
                    command.arg(format!("{name}={value}"));
                }
                command.arg(pg_ctl);
                command
            }
            None => as_postgres(&pg_ctl),
        };
        command.arg("-D").arg(&self.data).args(args);
        command
    }

    /// Starts the stopped cluster on the same port, and waits until it
    /// accepts connections.
    pub fn start_again(&mut self) {
        // No Unix socket: the log directory's path is longer than a socket
        // path may be (107 bytes), and the servers connect over TCP.
        // fsync is off unless the disk is slow on purpose: then every
        // commit waits for it.
        let fsync = if self.slow.is_some() { "on" } else { "off" };
        let options = format!(
            "-p {} -k '' -c listen_addresses={} -c fsync={fsync} -c max_connections=200",
            self.port, self.host
        );
        let log = self.dir.join("server.log");
        let log = log.to_str().expect("a UTF-8 path");
        // After a kill, the old backends notice the postmaster's death and
        // exit within moments; until then a start is refused because they
        // still hold the shared memory.
        let deadline = Instant::now() + SERVICE_START_TIMEOUT;
        loop {
            let output = self
                .pg_ctl(&["-l", log, "-o", &options, "-w", "-t", "60", "start"])
                .stdin(Stdio::null())
                .output()
                .expect("run pg_ctl");
            if output.status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "starting the private postgres failed: {}; see {log}",
                String::from_utf8_lossy(&output.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        self.running = true;
    }

    /// A fast shutdown: sessions are disconnected, the cluster stops.
    pub fn stop(&mut self) {
        run_checked(
            &mut self.pg_ctl(&["-m", "fast", "-w", "stop"]),
            "stopping the private postgres",
        );
        self.running = false;
    }

    /// Stops and starts it again, as an operator's restart does.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// SIGKILL to the postmaster, as a crash would; its backends exit when
    /// they notice. [`Self::start_again`] then recovers from the WAL.
    pub fn kill(&mut self) {
        let pid_file = self.data.join("postmaster.pid");
        let text = std::fs::read_to_string(&pid_file).expect("postmaster.pid exists");
        let pid: libc::pid_t = text
            .lines()
            .next()
            .and_then(|line| line.trim().parse().ok())
            .expect("postmaster.pid starts with a pid");
        // SAFETY: kill(2) on the postmaster this cluster started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let gone = poll_until(Duration::from_secs(30), || (!self.answers()).then_some(()));
        assert!(gone.is_some(), "the killed postgres still listens");
        self.running = false;
    }
}

impl PrivatePostgres {
    /// Fills the cluster's own disk ([`Self::start_on_own_disk`]) with a
    /// file until no byte is left; returns how many bytes it took.
    pub fn fill_disk(&self) -> u64 {
        fill_with_file(&self.filler())
    }

    /// Frees what [`Self::fill_disk`] took.
    pub fn free_disk(&self) {
        std::fs::remove_file(self.filler()).expect("remove the filler file");
    }

    fn filler(&self) -> PathBuf {
        self.disk
            .as_ref()
            .expect("a cluster on its own disk")
            .join("filler")
    }

    /// Whether the server accepts connections.
    pub fn answers(&self) -> bool {
        address_answers(self.host, self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if self.running {
            let _ = self
                .pg_ctl(&["-m", "immediate", "-w", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        if let Some(disk) = &self.disk {
            let _ = Command::new("umount").arg("--lazy").arg(disk).status();
        }
    }
}

fn as_postgres(program: &str) -> Command {
    let mut command = Command::new("runuser");
    command.args(["-u", "postgres", "--", program]);
    command
}

/// A RabbitMQ node of one test. `guest`/`guest` may connect (from loopback,
/// or from anywhere on a node started on another address).
pub struct PrivateRabbit {
    dir: PathBuf,
    pub node_name: String,
    /// The address its AMQP port listens on.
    pub host: Ipv4Addr,
    pub port: u16,
    pub dist_port: u16,
    child: Option<Child>,
    /// When the process that has not answered yet was spawned.
    spawned_at: Option<Instant>,
    /// How long each start took until the AMQP port answered.
    pub start_times: Vec<Duration>,
}

impl PrivateRabbit {
    /// Starts a node with `extra_config` (lines of `rabbitmq.conf`, such as
    /// `consumer_timeout = 5000`) in `parent/rabbitmq`.
    pub fn start(parent: &Path, extra_config: &[&str]) -> PrivateRabbit {
        Self::start_on_address(parent, Ipv4Addr::LOCALHOST, extra_config)
    }

    /// Like [`Self::start`], its AMQP port on `host` (an address of this
    /// machine), where `guest` may log in from other hosts.
    pub fn start_on_address(parent: &Path, host: Ipv4Addr, extra_config: &[&str]) -> PrivateRabbit {
        let mut rabbit = Self::prepare(parent.join("rabbitmq"), host, extra_config);
        rabbit.start_again();
        rabbit
    }

    /// A node in `dir`, its AMQP port on `host`, configured but not started.
    pub(crate) fn prepare(dir: PathBuf, host: Ipv4Addr, extra_config: &[&str]) -> PrivateRabbit {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the rabbitmq directory");
        let port = free_port_on(host);
        let mut dist_port = free_port();
        while dist_port == port {
            dist_port = free_port();
        }
        let mut config = format!(
            "listeners.tcp.default = {host}:{port}\nloopback_users.guest = {}\n",
            host.is_loopback()
        );
        for line in extra_config {
            config.push_str(line);
            config.push('\n');
        }
        std::fs::write(dir.join("rabbitmq.conf"), config).expect("write rabbitmq.conf");
        std::fs::write(dir.join("enabled_plugins"), "[].\n").expect("write enabled_plugins");
        let unique = uuid::Uuid::now_v7().simple().to_string();
        PrivateRabbit {
            dir,
            node_name: format!("jobs-fault-{}@localhost", &unique[unique.len() - 12..]),
            host,
            port,
            dist_port,
            child: None,
            spawned_at: None,
            start_times: Vec::new(),
        }
    }

    /// The node's directory, also its `HOME` (where its Erlang cookie is).
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// `amqp://guest:guest@HOST:PORT/%2f`.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@{}:{}/%2f", self.host, self.port)
    }

    /// Starts the stopped node again on the same ports and data (durable
    /// queues and persistent messages survive), and waits for its AMQP port.
    pub fn start_again(&mut self) {
        self.spawn();
        self.wait_until_up();
    }

    /// Starts the node's process without waiting for it.
    pub(crate) fn spawn(&mut self) {
        assert!(self.child.is_none(), "the node runs already");
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.dir.join("server.out.log"))
            .expect("open the node's log");
        let started = Instant::now();
        let dir = &self.dir;
        let child = Command::new(RABBITMQ_SERVER)
            // Its own Erlang cookie, made on the first start.
            .env("HOME", dir)
            .env("RABBITMQ_NODENAME", &self.node_name)
            .env("RABBITMQ_NODE_IP_ADDRESS", self.host.to_string())
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env("RABBITMQ_PID_FILE", dir.join("pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("clone the log file")))
            .stderr(Stdio::from(log))
            // Its own process group, so that a kill reaches the Erlang VM
            // and its helpers, and nothing else.
            .process_group(0)
            .spawn()
            .expect("start rabbitmq-server");
        self.child = Some(child);
        self.spawned_at = Some(started);
    }

    /// Waits for the spawned node's AMQP port.
    pub(crate) fn wait_until_up(&mut self) {
        let started = self.spawned_at.take().expect("the node was spawned");
        let up = poll_until(SERVICE_START_TIMEOUT, || {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "the private rabbitmq exited with {status} while starting; see {}",
                    self.dir.join("server.out.log").display()
                );
            }
            address_answers(self.host, self.port).then_some(())
        });
        assert!(
            up.is_some(),
            "the private rabbitmq did not listen within {SERVICE_START_TIMEOUT:?}; see {}",
            self.dir.display()
        );
        self.start_times.push(started.elapsed());
    }

    fn signal_group(&self, signal: libc::c_int) {
        if let Some(child) = &self.child {
            // SAFETY: killpg(2) on the process group of the node we started.
            unsafe { libc::killpg(child.id() as libc::pid_t, signal) };
        }
    }

    fn reap(&mut self, timeout: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if poll_until(timeout, || child.try_wait().ok().flatten()).is_none() {
            // SAFETY: as above.
            unsafe { libc::killpg(child.id() as libc::pid_t, libc::SIGKILL) };
            let _ = child.wait();
        }
        // The VM may outlive the start script by a moment.
        let _ = poll_until(Duration::from_secs(10), || {
            (!address_answers(self.host, self.port) && !port_answers(self.dist_port)).then_some(())
        });
    }

    /// A clean stop (SIGTERM): the node closes its connections, as a
    /// broker restart does.
    pub fn stop(&mut self) {
        self.signal_group(libc::SIGTERM);
        self.reap(Duration::from_secs(30));
    }

    /// SIGKILL to the whole node, as a crash would.
    pub fn kill(&mut self) {
        self.signal_group(libc::SIGKILL);
        self.reap(Duration::from_secs(10));
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for PrivateRabbit {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An S3 server (moto) of one test, listening on `host`:`port`. Any bucket
/// is made by an unsigned PUT; any credentials are taken. Objects live in
/// its memory, and go with it on drop.
pub struct PrivateMoto {
    pub host: Ipv4Addr,
    pub port: u16,
    child: Child,
}

impl PrivateMoto {
    /// Starts moto on `host` (an address of this machine), its output in
    /// `parent/moto.log`, and waits for its port.
    pub fn start_on_address(parent: &Path, host: Ipv4Addr) -> PrivateMoto {
        assert!(
            Path::new(MOTO_SERVER).is_file(),
            "{MOTO_SERVER} is missing: run deploy/setup.sh"
        );
        let log = File::create(parent.join("moto.log")).expect("create moto's log");
        let port = free_port_on(host);
        let child = Command::new(MOTO_SERVER)
            .args(["-H", &host.to_string(), "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("clone the log file")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start moto_server");
        let mut moto = PrivateMoto { host, port, child };
        let up = poll_until(SERVICE_START_TIMEOUT, || {
            if let Some(status) = moto.child.try_wait().ok().flatten() {
                panic!("the private moto exited with {status} while starting; see its moto.log");
            }
            address_answers(host, port).then_some(())
        });
        assert!(
            up.is_some(),
            "the private moto did not listen within {SERVICE_START_TIMEOUT:?}"
        );
        moto
    }

    /// `http://HOST:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}:{}", self.host, self.port)
    }
}

impl Drop for PrivateMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
