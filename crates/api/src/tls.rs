//! Serving HTTPS: the certificate and key from files, and a listener that
//! hands `axum::serve` connections whose TLS handshake is already done.
//!
//! The TLS stack is rustls through tokio-rustls, with the aws-lc-rs
//! provider: the same crates and provider the CLI's reqwest already pulls
//! in, so the workspace carries one crypto stack, not two. Wrapping the
//! listener (rather than replacing `axum::serve` with another server crate)
//! keeps one serve loop, with the same graceful shutdown, for HTTP and HTTPS.

use std::{
    io,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::Context;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{Semaphore, mpsc},
    task::JoinHandle,
};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        ServerConfig,
        crypto::aws_lc_rs,
        pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    },
    server::TlsStream,
};

/// How long a client may take to finish its TLS handshake. A client that
/// opens a connection and says nothing must not hold a slot for ever.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How many handshakes may be in progress at once; further connections wait
/// to be accepted, as they would behind a full accept queue.
const MAX_PENDING_HANDSHAKES: usize = 256;
/// How many finished handshakes may wait for the server to take them.
const READY_QUEUE: usize = 64;

/// Where the server's certificate chain and private key are, both PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// Reads and checks both files. Every error names the file at fault, so
    /// that a typo in a path or a key of another certificate is obvious at
    /// startup rather than at the first client's handshake.
    pub fn load(&self) -> anyhow::Result<Arc<ServerConfig>> {
        let cert_path = &self.cert;
        let key_path = &self.key;
        let chain = read_certificates(cert_path)?;
        let key = PrivateKeyDer::from_pem_file(key_path).map_err(|error| {
            anyhow::anyhow!(
                "reading the TLS key {} (--tls-key): {}",
                key_path.display(),
                pem_error(&error)
            )
        })?;
        let provider = Arc::new(aws_lc_rs::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("choosing TLS protocol versions")?
            .with_no_client_auth()
            // rustls checks here that the key belongs to the first
            // certificate of the chain.
            .with_single_cert(chain, key)
            .with_context(|| {
                format!(
                    "the TLS key {} does not fit the certificate {}",
                    key_path.display(),
                    cert_path.display()
                )
            })?;
        // axum serves HTTP/1.1 only (its http2 feature is off); saying so in
        // ALPN keeps a client from expecting HTTP/2 on this connection.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

fn read_certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let chain = CertificateDer::pem_file_iter(path)
        .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
        .map_err(|error| {
            anyhow::anyhow!(
                "reading the TLS certificate {} (--tls-cert): {}",
                path.display(),
                pem_error(&error)
            )
        })?;
    if chain.is_empty() {
        anyhow::bail!(
            "reading the TLS certificate {} (--tls-cert): no PEM certificate in it",
            path.display()
        );
    }
    Ok(chain)
}

/// The PEM error in words: the I/O cause (no such file) when there is one.
fn pem_error(error: &tokio_rustls::rustls::pki_types::pem::Error) -> String {
    use tokio_rustls::rustls::pki_types::pem::Error;
    match error {
        Error::Io(io) => io.to_string(),
        Error::NoItemsFound => "no PEM item of the expected kind in it".to_owned(),
        other => format!("not valid PEM ({other:?})"),
    }
}

/// A listener whose connections have completed their TLS handshake.
///
/// Handshakes run in their own tasks, so that a slow or silent client delays
/// only itself, never the accepting of others; a failed handshake (a plain
/// HTTP client, an untrusting one) is logged and dropped.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_addr: SocketAddr,
    accept_loop: JoinHandle<()>,
}

impl TlsListener {
    /// Starts accepting on `listener`, bound to `local_addr`. Call from
    /// within a tokio runtime.
    pub fn new(listener: TcpListener, local_addr: SocketAddr, config: Arc<ServerConfig>) -> Self {
        let (sender, ready) = mpsc::channel(READY_QUEUE);
        let accept_loop = tokio::spawn(accept_loop(listener, TlsAcceptor::from(config), sender));
        Self {
            ready,
            local_addr,
            accept_loop,
        }
    }
}

impl Drop for TlsListener {
    /// `axum::serve` drops its listener when shutdown starts: stop
    /// accepting then, as it would with a plain `TcpListener`.
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accept loop only ends when aborted, by our own drop; wait
            // for ever rather than hand out a connection that is not there.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let pending = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
    loop {
        let Ok(permit) = pending.clone().acquire_owned().await else {
            return;
        };
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // As axum does for its own listener: errors of one
                // connection are not worth a pause; running out of file
                // descriptors is, or the loop would spin.
                if !is_connection_error(&error) {
                    tracing::error!(%error, "accepting a connection failed; retrying in 1s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => {
                    // The server may have stopped meanwhile: then the
                    // connection is simply closed.
                    let _ = ready.send((tls, peer)).await;
                }
                Ok(Err(error)) => {
                    tracing::debug!(%peer, %error, "TLS handshake failed");
                }
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
