//! Cut-through transfers: fetch a blob from upstream peers while serving it onwards.
//!
//! A [`Transfer`] receives one blob from an upstream chain of peers, checks every chunk against
//! the blob's [`Manifest`] as it arrives ([`ChunkVerifier`]), writes each verified chunk to the
//! store's temporary file, lets any number of readers follow that file at once (every child it
//! relays to), and commits the blob to the store only after its whole SHA-256 matches its id.
//! A node runs at most one transfer per blob and upstream chain: a child asking for a blob its
//! relay is receiving along the same chain joins the running transfer instead of starting a
//! second one; a request along another chain never joins it (it could not be trusted to end the
//! same way), it runs its own.
//!
//! What a transfer costs a node is bounded whatever its sender claims: the manifest is read up
//! to [`MAX_MANIFEST_BYTES`], must declare chunks of at most
//! [`MAX_CHUNK_SIZE`](super::manifest::MAX_CHUNK_SIZE) and a size the receiver admits
//! ([`SizeBound`]: the exact on-chain size when the caller knows it, else at most
//! [`Transfers::max_blob_size`]); only the chunk being verified is held in memory, readers
//! read the verified bytes back from disk. A transfer that gets no manifest or no bytes for
//! [`IDLE_TIMEOUT`] fails, blaming its upstream peer.
//!
//! The upstream chain is a list of node ids (members' public keys), nearest first, whose last
//! entry holds the blob; each node resolves the first id through its
//! [`Registry`] and contacts only registered endpoints. With one
//! entry the blob is read from `GET /v1/blobs/{id}`; with more, the first peer is asked to relay
//! it: `GET /v1/relay/{id}?upstream=REST` (comma-separated ids), and so on up the chain. A
//! failure names the peer to blame where it can ([`TransferFailure`]): the peer that could not
//! be reached, or the one that sent bytes that failed verification. Errors carry the status and
//! a fixed reason, never an upstream's response body.
//!
//! Every request a transfer makes is signed with this node's key for the peer it asks
//! ([`PeerClient`]): a relay fetches upstream as itself, never with its asker's signature.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use super::auth::PeerClient;
use super::blob::BlobStore;
use super::error::NetError;
use super::manifest::{BlobId, ChunkVerifier, Manifest, SizeBound};
use super::registry::{ChainError, Registry};

/// How long a transfer waits by default for its manifest, or for the next bytes, before it gives up on
/// its upstream peer (a relay that hangs without closing its connection).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest blob a node receives when the caller knows no size (relays): 8 GiB by default
/// ([`Transfers::with_max_blob_size`]).
pub const DEFAULT_MAX_BLOB_SIZE: u64 = 8 << 30;

/// The most bytes of a manifest read from a peer: 8 MiB (an honest 8 GiB blob in 1 MiB chunks
/// has a manifest of about 600 KB).
pub const MAX_MANIFEST_BYTES: usize = 8 << 20;

/// The most bytes of an upstream's error answer read (to learn whom a relay blames; the body
/// itself is never repeated).
const MAX_ERROR_BYTES: usize = 4096;

/// Why a transfer failed, and which peer to avoid next time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{error}")]
pub struct TransferFailure {
    /// What happened.
    pub error: String,
    /// The node id of the peer that was unreachable or sent bad data, when known.
    pub failed_peer: Option<String>,
    /// True when data failed verification (rather than a peer being unreachable).
    pub integrity: bool,
}

impl TransferFailure {
    fn blaming(peer: &str, error: &NetError) -> Self {
        Self {
            error: error.to_string(),
            failed_peer: Some(peer.to_owned()),
            integrity: error.is_integrity_failure(),
        }
    }

    fn local(error: impl std::fmt::Display) -> Self {
        Self {
            error: error.to_string(),
            failed_peer: None,
            integrity: false,
        }
    }
}

impl From<ChainError> for TransferFailure {
    fn from(e: ChainError) -> Self {
        Self::local(e)
    }
}

#[derive(Debug, Default)]
struct TransferState {
    manifest: Option<Arc<Manifest>>,
    /// The temporary file the verified bytes are written to, once it exists.
    file: Option<PathBuf>,
    /// Verified bytes written (and flushed) to `file`.
    verified: u64,
    received: u64,
    last_byte: Option<Instant>,
    outcome: Option<Result<(), TransferFailure>>,
}

/// One blob being received and relayed; see the module docs.
#[derive(Debug)]
pub struct Transfer {
    id: BlobId,
    committed: PathBuf,
    state: Mutex<TransferState>,
    changed: watch::Sender<u64>,
}

impl Transfer {
    fn new(id: BlobId, committed: PathBuf) -> Self {
        Self {
            id,
            committed,
            state: Mutex::new(TransferState::default()),
            changed: watch::channel(0).0,
        }
    }

    /// The blob being transferred.
    pub fn id(&self) -> &BlobId {
        &self.id
    }

    /// Bytes received so far (verified or not).
    pub fn received(&self) -> u64 {
        self.state.lock().expect("transfer state").received
    }

    fn update(&self, f: impl FnOnce(&mut TransferState)) {
        f(&mut self.state.lock().expect("transfer state"));
        self.changed.send_modify(|v| *v += 1);
    }

    /// Waits for the manifest (the transfer has started streaming) or the failure.
    pub async fn manifest(&self) -> Result<Arc<Manifest>, TransferFailure> {
        let mut rx = self.changed.subscribe();
        loop {
            {
                let state = self.state.lock().expect("transfer state");
                if let Some(m) = &state.manifest {
                    return Ok(m.clone());
                }
                if let Some(Err(failure)) = &state.outcome {
                    return Err(failure.clone());
                }
            }
            if rx.changed().await.is_err() {
                return Err(self.abandoned());
            }
        }
    }

    /// Waits for the end: the blob is in the store, or the failure.
    pub async fn finished(&self) -> Result<Arc<Manifest>, TransferFailure> {
        let mut rx = self.changed.subscribe();
        loop {
            {
                let state = self.state.lock().expect("transfer state");
                match &state.outcome {
                    Some(Ok(())) => return Ok(state.manifest.clone().expect("manifest first")),
                    Some(Err(failure)) => return Err(failure.clone()),
                    None => {}
                }
            }
            if rx.changed().await.is_err() {
                return Err(self.abandoned());
            }
        }
    }

    fn abandoned(&self) -> TransferFailure {
        TransferFailure::local(format!("transfer of {} abandoned", self.id))
    }

    /// Opens the bytes written so far: the temporary file while the transfer runs, the store's
    /// file once it committed (an open file keeps reading across the rename).
    async fn open(&self) -> std::io::Result<tokio::fs::File> {
        loop {
            let (file, done) = {
                let state = self.state.lock().expect("transfer state");
                (state.file.clone(), matches!(state.outcome, Some(Ok(()))))
            };
            let path = if done {
                Some(self.committed.clone())
            } else {
                file
            };
            let Some(path) = path else {
                return Err(std::io::Error::other("transfer has no file yet"));
            };
            match tokio::fs::File::open(&path).await {
                // Renamed between the look and the open: look again.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && !done => {
                    let state = self.state.lock().expect("transfer state");
                    if let Some(Err(f)) = &state.outcome {
                        return Err(std::io::Error::other(f.error.clone()));
                    }
                    if state.outcome.is_none() {
                        return Err(e);
                    }
                }
                other => return other,
            }
        }
    }

    /// The verified bytes, from the first, as they arrive, read back from disk in pieces of
    /// at most 64 KiB: ends after the last byte, or with an error if the transfer fails (so a
    /// downstream reader sees a broken body).
    pub fn chunks(self: Arc<Self>) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
        let rx = self.changed.subscribe();
        futures_util::stream::unfold(
            (self, rx, None::<tokio::fs::File>, 0u64, false),
            |(transfer, mut rx, mut file, offset, done)| async move {
                if done {
                    return None;
                }
                loop {
                    let (available, outcome, size) = {
                        let state = transfer.state.lock().expect("transfer state");
                        (
                            state.verified,
                            state.outcome.clone(),
                            state.manifest.as_ref().map(|m| m.size),
                        )
                    };
                    let available = match outcome {
                        Some(Ok(())) => size.unwrap_or(available),
                        _ => available,
                    };
                    if offset < available {
                        if file.is_none() {
                            match transfer.open().await {
                                Ok(f) => file = Some(f),
                                Err(e) => {
                                    return Some((Err(e), (transfer, rx, None, offset, true)))
                                }
                            }
                        }
                        let want = (available - offset).min(1 << 16) as usize;
                        let mut buffer = vec![0u8; want];
                        let reader = file.as_mut().expect("opened above");
                        return match reader.read_exact(&mut buffer).await {
                            Ok(_) => Some((
                                Ok(Bytes::from(buffer)),
                                (transfer, rx, file, offset + want as u64, false),
                            )),
                            Err(e) => Some((Err(e), (transfer, rx, file, offset, true))),
                        };
                    }
                    match outcome {
                        Some(Ok(())) => return None,
                        Some(Err(f)) => {
                            let e = std::io::Error::other(f.error);
                            return Some((Err(e), (transfer, rx, file, offset, true)));
                        }
                        None => {}
                    }
                    if rx.changed().await.is_err() {
                        let e = std::io::Error::other("transfer abandoned");
                        return Some((Err(e), (transfer, rx, file, offset, true)));
                    }
                }
            },
        )
    }
}

type TransferKey = (BlobId, Vec<String>);

/// The transfers a node is running, one per blob and upstream chain.
#[derive(Debug)]
pub struct Transfers {
    store: Arc<BlobStore>,
    http: PeerClient,
    registry: Registry,
    running: Mutex<HashMap<TransferKey, Arc<Transfer>>>,
    idle_timeout: Duration,
    max_blob_size: u64,
}

impl Transfers {
    /// Transfers into `store` over `http` (which signs as this node), with an empty
    /// [`Registry`] (fill it, or pass one with [`with_registry`](Self::with_registry): only
    /// registered peers are contacted, and only the keys it authorizes are served).
    pub fn new(store: Arc<BlobStore>, http: PeerClient) -> Self {
        Self {
            store,
            http,
            registry: Registry::default(),
            running: Mutex::new(HashMap::new()),
            idle_timeout: IDLE_TIMEOUT,
            max_blob_size: DEFAULT_MAX_BLOB_SIZE,
        }
    }

    /// Resolves upstream node ids through `registry`.
    pub fn with_registry(mut self, registry: Registry) -> Self {
        self.registry = registry;
        self
    }

    /// Gives up on an upstream peer after `timeout` without progress (default
    /// [`IDLE_TIMEOUT`]).
    pub fn with_idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Receives no blob larger than `bytes` when the caller knows no size (default
    /// [`DEFAULT_MAX_BLOB_SIZE`]).
    pub fn with_max_blob_size(mut self, bytes: u64) -> Self {
        self.max_blob_size = bytes;
        self
    }

    /// The largest blob received when the caller knows no size.
    pub fn max_blob_size(&self) -> u64 {
        self.max_blob_size
    }

    /// The store blobs are committed to.
    pub fn store(&self) -> &Arc<BlobStore> {
        &self.store
    }

    /// The client this node's requests go through (signed with its key).
    pub fn client(&self) -> &PeerClient {
        &self.http
    }

    /// The peers this node may contact.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// `size` when the caller knows it, else at most [`max_blob_size`](Self::max_blob_size).
    pub fn bound(&self, size: Option<u64>) -> SizeBound {
        match size {
            Some(n) => SizeBound::Exactly(n),
            None => SizeBound::AtMost(self.max_blob_size),
        }
    }

    /// Starts receiving `id` from `upstream` (node ids, nearest first), or joins the transfer
    /// of `id` already running along the same chain. The chain is checked first
    /// ([`Registry::check_chain`]). `size` is the blob's size when the caller knows it (a
    /// joined transfer's manifest is checked against it by [`Transfers::fetch`] and the relay).
    pub fn start(
        self: &Arc<Self>,
        id: &BlobId,
        upstream: Vec<String>,
        size: Option<u64>,
    ) -> Result<Arc<Transfer>, ChainError> {
        self.registry.check_chain(&upstream)?;
        let key = (id.clone(), upstream);
        let mut running = self.running.lock().expect("transfers");
        if let Some(t) = running.get(&key) {
            return Ok(t.clone());
        }
        let transfer = Arc::new(Transfer::new(id.clone(), self.store.path(id)));
        running.insert(key.clone(), transfer.clone());
        let this = self.clone();
        let t = transfer.clone();
        let bound = self.bound(size);
        tokio::spawn(async move {
            let upstream = &key.1;
            let outcome = this.receive(&t, upstream, bound).await;
            if let Err(failure) = &outcome {
                // Every waiter gets the failure and decides (re-route, report): not a warning here.
                tracing::debug!(blob = %t.id, ?upstream, error = %failure.error, "transfer failed");
            }
            // Leave the map first: a retry after a failure must start a fresh transfer.
            this.running.lock().expect("transfers").remove(&key);
            t.update(|s| s.outcome = Some(outcome));
        });
        Ok(transfer)
    }

    async fn receive(
        &self,
        transfer: &Transfer,
        upstream: &[String],
        bound: SizeBound,
    ) -> Result<(), TransferFailure> {
        let id = &transfer.id;
        let Some((first, rest)) = upstream.split_first() else {
            return Err(ChainError::Empty.into());
        };
        let Some(base) = self.registry.endpoint(first) else {
            return Err(ChainError::Unknown(first.clone()).into());
        };
        let size = match bound {
            SizeBound::Exactly(n) => format!("size={n}"),
            SizeBound::AtMost(_) => String::new(),
        };
        let (manifest_url, data_url) = if rest.is_empty() {
            (
                format!("{base}/v1/blobs/{id}/manifest"),
                format!("{base}/v1/blobs/{id}"),
            )
        } else {
            let query = format!("upstream={}&{size}", encode(&rest.join(",")));
            let query = query.trim_end_matches('&');
            (
                format!("{base}/v1/relay/{id}/manifest?{query}"),
                format!("{base}/v1/relay/{id}?{query}"),
            )
        };
        let blame = |e: NetError| TransferFailure::blaming(first, &e);
        let stalled = || {
            blame(NetError::peer(
                first,
                format!("no progress for {:?}", self.idle_timeout),
            ))
        };
        let manifest = async {
            let response = self.get(first, rest, &manifest_url).await?;
            let body = read_bounded(response, MAX_MANIFEST_BYTES)
                .await
                .map_err(|e| blame(NetError::peer(first, format!("manifest: {e}"))))?;
            serde_json::from_slice::<Manifest>(&body)
                .map_err(|e| blame(NetError::peer(first, format!("manifest: {e}"))))
        };
        let manifest = tokio::time::timeout(self.idle_timeout, manifest)
            .await
            .map_err(|_| stalled())??;
        manifest.validate_within(id, bound).map_err(blame)?;
        let mut writer = self
            .store
            .writer(id.clone())
            .await
            .map_err(TransferFailure::local)?;
        let manifest = Arc::new(manifest);
        let temp = writer.temp_path().to_owned();
        transfer.update(|s| {
            s.manifest = Some(manifest.clone());
            s.file = Some(temp);
        });
        let response = self.get(first, rest, &data_url).await?;
        let mut verifier = ChunkVerifier::new((*manifest).clone());
        let mut body = response.bytes_stream();
        while let Some(piece) = tokio::time::timeout(self.idle_timeout, body.next())
            .await
            .map_err(|_| stalled())?
        {
            let piece = piece.map_err(|e| blame(NetError::peer(first, format!("body: {e}"))))?;
            let verified = verifier.push(&piece).map_err(blame)?;
            transfer.update(|s| s.received += piece.len() as u64);
            for chunk in verified {
                writer.write(&chunk).await.map_err(TransferFailure::local)?;
                writer.flush().await.map_err(TransferFailure::local)?;
                transfer.update(|s| s.verified += chunk.len() as u64);
            }
        }
        verifier.finish().map_err(blame)?;
        transfer.update(|s| s.last_byte = Some(Instant::now()));
        writer.commit().await.map_err(blame)?;
        Ok(())
    }

    /// GETs `url` from `peer` (the first of the chain, `rest` the ones behind it). A failure
    /// says the status and a fixed reason; a relay's own failure is believed only as far as it
    /// blames a peer of `rest`.
    async fn get(
        &self,
        peer: &str,
        rest: &[String],
        url: &str,
    ) -> Result<reqwest::Response, TransferFailure> {
        let response = self.http.get(peer, url).send().await.map_err(|e| {
            let e = e.without_url();
            TransferFailure::blaming(peer, &NetError::peer(peer, bcfl_tls::explain(&e)))
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let body = read_bounded(response, MAX_ERROR_BYTES)
            .await
            .unwrap_or_default();
        // A relay that failed upstream says whom to blame.
        if let Ok(failure) = serde_json::from_slice::<TransferFailure>(&body) {
            if let Some(blamed) = failure.failed_peer.filter(|b| rest.contains(b)) {
                return Err(TransferFailure {
                    error: format!(
                        "peer {peer}: HTTP {status}: relay failed upstream at {blamed}{}",
                        if failure.integrity { " (bad data)" } else { "" }
                    ),
                    failed_peer: Some(blamed),
                    integrity: failure.integrity,
                });
            }
        }
        Err(TransferFailure::blaming(
            peer,
            &NetError::peer(peer, format!("HTTP {status}")),
        ))
    }
}

/// Reads at most `max` bytes of a response body; more is an error.
async fn read_bounded(response: reqwest::Response, max: usize) -> Result<Vec<u8>, String> {
    let mut body = response.bytes_stream();
    let mut out = Vec::new();
    while let Some(piece) = body.next().await {
        let piece = piece.map_err(|e| e.without_url().to_string())?;
        if out.len() + piece.len() > max {
            return Err(format!("answer longer than {max} bytes"));
        }
        out.extend_from_slice(&piece);
    }
    Ok(out)
}

/// Percent-encodes a query value (everything but unreserved characters).
pub(crate) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What one completed fetch measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FetchReport {
    /// The blob.
    pub sha256: BlobId,
    /// Its size in bytes.
    pub size: u64,
    /// Seconds from the request to the commit (the blob written, synced and renamed).
    pub seconds: f64,
    /// Seconds from the request to the last verified byte (before writing out the file).
    pub receive_seconds: f64,
    /// The upstream chain it finally came along (empty when it was already held).
    pub upstream: Vec<String>,
}

impl Transfers {
    /// Fetches `id` along `upstream` (node ids, nearest first) and waits until it is verified
    /// and stored (at once when it is already held). `size` is the blob's size when the caller
    /// knows it (the on-chain commitment's or aggregate's `size_bytes`): a manifest declaring
    /// another size is refused before any byte is received; without it the blob may have at
    /// most [`max_blob_size`](Self::max_blob_size) bytes.
    pub async fn fetch(
        self: &Arc<Self>,
        id: &BlobId,
        upstream: Vec<String>,
        size: Option<u64>,
    ) -> Result<FetchReport, TransferFailure> {
        let started = Instant::now();
        if let Ok(Some(m)) = self.store.manifest(id).await {
            return Ok(FetchReport {
                sha256: id.clone(),
                size: m.size,
                seconds: 0.0,
                receive_seconds: 0.0,
                upstream: Vec::new(),
            });
        }
        let transfer = self.start(id, upstream.clone(), size)?;
        let manifest = transfer.finished().await?;
        if let Some(size) = size.filter(|&n| n != manifest.size) {
            // A joined transfer started by a caller that did not know the size.
            return Err(TransferFailure::local(format!(
                "blob {id} has {} bytes, expected {size}",
                manifest.size
            )));
        }
        let seconds = started.elapsed().as_secs_f64();
        let last_byte = transfer.state.lock().expect("transfer state").last_byte;
        Ok(FetchReport {
            sha256: id.clone(),
            size: manifest.size,
            seconds,
            receive_seconds: last_byte.map_or(seconds, |t| {
                t.saturating_duration_since(started).as_secs_f64()
            }),
            upstream,
        })
    }
}

/// The HTTP client the network uses: no proxy, no overall timeout (transfers are long), but
/// a connect timeout so a dead peer is noticed quickly; `https://` peers are checked against
/// the built-in roots and the CAs the process trusts ([`bcfl_tls::trust_ca_file`]).
pub fn http_client(connect_timeout: Duration) -> reqwest::Client {
    bcfl_tls::client_builder()
        .no_proxy()
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .build()
        .expect("an HTTP client builds")
}
