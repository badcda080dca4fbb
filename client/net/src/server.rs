//! The member's HTTP server: blobs, manifests, probes and relays (axum).
//!
//! | route | what it does |
//! | --- | --- |
//! | `GET`/`HEAD /v1/blobs/{sha256}` | a held blob, streamed; one `Range: bytes=` range (206); 404 when not held |
//! | `GET /v1/blobs/{sha256}/manifest` | the blob's [`Manifest`] (per-chunk SHA-256) as JSON |
//! | `GET /v1/blobs` | the ids of held blobs |
//! | `GET /v1/probe?bytes=N` | N bytes of incompressible data, for download probes (N is bounded) |
//! | `POST /v1/probe` | reads the body (bounded) and answers `{"bytes": N}`: upload probes |
//! | `GET /v1/relay/{sha256}?upstream=K1,K2,...[&size=N]` | the blob, held or received from the upstream chain and forwarded chunk by chunk while it arrives |
//! | `GET /v1/relay/{sha256}/manifest?upstream=...[&size=N]` | the manifest, from the store or through the chain |
//! | `POST /v1/pull` | `{"sha256": ..., "upstream": [...], "size": N}`: fetch into this node's store and answer when verified |
//!
//! Upstream chains name members by node id (public key), nearest first, never by URL: the
//! server resolves them through its transfers' [`Registry`] and
//! refuses (400) a chain that is empty, longer than
//! [`MAX_CHAIN_DEPTH`](super::registry::MAX_CHAIN_DEPTH), repeats a node, names this node, or
//! names a node that is not a registered member. `size` (optional) is the blob's size when the
//! asker knows it; a manifest declaring another is refused.
//!
//! Every route needs a member's signed request ([`auth`](super::auth)): the router runs the
//! [`Authenticator`] before any handler, so an anonymous request gets 401 and a non-member's
//! 403 whatever it asks. The authenticator follows the transfers' [`Registry`] (the keys it
//! serves) and signs for the node's own id ([`Registry::me`], else the key of its
//! [`PeerClient`](super::auth::PeerClient)).
//!
//! The server speaks HTTP, or HTTPS with a certificate and key ([`NodeServer::serve_tls`],
//! [`bcfl_tls::ServerTls`]).
//!
//! Errors are rendered in one place (`ApiError`). Failures of a relay or pull answer 502 with a
//! [`TransferFailure`] JSON body naming the peer to route around; it says an upstream's status
//! and a fixed reason, never the upstream's own answer.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use futures_util::Stream;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::auth::{authenticate, Authenticator};
use super::blob::BlobStore;
use super::manifest::{BlobId, Manifest};
use super::registry::Registry;
use super::transfer::{Transfer, TransferFailure, Transfers};

/// The default bound on one probe request: 1 GiB.
pub const DEFAULT_MAX_PROBE_BYTES: u64 = 1 << 30;

/// What the server shares between requests.
#[derive(Debug, Clone)]
pub struct NodeServer {
    transfers: Arc<Transfers>,
    max_probe_bytes: u64,
    probe_data: Bytes,
    auth: Option<Authenticator>,
}

impl NodeServer {
    /// A server for the blobs of `transfers`' store, answering probes of at most
    /// `max_probe_bytes`, to the members its registry authorizes (see the module docs).
    pub fn new(transfers: Arc<Transfers>, max_probe_bytes: u64) -> Self {
        let auth = Authenticator::new(
            transfers.client().key().map(str::to_owned),
            transfers.registry().clone(),
        );
        Self {
            transfers,
            max_probe_bytes,
            probe_data: probe_pattern(),
            auth: Some(auth),
        }
    }

    /// Checks requests with `auth` instead of the default [`Authenticator`] (another clock
    /// skew window or nonce capacity).
    pub fn with_auth(mut self, auth: Authenticator) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Serves anyone: for the tests of transfers, which are not about authentication.
    #[cfg(test)]
    pub(crate) fn open(mut self) -> Self {
        self.auth = None;
        self
    }

    /// The registry whose keys are served.
    pub fn registry(&self) -> &Registry {
        self.transfers.registry()
    }

    /// The blob store.
    pub fn store(&self) -> &Arc<BlobStore> {
        self.transfers.store()
    }

    /// The transfers this node runs.
    pub fn transfers(&self) -> &Arc<Transfers> {
        &self.transfers
    }

    /// The routes, behind the authenticator.
    pub fn router(self) -> Router {
        let auth = self.auth.clone();
        let router = Router::new()
            .route("/v1/blobs", get(list_blobs))
            .route("/v1/blobs/{id}", get(get_blob))
            .route("/v1/blobs/{id}/manifest", get(get_manifest))
            .route("/v1/probe", get(probe).post(probe_upload))
            .route("/v1/relay/{id}", get(relay))
            .route("/v1/relay/{id}/manifest", get(relay_manifest))
            .route("/v1/pull", post(pull))
            .with_state(self);
        match auth {
            Some(auth) => router.layer(axum::middleware::from_fn_with_state(auth, authenticate)),
            None => router,
        }
    }

    /// Serves on `listener` until `shutdown` resolves.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(bcfl_tls::plain(listener), self.router())
            .with_graceful_shutdown(shutdown)
            .await
    }

    /// Serves HTTPS with `tls` on `listener` until `shutdown` resolves.
    pub async fn serve_tls(
        self,
        listener: tokio::net::TcpListener,
        tls: &bcfl_tls::ServerTls,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(tls.listen(listener)?, self.router())
            .with_graceful_shutdown(shutdown)
            .await
    }

    /// Binds `addr` and serves HTTPS with `tls` in a background task; returns the bound address
    /// and the task.
    pub async fn spawn_tls(
        self,
        addr: SocketAddr,
        tls: bcfl_tls::ServerTls,
    ) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        self.spawn_tls_on(listener, tls)
    }

    /// Binds `addr` and serves in a background task; returns the bound address and the task.
    pub async fn spawn(
        self,
        addr: SocketAddr,
    ) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        self.spawn_on(listener)
    }

    /// Serves HTTPS with `tls` on `listener` (bound already: by a service manager, say) in a
    /// background task; returns its address and the task.
    pub fn spawn_tls_on(
        self,
        listener: tokio::net::TcpListener,
        tls: bcfl_tls::ServerTls,
    ) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)> {
        let local = listener.local_addr()?;
        let task =
            tokio::spawn(
                async move { self.serve_tls(listener, &tls, std::future::pending()).await },
            );
        Ok((local, task))
    }

    /// Serves on `listener` (bound already: by a service manager, say) in a background task;
    /// returns its address and the task.
    pub fn spawn_on(
        self,
        listener: tokio::net::TcpListener,
    ) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)> {
        let local = listener.local_addr()?;
        let task = tokio::spawn(self.serve(listener, std::future::pending()));
        Ok((local, task))
    }
}

/// Every error answer of the server, rendered in one place.
#[derive(Debug)]
enum ApiError {
    BadRequest(String),
    NotFound(String),
    Unsatisfiable { size: u64 },
    Internal(String),
    Upstream(TransferFailure),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = |status: StatusCode, text: String| {
            (status, Json(serde_json::json!({ "error": text }))).into_response()
        };
        match self {
            Self::BadRequest(text) => message(StatusCode::BAD_REQUEST, text),
            Self::NotFound(text) => message(StatusCode::NOT_FOUND, text),
            Self::Internal(text) => message(StatusCode::INTERNAL_SERVER_ERROR, text),
            Self::Unsatisfiable { size } => Response::builder()
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{size}"))
                .body(Body::empty())
                .expect("static response"),
            Self::Upstream(failure) => (StatusCode::BAD_GATEWAY, Json(failure)).into_response(),
        }
    }
}

/// 64 KiB of pseudo-random bytes (xorshift), repeated to make probe traffic that no layer can
/// compress.
pub fn probe_pattern() -> Bytes {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let data: Vec<u8> = (0..1 << 16)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    Bytes::from(data)
}

/// `n` bytes of [`probe_pattern`] as a stream of 64 KiB pieces.
pub fn probe_stream(
    pattern: Bytes,
    n: u64,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    futures_util::stream::unfold(n, move |remaining| {
        let pattern = pattern.clone();
        async move {
            if remaining == 0 {
                return None;
            }
            let take = remaining.min(pattern.len() as u64) as usize;
            Some((Ok(pattern.slice(..take)), remaining - take as u64))
        }
    })
}

fn parse_id(text: &str) -> Result<BlobId, ApiError> {
    BlobId::parse(text).map_err(|e| ApiError::BadRequest(e.to_string()))
}

async fn held_manifest(server: &NodeServer, id: &BlobId) -> Result<Arc<Manifest>, ApiError> {
    match server.store().manifest(id).await {
        Ok(Some(m)) => Ok(m),
        Ok(None) => Err(ApiError::NotFound(format!("blob {id} is not held"))),
        Err(e) => Err(ApiError::Internal(e.to_string())),
    }
}

async fn list_blobs(State(server): State<NodeServer>) -> Result<Response, ApiError> {
    let ids = server
        .store()
        .list()
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(ids).into_response())
}

async fn get_manifest(
    State(server): State<NodeServer>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let manifest = held_manifest(&server, &parse_id(&id)?).await?;
    Ok(Json(&*manifest).into_response())
}

/// A `Range` header that no part of the blob satisfies (answered with 416).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("range not satisfiable")]
pub struct UnsatisfiableRange;

/// A single byte range `start..=end` parsed from a `Range` header against a blob of `size`.
/// `Ok(None)`: serve the whole blob (no header, or a form this server ignores, like several
/// ranges).
pub fn parse_range(
    value: Option<&HeaderValue>,
    size: u64,
) -> Result<Option<(u64, u64)>, UnsatisfiableRange> {
    let Some(text) = value.and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some(spec) = text.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let number = |s: &str| s.trim().parse::<u64>().map_err(|_| UnsatisfiableRange);
    let (start, end) = match (first.trim().is_empty(), last.trim().is_empty()) {
        (true, true) => return Err(UnsatisfiableRange),
        (true, false) => {
            let suffix = number(last)?;
            if suffix == 0 || size == 0 {
                return Err(UnsatisfiableRange);
            }
            (size.saturating_sub(suffix), size - 1)
        }
        (false, true) => (number(first)?, size.saturating_sub(1)),
        (false, false) => (number(first)?, number(last)?.min(size.saturating_sub(1))),
    };
    if start >= size || end < start {
        return Err(UnsatisfiableRange);
    }
    Ok(Some((start, end)))
}

fn file_stream(
    file: tokio::fs::File,
    len: u64,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    futures_util::stream::unfold((file, len), |(mut file, remaining)| async move {
        if remaining == 0 {
            return None;
        }
        let mut buffer = vec![0u8; remaining.min(1 << 16) as usize];
        match file.read(&mut buffer).await {
            Ok(0) => Some((
                Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "blob file shorter than announced",
                )),
                (file, 0),
            )),
            Ok(n) => {
                buffer.truncate(n);
                Some((Ok(Bytes::from(buffer)), (file, remaining - n as u64)))
            }
            Err(e) => Some((Err(e), (file, 0))),
        }
    })
}

async fn serve_held(
    server: &NodeServer,
    id: &BlobId,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let size = held_manifest(server, id).await?.size;
    let range = parse_range(headers.get(header::RANGE), size)
        .map_err(|UnsatisfiableRange| ApiError::Unsatisfiable { size })?;
    let path = server.store().path(id);
    let mut file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| ApiError::NotFound(format!("blob {id}: {e}")))?;
    let (status, start, len) = match range {
        Some((start, end)) => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        None => (StatusCode::OK, 0, size),
    };
    if start > 0 {
        file.seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?;
    }
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, len)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::ETAG, format!("\"{id}\""));
    if let Some((start, end)) = range {
        builder = builder.header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}"));
    }
    Ok(builder
        .body(Body::from_stream(file_stream(file, len)))
        .expect("valid headers"))
}

async fn get_blob(
    State(server): State<NodeServer>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    serve_held(&server, &parse_id(&id)?, &headers).await
}

#[derive(Debug, Deserialize)]
struct ProbeQuery {
    bytes: u64,
}

async fn probe(
    State(server): State<NodeServer>,
    Query(q): Query<ProbeQuery>,
) -> Result<Response, ApiError> {
    if q.bytes > server.max_probe_bytes {
        return Err(ApiError::BadRequest(format!(
            "probe of {} bytes exceeds the limit of {}",
            q.bytes, server.max_probe_bytes
        )));
    }
    let stream = probe_stream(server.probe_data.clone(), q.bytes);
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, q.bytes)
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from_stream(stream))
        .expect("valid headers"))
}

/// The answer to `POST /v1/probe`: how many bytes arrived.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct ProbeReceipt {
    /// Bytes received.
    pub bytes: u64,
}

async fn probe_upload(State(server): State<NodeServer>, body: Body) -> Result<Response, ApiError> {
    let mut stream = body.into_data_stream();
    let mut bytes = 0u64;
    while let Some(piece) = futures_util::StreamExt::next(&mut stream).await {
        let piece = piece.map_err(|e| ApiError::BadRequest(format!("probe body: {e}")))?;
        bytes += piece.len() as u64;
        if bytes > server.max_probe_bytes {
            return Err(ApiError::BadRequest(format!(
                "probe exceeds the limit of {} bytes",
                server.max_probe_bytes
            )));
        }
    }
    Ok(Json(ProbeReceipt { bytes }).into_response())
}

#[derive(Debug, Deserialize)]
struct RelayQuery {
    #[serde(default)]
    upstream: String,
    size: Option<u64>,
}

impl RelayQuery {
    fn chain(&self) -> Vec<String> {
        self.upstream
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    }
}

/// Starts (or joins) the transfer of `id` along `chain` and waits for its manifest, checked
/// against `size` when the asker gave one.
async fn relayed_manifest(
    server: &NodeServer,
    id: &BlobId,
    chain: Vec<String>,
    size: Option<u64>,
) -> Result<(Arc<Transfer>, Arc<Manifest>), ApiError> {
    let transfer = server
        .transfers
        .start(id, chain, size)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let manifest = transfer.manifest().await.map_err(ApiError::Upstream)?;
    if let Some(size) = size.filter(|&n| n != manifest.size) {
        return Err(ApiError::Upstream(TransferFailure {
            error: format!("blob {id} has {} bytes, expected {size}", manifest.size),
            failed_peer: None,
            integrity: false,
        }));
    }
    Ok((transfer, manifest))
}

async fn relay(
    State(server): State<NodeServer>,
    Path(id): Path<String>,
    Query(q): Query<RelayQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    if server.store().contains(&id) {
        return serve_held(&server, &id, &headers).await;
    }
    let (transfer, manifest) = relayed_manifest(&server, &id, q.chain(), q.size).await?;
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, manifest.size)
        .header(header::ETAG, format!("\"{id}\""))
        .body(Body::from_stream(transfer.chunks()))
        .expect("valid headers"))
}

async fn relay_manifest(
    State(server): State<NodeServer>,
    Path(id): Path<String>,
    Query(q): Query<RelayQuery>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let manifest = match held_manifest(&server, &id).await {
        Ok(m) => m,
        Err(_) => relayed_manifest(&server, &id, q.chain(), q.size).await?.1,
    };
    Ok(Json(&*manifest).into_response())
}

/// The body of `POST /v1/pull`.
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
pub struct PullRequest {
    /// The blob to fetch.
    pub sha256: BlobId,
    /// The upstream chain of node ids, nearest first; the last entry holds the blob.
    pub upstream: Vec<String>,
    /// The blob's size, when the asker knows it (from the chain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

async fn pull(
    State(server): State<NodeServer>,
    Json(request): Json<PullRequest>,
) -> Result<Response, ApiError> {
    server
        .transfers
        .registry()
        .check_chain(&request.upstream)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let report = server
        .transfers
        .fetch(&request.sha256, request.upstream, request.size)
        .await
        .map_err(ApiError::Upstream)?;
    Ok(Json(report).into_response())
}
