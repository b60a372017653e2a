//! A proxy on a Unix socket in front of the Docker engine that stalls the
//! worker's container starts (or creates), to hold a worker at the one
//! moment a crash test needs: its start recorded, the container's start not
//! seen through (or its job claimed, no container made yet).
//!
//! Everything else passes through byte for byte (attaches and execs
//! included: a hijacked connection is only bytes both ways). A `POST
//! …/containers/ID/start` (or `…/containers/create`) is recognised in what
//! the client sends; then, as [`StartHold`] says, the request is never
//! forwarded, or forwarded with its response never delivered. The held
//! connection stays open, as a slow engine's would, until the client goes
//! away. A proxy started disarmed ([`DockerProxy::start_disarmed`]) passes
//! everything until [`DockerProxy::arm`].
//!
//! A slow proxy ([`DockerProxy::start_slow`]) holds nothing; it is a slow
//! engine disk as the worker meets it ([`SlowEngine`]).

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// What the proxy does with a container start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartHold {
    /// The engine never hears of it: the container stays `created`.
    Before,
    /// The engine starts the container; the client never hears back.
    After,
    /// Not the start but the create: the engine never hears of it, so the
    /// job stays claimed (`starting`) with no container and no start
    /// recorded.
    CreateBefore,
    /// A warm container's job: an attach with stdin goes through, and what
    /// the client then writes on it (the job's spec) is swallowed, so the
    /// shim in the container goes on waiting with the start recorded.
    WarmSpec,
}

/// A slow disk under the engine, as the worker meets it: every request
/// waits `latency` before the engine hears of it (a container's layer
/// made, started, removed), and files copied into or out of a container
/// (the archive API: uploads, artifacts, the shim's log read back) move at
/// `archive_bytes_per_second`. The worker sees its host's disk only
/// through the engine.
#[derive(Clone, Copy, Debug)]
pub struct SlowEngine {
    pub latency: Duration,
    pub archive_bytes_per_second: u64,
}

impl SlowEngine {
    /// How long `bytes` of an archive take.
    fn archive_time(&self, bytes: usize) -> Duration {
        Duration::from_secs_f64(bytes as f64 / self.archive_bytes_per_second as f64)
    }
}

pub struct DockerProxy {
    socket: PathBuf,
    held: Arc<AtomicUsize>,
    armed: Arc<AtomicBool>,
}

impl DockerProxy {
    /// Listens on `socket` and forwards to the engine of this machine
    /// (`DOCKER_HOST` if it names a Unix socket, else the default one).
    pub fn start(socket: &Path, hold: StartHold) -> DockerProxy {
        let proxy = DockerProxy::start_disarmed(socket, hold);
        proxy.arm();
        proxy
    }

    /// Like [`Self::start`], passing everything through until [`Self::arm`].
    pub fn start_disarmed(socket: &Path, hold: StartHold) -> DockerProxy {
        DockerProxy::serve(socket, Some(hold), None)
    }

    /// A proxy that holds nothing and is as slow as `slow` says.
    pub fn start_slow(socket: &Path, slow: SlowEngine) -> DockerProxy {
        DockerProxy::serve(socket, None, Some(slow))
    }

    fn serve(socket: &Path, hold: Option<StartHold>, slow: Option<SlowEngine>) -> DockerProxy {
        let _ = std::fs::remove_file(socket);
        let listener = UnixListener::bind(socket).expect("bind the Docker proxy's socket");
        let upstream = engine_socket();
        let held = Arc::new(AtomicUsize::new(0));
        let armed = Arc::new(AtomicBool::new(false));
        let counting = Arc::clone(&held);
        let arming = Arc::clone(&armed);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                let Ok(server) = UnixStream::connect(&upstream) else {
                    continue;
                };
                let hold = Hold {
                    what: hold,
                    armed: Arc::clone(&arming),
                    held: Arc::clone(&counting),
                };
                relay(client, server, hold, slow);
            }
        });
        DockerProxy {
            socket: socket.to_owned(),
            held,
            armed,
        }
    }

    /// Holds every start (or create) from now on.
    pub fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    /// The `DOCKER_HOST` value that goes through the proxy.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// How many container starts (or creates) it has held so far.
    pub fn held_starts(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }
}

impl Drop for DockerProxy {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
    }
}

fn engine_socket() -> PathBuf {
    match std::env::var("DOCKER_HOST") {
        Ok(host) if host.starts_with("unix://") => PathBuf::from(&host["unix://".len()..]),
        _ => PathBuf::from("/var/run/docker.sock"),
    }
}

/// What one connection holds, and whether it holds yet.
struct Hold {
    what: Option<StartHold>,
    armed: Arc<AtomicBool>,
    held: Arc<AtomicUsize>,
}

impl Hold {
    /// Whether `chunk` begins a request to hold now.
    fn holds(&self, chunk: &[u8]) -> bool {
        let request = match self.what {
            None => false,
            Some(StartHold::Before | StartHold::After) => is_container_start(chunk),
            Some(StartHold::CreateBefore) => is_container_create(chunk),
            Some(StartHold::WarmSpec) => is_stdin_attach(chunk),
        };
        request && self.armed.load(Ordering::SeqCst)
    }
}

/// Two copy threads for one connection. `muted` stops the engine's replies
/// reaching the client once a start went through under [`StartHold::After`].
fn relay(client: UnixStream, server: UnixStream, hold: Hold, slow: Option<SlowEngine>) {
    let muted = Arc::new(AtomicBool::new(false));
    // Whether this connection's latest request is an archive's.
    let archive = Arc::new(AtomicBool::new(false));
    let archive_of_server = Arc::clone(&archive);
    let (Ok(mut from_client), Ok(mut to_server)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let muting = Arc::clone(&muted);
    std::thread::spawn(move || {
        let mut buffer = vec![0u8; 64 * 1024];
        while let Ok(n) = from_client.read(&mut buffer) {
            if n == 0 {
                break;
            }
            let chunk = &buffer[..n];
            if let Some(slow) = slow {
                if request_line(chunk).is_some() {
                    archive.store(is_archive_request(chunk), Ordering::SeqCst);
                    std::thread::sleep(slow.latency);
                }
                if archive.load(Ordering::SeqCst) {
                    std::thread::sleep(slow.archive_time(n));
                }
            }
            if hold.holds(chunk) {
                hold.held.fetch_add(1, Ordering::SeqCst);
                match hold.what.expect("holds only with a hold") {
                    // Swallowed: what follows on this connection waits for
                    // a reply that never comes, so nothing else is sent.
                    StartHold::Before | StartHold::CreateBefore => {
                        let _ = std::io::copy(&mut from_client, &mut std::io::sink());
                        break;
                    }
                    StartHold::After => muting.store(true, Ordering::SeqCst),
                    // The attach goes through; all that follows on it is
                    // swallowed.
                    StartHold::WarmSpec => {
                        if to_server.write_all(chunk).is_err() {
                            break;
                        }
                        let _ = std::io::copy(&mut from_client, &mut std::io::sink());
                        break;
                    }
                }
            }
            if to_server.write_all(chunk).is_err() {
                break;
            }
        }
        // Only the half the client closed: an attach whose stdin ended
        // (the worker shuts its input down) still reads the container's
        // output on this connection.
        let _ = to_server.shutdown(std::net::Shutdown::Write);
    });
    let (Ok(mut from_server), mut to_client) = (server.try_clone(), client) else {
        return;
    };
    std::thread::spawn(move || {
        let mut buffer = vec![0u8; 64 * 1024];
        while let Ok(n) = from_server.read(&mut buffer) {
            if n == 0 || muted.load(Ordering::SeqCst) {
                break;
            }
            if let Some(slow) = slow.filter(|_| archive_of_server.load(Ordering::SeqCst)) {
                std::thread::sleep(slow.archive_time(n));
            }
            if to_client.write_all(&buffer[..n]).is_err() {
                break;
            }
        }
        if !muted.load(Ordering::SeqCst) {
            let _ = to_client.shutdown(std::net::Shutdown::Write);
        }
    });
}

/// Whether `chunk` begins a `POST …/containers/ID/start` request (an
/// exec's start is `/exec/ID/start` and passes).
fn is_container_start(chunk: &[u8]) -> bool {
    post_path(chunk).is_some_and(|parts| matches!(parts.as_slice(), [.., "containers", _, "start"]))
}

/// Whether `chunk` begins a `POST …/containers/ID/attach` request with
/// `stdin=1` (or `true`).
fn is_stdin_attach(chunk: &[u8]) -> bool {
    let Some(parts) = post_path(chunk) else {
        return false;
    };
    let line = chunk
        .split(|&byte| byte == b'\r')
        .next()
        .unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    matches!(parts.as_slice(), [.., "containers", _, "attach"])
        && (line.contains("stdin=1") || line.contains("stdin=true"))
}

/// Whether `chunk` begins a `POST …/containers/create` request.
fn is_container_create(chunk: &[u8]) -> bool {
    post_path(chunk).is_some_and(|parts| matches!(parts.as_slice(), [.., "containers", "create"]))
}

/// The path segments of a `POST` request that `chunk` begins.
fn post_path(chunk: &[u8]) -> Option<Vec<&str>> {
    match request_line(chunk)? {
        ("POST", parts) => Some(parts),
        _ => None,
    }
}

/// The method and path segments of the HTTP request that `chunk` begins.
fn request_line(chunk: &[u8]) -> Option<(&str, Vec<&str>)> {
    let line = chunk.split(|&byte| byte == b'\r').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.split(' ');
    let (Some(method), Some(target), Some(version)) = (words.next(), words.next(), words.next())
    else {
        return None;
    };
    if !version.starts_with("HTTP/") || !target.starts_with('/') {
        return None;
    }
    let path = target.split('?').next().unwrap_or_default();
    Some((method, path.trim_start_matches('/').split('/').collect()))
}

/// Whether `chunk` begins a request of the archive API (a file copied into
/// or out of a container).
fn is_archive_request(chunk: &[u8]) -> bool {
    request_line(chunk)
        .is_some_and(|(_, parts)| matches!(parts.as_slice(), [.., "containers", _, "archive"]))
}

#[cfg(test)]
mod tests {
    use super::{is_archive_request, is_container_create, is_container_start, is_stdin_attach};

    #[test]
    fn archive_requests_are_told_from_the_rest() {
        assert!(is_archive_request(
            b"PUT /v1.41/containers/abc/archive?path=%2F HTTP/1.1\r\n\r\n"
        ));
        assert!(is_archive_request(
            b"GET /containers/abc/archive?path=/tmp/x HTTP/1.1\r\n\r\n"
        ));
        assert!(!is_archive_request(
            b"POST /v1.41/containers/abc/start HTTP/1.1\r\n\r\n"
        ));
        // Bytes inside an upload's body that happen to look like a path.
        assert!(!is_archive_request(b"PUT /containers/abc/archive"));
        assert!(!is_archive_request(b"\x00\x01binary"));
    }

    #[test]
    fn only_a_container_start_request_is_held() {
        assert!(is_container_start(
            b"POST /v1.41/containers/abc/start HTTP/1.1\r\nHost: d\r\n\r\n"
        ));
        assert!(is_container_start(
            b"POST /containers/abc/start?detachKeys=x HTTP/1.1\r\n\r\n"
        ));
        assert!(!is_container_start(
            b"POST /v1.41/exec/abc/start HTTP/1.1\r\n\r\n"
        ));
        assert!(!is_container_start(
            b"GET /v1.41/containers/abc/start HTTP/1.1\r\n\r\n"
        ));
        assert!(!is_container_start(
            b"POST /v1.41/containers/abc/attach HTTP/1.1\r\n\r\n"
        ));
        assert!(!is_container_start(b"\x00\x01binary"));
    }

    #[test]
    fn only_an_attach_with_stdin_is_held_as_a_warm_spec() {
        assert!(is_stdin_attach(
            b"POST /v1.41/containers/abc/attach?stdin=true&stdout=true HTTP/1.1\r\n\r\n"
        ));
        assert!(!is_stdin_attach(
            b"POST /v1.41/containers/abc/attach?stdin=false&stdout=true HTTP/1.1\r\n\r\n"
        ));
        assert!(!is_stdin_attach(
            b"POST /v1.41/containers/abc/start?stdin=true HTTP/1.1\r\n\r\n"
        ));
    }

    #[test]
    fn only_a_container_create_request_is_held_as_a_create() {
        assert!(is_container_create(
            b"POST /v1.41/containers/create?name=x HTTP/1.1\r\n\r\n"
        ));
        assert!(!is_container_create(
            b"POST /v1.41/containers/abc/start HTTP/1.1\r\n\r\n"
        ));
        assert!(!is_container_create(
            b"POST /v1.41/exec/abc/create HTTP/1.1\r\n\r\n"
        ));
    }
}
