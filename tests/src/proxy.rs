//! A TCP proxy whose live connections a test can cut, to drop a client's
//! connection to the API the way a network would, while the API, the
//! worker and their own connections carry on.
//!
//! Plain threads: two copy loops per connection, and a listener that keeps
//! accepting after a cut, so that the client can reconnect through it.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

pub struct CutProxy {
    address: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Shared {
    /// Where connections go; none are taken before it is set.
    upstream: Mutex<Option<String>>,
    /// Both ends of every connection not cut yet.
    live: Mutex<Vec<(TcpStream, TcpStream)>>,
    accepted: AtomicUsize,
    stopping: AtomicBool,
}

impl CutProxy {
    /// Listens on 127.0.0.1 (a free port) and forwards every connection to
    /// `upstream` (`host:port`).
    pub fn start(upstream: &str) -> CutProxy {
        let proxy = CutProxy::start_unrouted();
        proxy.route_to(upstream);
        proxy
    }

    /// Listens before its upstream is known, so that its URL can be given
    /// to a server (as the address others reach it by) before that server
    /// starts; connections before [`CutProxy::route_to`] are refused.
    pub fn start_unrouted() -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let address = listener.local_addr().expect("the proxy's address");
        let shared = Arc::new(Shared::default());
        let accepting = Arc::clone(&shared);
        let acceptor = std::thread::spawn(move || {
            for client in listener.incoming() {
                if accepting.stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let upstream = accepting.upstream.lock().unwrap().clone();
                let Some(Ok(server)) = upstream.map(TcpStream::connect) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                if let (Ok(client_copy), Ok(server_copy)) = (client.try_clone(), server.try_clone())
                {
                    accepting
                        .live
                        .lock()
                        .unwrap()
                        .push((client_copy, server_copy));
                }
                // Counted once it can be cut: a test that saw the count go
                // up may cut it at once.
                accepting.accepted.fetch_add(1, Ordering::SeqCst);
                forward(&client, &server);
                forward(&server, &client);
            }
        });
        CutProxy {
            address,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// Forwards the connections from now on to `upstream` (`host:port`).
    pub fn route_to(&self, upstream: &str) {
        *self.shared.upstream.lock().unwrap() = Some(upstream.to_owned());
    }

    /// `http://127.0.0.1:PORT`, to give the client instead of the API's URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// How many connections it has accepted so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Cuts every live connection at once, both ways; returns how many.
    /// New connections are accepted as before.
    pub fn cut(&self) -> usize {
        let live = std::mem::take(&mut *self.shared.live.lock().unwrap());
        for (client, server) in &live {
            let _ = client.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
        }
        live.len()
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.cut();
        // Wake the listener so that it sees `stopping`.
        let _ = TcpStream::connect(self.address);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// Copies `from` to `to` in a thread until either side closes, then
/// closes both.
fn forward(from: &TcpStream, to: &TcpStream) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buffer[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};

    #[test]
    fn forwards_both_ways_and_cuts_live_connections_only() {
        // An echo server, one line per connection at a time.
        let echo = TcpListener::bind("127.0.0.1:0").unwrap();
        let echo_address = echo.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for stream in echo.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut writer = stream;
                    let mut line = String::new();
                    while reader.read_line(&mut line).unwrap_or(0) > 0 {
                        let _ = writer.write_all(line.as_bytes());
                        line.clear();
                    }
                });
            }
        });
        let proxy = CutProxy::start(&echo_address);
        let address = proxy.url().trim_start_matches("http://").to_owned();

        let mut first = TcpStream::connect(&address).unwrap();
        let mut reader = BufReader::new(first.try_clone().unwrap());
        first.write_all(b"hello\n").unwrap();
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert_eq!(line, "hello\n");

        assert_eq!(proxy.cut(), 1);
        line.clear();
        assert_eq!(reader.read_line(&mut line).unwrap_or(0), 0, "cut: {line:?}");

        let mut second = TcpStream::connect(&address).unwrap();
        let mut reader = BufReader::new(second.try_clone().unwrap());
        second.write_all(b"again\n").unwrap();
        line.clear();
        reader.read_line(&mut line).unwrap();
        assert_eq!(line, "again\n");
        assert_eq!(proxy.accepted(), 2);
    }
}
