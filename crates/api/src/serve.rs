//! The accept loop and the connections, HTTP or HTTPS, with the limits of
//! [`crate::connections`].
//!
//! `axum::serve` has no connection limit and no timeouts, so the loop is
//! run here with hyper's HTTP/1.1 server (axum serves HTTP/1.1 only; ALPN
//! says so). Each connection is a task that serves it and closes it at its
//! deadline, when the tracker asks (the limit), or at shutdown once its
//! request in progress is answered; its I/O notes when a request head
//! starts. Graceful shutdown is as `axum::serve`'s: stop accepting, let
//! requests in progress finish, close idle connections at once.

use std::{
    convert::Infallible,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Body,
    extract::ConnectInfo,
    http::{Request, StatusCode},
};
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpListener,
    sync::Semaphore,
};
use tokio_rustls::{TlsAcceptor, rustls::ServerConfig};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower::ServiceExt;

use crate::{
    connections::{Connection, RequestGuard, Tracker},
    tls::{HANDSHAKE_TIMEOUT, MAX_PENDING_HANDSHAKES},
};

/// How often a busy connection looks at its deadline again, at most; an
/// idle one sleeps until its deadline.
const BUSY_RECHECK: Duration = Duration::from_secs(5);

/// Serves `router` on `listener` until `shutdown`, then waits for the
/// connections to finish (the caller bounds that wait).
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    router: Router,
    tracker: Arc<Tracker>,
    shutdown: CancellationToken,
) {
    let tls = tls.map(|config| {
        (
            TlsAcceptor::from(config),
            Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES)),
        )
    });
    let connections = TaskTracker::new();
    loop {
        let (tcp, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // As axum does: errors of one connection are not worth
                    // a pause; running out of descriptors is, or the loop
                    // would spin.
                    if !is_connection_error(&error) {
                        tracing::error!(%error, "accepting a connection failed; retrying in 1s");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    continue;
                }
            },
        };
        let slot = match tracker.try_slot() {
            Some(slot) => slot,
            None => {
                // At the limit: the idlest connection makes room. With none
                // idle, wait for one to end; meanwhile new connections wait
                // in the kernel's accept queue.
                if !tracker.close_idlest() {
                    tracing::debug!(
                        limit = tracker.settings().max_connections,
                        "every connection is busy; a new one waits for a slot"
                    );
                }
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    slot = tracker.slot() => slot,
                }
            }
        };
        let _ = tcp.set_nodelay(true);
        let connection = tracker.register(slot);
        let router = router.clone();
        let shutdown = shutdown.clone();
        match &tls {
            None => {
                connections.spawn(serve_connection(tcp, peer, connection, router, shutdown));
            }
            Some((acceptor, handshakes)) => {
                let acceptor = acceptor.clone();
                let handshakes = handshakes.clone();
                connections.spawn(async move {
                    let handshake = async {
                        // The wait for a handshake slot counts in its time.
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
                            let _permit = handshakes.acquire().await;
                            acceptor.accept(tcp).await
                        })
                        .await
                    };
                    let tls = tokio::select! {
                        handshake = handshake => match handshake {
                            Ok(Ok(tls)) => tls,
                            Ok(Err(error)) => {
                                tracing::debug!(%peer, %error, "TLS handshake failed");
                                connection.finish();
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                connection.finish();
                                return;
                            }
                        },
                        () = connection.close_requested() => {
                            connection.finish();
                            return;
                        }
                        () = shutdown.cancelled() => {
                            connection.finish();
                            return;
                        }
                    };
                    serve_connection(tls, peer, connection, router, shutdown).await;
                });
            }
        }
    }
    // Stop accepting: new connections are refused from here on.
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// Serves one connection until it ends, its deadline passes, the tracker
/// asks it to close, or shutdown (once its request in progress is done).
async fn serve_connection<IO>(
    io: IO,
    peer: SocketAddr,
    connection: Arc<Connection>,
    router: Router,
    shutdown: CancellationToken,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(ActivityIo {
        inner: io,
        connection: connection.clone(),
    });
    let requests = connection.clone();
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        let guard = requests.request_started();
        let requests = requests.clone();
        request.extensions_mut().insert(ConnectInfo(peer));
        let router = router.clone();
        async move {
            let response = router
                .oneshot(request)
                .await
                .unwrap_or_else(|never: Infallible| match never {});
            if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                // A WebSocket: it holds its slot until it closes, and is
                // never idle.
                requests.finish();
            }
            Ok::<_, Infallible>(response.map(|body| {
                Body::new(GuardedBody {
                    inner: body,
                    _guard: guard,
                })
            }))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The deadlines are the tracker's (head and idle alike); hyper's own
    // header timeout would start at the end of each response instead of
    // the head's first byte.
    builder.timer(TokioTimer::new()).header_read_timeout(None);
    let served = builder.serve_connection(io, service).with_upgrades();
    tokio::pin!(served);
    let mut closing = false;
    loop {
        let deadline = connection.deadline();
        let wake = deadline.map_or_else(|| Instant::now() + BUSY_RECHECK, |(at, _)| at);
        tokio::select! {
            result = served.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
                break;
            }
            () = tokio::time::sleep_until(wake.into()) => {
                if let Some((at, reason)) = connection.deadline()
                    && at <= Instant::now()
                {
                    tracing::debug!(%peer, reason = reason.as_str(), "closing a connection");
                    connection.tracker().metrics().count_close(reason);
                    break;
                }
            }
            () = connection.close_requested(), if !closing => {
                if connection.is_idle() {
                    break;
                }
                served.as_mut().graceful_shutdown();
                closing = true;
            }
            () = shutdown.cancelled(), if !closing => {
                if connection.is_idle() {
                    break;
                }
                served.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
    connection.finish();
}

fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// The connection's I/O: notes every read, so that the first byte of a
/// request head starts the header timeout.
struct ActivityIo<IO> {
    inner: IO,
    connection: Arc<Connection>,
}

impl<IO: AsyncRead + Unpin> AsyncRead for ActivityIo<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.connection.on_read();
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for ActivityIo<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A response body that keeps its request in progress until it is sent to
/// the end (or dropped): a log stream is a busy connection.
struct GuardedBody {
    inner: Body,
    _guard: RequestGuard,
}

impl HttpBody for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::routing::get;
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpStream,
        sync::Notify,
    };

    use super::*;
    use crate::connections::{ConnectionMetrics, ConnectionSettings};

    fn tracker(max: usize) -> Arc<Tracker> {
        Tracker::new(
            ConnectionSettings {
                max_connections: max,
                header_read_timeout: Duration::from_secs(30),
                idle_timeout: Duration::from_secs(60),
            },
            ConnectionMetrics {
                open: prometheus::IntGauge::new("open", "open").unwrap(),
                closed: prometheus::IntCounterVec::new(
                    prometheus::Opts::new("closed", "closed"),
                    &["reason"],
                )
                .unwrap(),
            },
        )
    }

    #[tokio::test]
    async fn shutdown_lets_a_request_in_progress_finish_and_closes_idle_connections() {
        let release = Arc::new(Notify::new());
        let entered = Arc::new(Notify::new());
        let router = {
            let (release, entered) = (release.clone(), entered.clone());
            Router::new().route(
                "/slow",
                get(move || async move {
                    entered.notify_one();
                    release.notified().await;
                    "done"
                }),
            )
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve(listener, None, router, tracker(10), shutdown.clone()));

        let mut idle = TcpStream::connect(address).await.unwrap();
        let mut busy = TcpStream::connect(address).await.unwrap();
        busy.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        entered.notified().await;
        shutdown.cancel();

        // The idle connection is closed at once.
        let mut buffer = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), idle.read_to_end(&mut buffer))
            .await
            .expect("the idle connection is closed")
            .unwrap();
        assert!(buffer.is_empty());
        // The request in progress gets its answer, then the server stops.
        release.notify_one();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), busy.read_to_end(&mut answer))
            .await
            .expect("the busy connection is answered and closed")
            .unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("done"), "{answer}");
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("the server stops")
            .unwrap();
        // New connections are refused.
        assert!(TcpStream::connect(address).await.is_err());
    }
}
