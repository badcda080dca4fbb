//! TLS for bcfl, with rustls (the `ring` provider; no OpenSSL): what serves HTTPS and what
//! trusts it.
//!
//! - Servers ([`ServerTls`]): a certificate chain and its private key from PEM files (the
//!   `--tls-cert FILE --tls-key FILE` of `bcfl node serve`, `bcfl-devnet` and the node's
//!   `tls_cert`/`tls_key` settings); [`TlsListener`] accepts TLS connections for
//!   `axum::serve` (handshakes run concurrently, each bounded by [`HANDSHAKE_TIMEOUT`], so a
//!   silent client holds up nobody), and [`ServerTls::acceptor`] serves hand-made loops. Every
//!   accepted connection, TLS or plain ([`plain`]), has `TCP_NODELAY` set ([`no_delay`]).
//! - Clients ([`client_builder`], [`client_config`]): the built-in web PKI roots plus the CAs
//!   installed for the process with [`trust_ca_file`] (the CLI's `--ca-cert FILE`, or the
//!   `BCFL_CA_CERT` environment variable): the REST client (`https://` ledger URLs), the
//!   subscriptions websocket (`wss://`) and the blob transfers all use them.
//! - Errors a person can act on: [`explain`] turns a transport error into its cause chain and,
//!   for a certificate the client does not trust, says which flag fixes it.
//!
//! - Feature `pki` (module `pki`): a throwaway CA and server certificates for loopback, for tests
//!   and the demo's `--tls`.
//!
//! ```
//! // No extra CA installed: the built-in roots only.
//! let http = bcfl_tls::client_builder().build().unwrap();
//! # drop(http);
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// How long a TLS handshake may take before the connection is dropped: 10 s.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The environment variable naming an extra CA certificate file (as `--ca-cert`).
pub const CA_CERT_ENV: &str = "BCFL_CA_CERT";

/// What can go wrong loading certificates and keys.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file cannot be read or holds nothing usable.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the certificate and key.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads every certificate of a PEM file.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = |reason: String| TlsError::Pem {
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem("no CERTIFICATE in the file".into()));
    }
    Ok(certs)
}

/// A server's certificate chain and key.
#[derive(Debug, Clone)]
pub struct ServerTls {
    config: Arc<rustls::ServerConfig>,
}

impl ServerTls {
    /// The chain in `cert` (PEM, leaf first) and the private key in `key` (PEM: PKCS#8, PKCS#1
    /// or SEC1). Offers HTTP/1.1 only (as the servers speak it).
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let chain = read_certificates(cert)?;
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Pem {
            path: key.to_owned(),
            reason: e.to_string(),
        })?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            config: Arc::new(config),
        })
    }

    /// The rustls configuration.
    pub fn config(&self) -> Arc<rustls::ServerConfig> {
        self.config.clone()
    }

    /// An acceptor for hand-made accept loops.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.clone())
    }

    /// A listener for `axum::serve` that accepts TLS on `listener`.
    pub fn listen(&self, listener: tokio::net::TcpListener) -> std::io::Result<TlsListener> {
        TlsListener::new(listener, self.acceptor())
    }
}

/// Sets `TCP_NODELAY` on an accepted connection, as every server here does. Without it a
/// response written in two segments (headers, then a body) holds its second back until the
/// peer acknowledges the first, and the peer delays that acknowledgement (40 ms on Linux):
/// fetching an 8 KB blob on a kept-alive connection then took 30-50 ms on loopback.
pub fn no_delay(stream: &tokio::net::TcpStream) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "setting TCP_NODELAY failed");
    }
}

/// A plain TCP listener for `axum::serve` whose connections have `TCP_NODELAY` set
/// ([`no_delay`]), as [`TlsListener`]'s have.
pub fn plain(
    listener: tokio::net::TcpListener,
) -> axum::serve::TapIo<tokio::net::TcpListener, fn(&mut tokio::net::TcpStream)> {
    use axum::serve::ListenerExt as _;
    listener.tap_io(|stream| no_delay(stream))
}

/// TLS connections accepted on a TCP listener, for `axum::serve`; see the crate docs.
#[derive(Debug)]
pub struct TlsListener {
    local: SocketAddr,
    accepted: tokio::sync::mpsc::Receiver<(
        tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
        SocketAddr,
    )>,
    task: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Accepts TCP on `listener` and runs each handshake in its own task.
    pub fn new(
        listener: tokio::net::TcpListener,
        acceptor: tokio_rustls::TlsAcceptor,
    ) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (sender, accepted) = tokio::sync::mpsc::channel(64);
        let task = tokio::spawn(async move {
            loop {
                let (stream, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                no_delay(&stream);
                let (acceptor, handshaken) = (acceptor.clone(), sender.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = handshaken.send((tls, peer)).await;
                        }
                        Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
                if sender.is_closed() {
                    return;
                }
            }
        });
        Ok(Self {
            local,
            accepted,
            task,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(accepted) => accepted,
            // The accept task ended (it never does while the listener lives): no more connections.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

static EXTRA_CAS: Mutex<Vec<CertificateDer<'static>>> = Mutex::new(Vec::new());

/// Trusts the CA certificates in `path` (PEM) for every client this process builds from now on,
/// besides the built-in roots.
pub fn trust_ca_file(path: &Path) -> Result<(), TlsError> {
    let certs = read_certificates(path)?;
    EXTRA_CAS.lock().expect("extra CAs").extend(certs);
    Ok(())
}

/// Trusts the file named by `BCFL_CA_CERT`, when it is set and not empty (the CLI does this
/// through its `--ca-cert` flag, which reads the same variable).
pub fn trust_ca_from_env() -> Result<(), TlsError> {
    match std::env::var_os(CA_CERT_ENV) {
        Some(path) if !path.is_empty() => trust_ca_file(Path::new(&path)),
        _ => Ok(()),
    }
}

fn extra_cas() -> Vec<CertificateDer<'static>> {
    EXTRA_CAS.lock().expect("extra CAs").clone()
}

/// A `reqwest` client builder using rustls, trusting the built-in roots and the installed CAs.
pub fn client_builder() -> reqwest::ClientBuilder {
    client_builder_trusting(&extra_cas())
}

/// A `reqwest` client builder using rustls, trusting the built-in roots and `cas`.
pub fn client_builder_trusting(cas: &[CertificateDer<'static>]) -> reqwest::ClientBuilder {
    let mut builder = reqwest::Client::builder().use_rustls_tls();
    for ca in cas {
        match reqwest::Certificate::from_der(ca) {
            Ok(cert) => builder = builder.add_root_certificate(cert),
            Err(error) => tracing::warn!(%error, "an installed CA certificate is unusable"),
        }
    }
    builder
}

/// A rustls client configuration trusting the built-in roots and the installed CAs (for the
/// `wss://` subscriptions websocket).
pub fn client_config() -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for ca in extra_cas() {
        if let Err(error) = roots.add(ca) {
            tracing::warn!(%error, "an installed CA certificate is unusable");
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// The error and its causes, one after another; for a certificate the client does not trust, a
/// sentence saying how to trust it.
pub fn explain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    if is_untrusted(&text) {
        text.push_str(&format!(
            " (the server's TLS certificate is not trusted: pass --ca-cert FILE, or set \
             {CA_CERT_ENV}, with the CA certificate that signed it)"
        ));
    }
    text
}

fn is_untrusted(text: &str) -> bool {
    [
        "UnknownIssuer",
        "invalid peer certificate",
        "certificate verify failed",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

#[cfg(feature = "pki")]
pub mod pki;
#[cfg(test)]
mod tests;
