//! A fake of the API, just real enough to drive the `jobs` binary: plain
//! HTTP/1.1 over a socket on 127.0.0.1:0, one request per connection, with
//! answers scripted per test. It records every request, so that tests can
//! check what the CLI sent (headers such as `Last-Event-ID`, JSON bodies).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The path with its query, as sent.
    pub target: String,
    /// Header names in lowercase.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

pub enum Reply {
    Json(u16, serde_json::Value),
    /// A Server-Sent Events body, then the connection is closed, or held
    /// open without a word when `hold_open` is set.
    Events {
        events: Vec<String>,
        hold_open: bool,
    },
}

/// Answers a request; the number is how many earlier requests had the same
/// method and path, so that a script can answer a reconnect differently.
pub type Script = dyn Fn(&Request, usize) -> Reply + Send + Sync;

pub struct FakeApi {
    pub url: String,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl FakeApi {
    pub async fn start(script: impl Fn(&Request, usize) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests: Arc<Mutex<Vec<Request>>> = Arc::default();
        let script: Arc<Script> = Arc::new(script);
        let recorded = requests.clone();
        tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(serve(socket, script.clone(), recorded.clone()));
            }
        });
        Self { url, requests }
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    pub fn requests_to(&self, path: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|request| request.path() == path)
            .collect()
    }

    /// Waits until the CLI has sent a request to `path`.
    pub async fn until_requested(&self, path: &str) {
        for _ in 0..500 {
            if !self.requests_to(path).is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the CLI never requested {path}");
    }
}

async fn serve(mut socket: TcpStream, script: Arc<Script>, requests: Arc<Mutex<Vec<Request>>>) {
    let Some(request) = read_request(&mut socket).await else {
        return;
    };
    let earlier = {
        let mut requests = requests.lock().unwrap();
        let earlier = requests
            .iter()
            .filter(|seen| seen.method == request.method && seen.path() == request.path())
            .count();
        requests.push(request.clone());
        earlier
    };
    match script(&request, earlier) {
        Reply::Json(status, body) => {
            let body = body.to_string();
            let head = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = socket.write_all(head.as_bytes()).await;
            let _ = socket.write_all(body.as_bytes()).await;
        }
        Reply::Events { events, hold_open } => {
            let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                        cache-control: no-cache\r\nconnection: close\r\n\r\n";
            let _ = socket.write_all(head.as_bytes()).await;
            for event in events {
                let _ = socket.write_all(event.as_bytes()).await;
                let _ = socket.flush().await;
            }
            if hold_open {
                tokio::time::sleep(Duration::from_secs(600)).await;
            }
        }
    }
    let _ = socket.shutdown().await;
}

async fn read_request(socket: &mut TcpStream) -> Option<Request> {
    let mut buffer = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let read = socket.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
        if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break end + 4;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let target = request_line.next()?.to_owned();
    let headers: HashMap<String, String> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_lowercase(), value.trim().to_owned()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|length| length.parse().ok())
        .unwrap_or(0);
    let mut body = buffer[head_end..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        let read = socket.read(&mut chunk).await.ok()?;
        if read == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..read]);
    }
    Some(Request {
        method,
        target,
        headers,
        body,
    })
}
