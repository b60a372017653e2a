//! A dockerd of a test's own: its own data root, exec root, pid file and
//! socket, no bridge, no iptables, in a network namespace of its own so
//! that it cannot touch the host's. Tests that restart the engine or fill
//! its disk use it, never the shared one; the worker reaches it with
//! `DOCKER_HOST` ([`PrivateDockerd::host`]).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{TestEnv, wait_until};

const DEADLINE: Duration = Duration::from_secs(90);

/// A dockerd of the test's own, stopped and removed on drop.
pub struct PrivateDockerd {
    dir: PathBuf,
    child: Option<Child>,
}

impl PrivateDockerd {
    pub fn start(dir: PathBuf) -> Self {
        std::fs::create_dir_all(&dir).unwrap();
        let mut dockerd = PrivateDockerd { dir, child: None };
        dockerd.spawn();
        dockerd
    }

    /// Like [`Self::start`], with its data root (images, container layers
    /// and volumes) on a disk of its own of `mib` MiB (a tmpfs), which
    /// [`Self::fill_disk`] fills.
    pub fn start_on_own_disk(dir: PathBuf, mib: u64) -> Self {
        let data = dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m")])
            .arg("tmpfs")
            .arg(&data)
            .status()
            .expect("mount runs");
        assert!(mounted.success(), "mounting the private dockerd's disk");
        PrivateDockerd::start(dir)
    }

    /// Fills the engine's own disk ([`Self::start_on_own_disk`]) with a
    /// file until no byte is left; returns how many bytes it took.
    pub fn fill_disk(&self) -> u64 {
        crate::services::fill_with_file(&self.filler())
    }

    /// Frees what [`Self::fill_disk`] took.
    pub fn free_disk(&self) {
        std::fs::remove_file(self.filler()).expect("remove the filler file");
    }

    /// The engine's data root (`--data-root`).
    pub fn data_root(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn filler(&self) -> PathBuf {
        self.data_root().join("filler")
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.dir.join("docker.sock").display())
    }

    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("dockerd.log"))
            .unwrap();
        // In a network namespace of its own: a dockerd with `--bridge=none`
        // deletes the host's `docker0` at start, which would cut the shared
        // engine's containers (and every other test) off their bridge.
        let child = Command::new("unshare")
            .args(["--net", "--", "dockerd"])
            .arg("--data-root")
            .arg(self.dir.join("data"))
            .arg("--exec-root")
            .arg(self.dir.join("exec"))
            .arg("--pidfile")
            .arg(self.dir.join("dockerd.pid"))
            .args(["-H", &self.host()])
            .args(["--bridge=none", "--iptables=false", "--ip-masq=false"])
            .args(["--storage-driver=vfs"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("dockerd runs");
        self.child = Some(child);
        wait_until("the private dockerd to answer", DEADLINE, || {
            self.docker(&["info"]).then_some(())
        });
    }

    /// Runs `docker` against this engine; whether it succeeded.
    pub fn docker(&self, args: &[&str]) -> bool {
        Command::new("docker")
            .args(["-H", &self.host()])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }

    pub fn load_test_image(&self) {
        let mut save = Command::new("docker")
            .args(["save", crate::TEST_IMAGE])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let loaded = Command::new("docker")
            .args(["-H", &self.host(), "load", "-q"])
            .stdin(save.stdout.take().unwrap())
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(save.wait().unwrap().success(), "docker save");
        assert!(
            loaded.success(),
            "loading the test image into the private dockerd"
        );
    }

    /// SIGTERM, as a service manager's restart sends, and waits for exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            wait_until("the private dockerd to exit", DEADLINE, || {
                child.try_wait().ok().flatten().map(|_| ())
            });
        }
    }
}

impl Drop for PrivateDockerd {
    fn drop(&mut self) {
        self.stop();
        let _ = Command::new("umount")
            .arg("-R")
            .arg(self.dir.join("data"))
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A directory short enough for the engine's unix sockets (108 bytes).
pub fn short_dir(env: &TestEnv) -> PathBuf {
    let unique = env.worker_label();
    let tail = &unique[unique.len().saturating_sub(12)..];
    std::env::temp_dir().join(format!("jobs-dockerd-{tail}"))
}
