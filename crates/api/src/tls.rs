//! Serving HTTPS: the certificate and key from files, and the bounds of
//! the handshakes, which [`crate::serve`] runs in each connection's task.
//!
//! The TLS stack is rustls through tokio-rustls, with the aws-lc-rs
//! provider: the same crates and provider the CLI's reqwest already pulls
//! in, so the workspace carries one crypto stack, not two. HTTP and HTTPS
//! share one serve loop, with the same limits and graceful shutdown.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::Context;
use tokio_rustls::rustls::{
    ServerConfig,
    crypto::aws_lc_rs,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
};

/// How long a client may take to finish its TLS handshake. A client that
/// opens a connection and says nothing must not hold a slot for ever.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How many handshakes may be in progress at once; further connections wait
/// for a turn (within their handshake time), holding a connection slot.
pub const MAX_PENDING_HANDSHAKES: usize = 256;

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
