//! Cut-through transfers: fetch a blob from upstream peers while serving it onwards.
//!
//! A [`Transfer`] receives one blob from an upstream chain of peers, checks every chunk against
//! the blob's [`Manifest`] as it arrives ([`ChunkVerifier`]), publishes each verified chunk to
//! any number of readers at once (the node's own store and every child it relays to), and
//! commits the blob to the store only after its whole SHA-256 matches its id. A node runs at
//! most one transfer per blob: a child asking for a blob its relay is still receiving joins the
//! running transfer instead of starting a second one.
//!
//! The verified chunks of a running transfer are kept in memory until it ends, so that a child
//! joining late still gets the blob from its first byte; a blob is then read from the store.
//! A transfer that gets no manifest or no bytes for [`IDLE_TIMEOUT`] fails, blaming its
//! upstream peer.
//!
//! The upstream chain is a list of peer base URLs, nearest first, whose last entry holds the
//! blob. With one entry the blob is read from `GET /v1/blobs/{id}`; with more, the first peer is
//! asked to relay it: `GET /v1/relay/{id}?upstream=REST` (comma-separated base URLs), and so on
//! up the chain. A failure names the peer to blame where it can ([`TransferFailure`]): the peer
//! that could not be reached, or the one that sent bytes that failed verification.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::blob::BlobStore;
use super::error::NetError;
use super::manifest::{BlobId, ChunkVerifier, Manifest};

/// How long a transfer waits by default for its manifest, or for the next bytes, before it gives up on
/// its upstream peer (a relay that hangs without closing its connection).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a transfer failed, and which peer to avoid next time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{error}")]
pub struct TransferFailure {
    /// What happened.
    pub error: String,
    /// The base URL of the peer that was unreachable or sent bad data, when known.
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
}

#[derive(Debug, Default)]
struct TransferState {
    manifest: Option<Arc<Manifest>>,
    chunks: Vec<Bytes>,
    received: u64,
    last_byte: Option<Instant>,
    outcome: Option<Result<(), TransferFailure>>,
}

/// One blob being received and relayed; see the module docs.
#[derive(Debug)]
pub struct Transfer {
    id: BlobId,
    state: Mutex<TransferState>,
    changed: watch::Sender<u64>,
}

impl Transfer {
    fn new(id: BlobId) -> Self {
        Self {
            id,
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
        TransferFailure {
            error: format!("transfer of {} abandoned", self.id),
            failed_peer: None,
            integrity: false,
        }
    }

    /// The verified chunks, from the first, as they arrive: ends after the last chunk, or
    /// with an error if the transfer fails (so a downstream reader sees a broken body).
    pub fn chunks(self: Arc<Self>) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
        let rx = self.changed.subscribe();
        futures_util::stream::unfold(
            (self, rx, 0usize, false),
            |(transfer, mut rx, next, done)| async move {
                if done {
                    return None;
                }
                loop {
                    let item = {
                        let state = transfer.state.lock().expect("transfer state");
                        if let Some(chunk) = state.chunks.get(next) {
                            Some(Ok(chunk.clone()))
                        } else {
                            match &state.outcome {
                                Some(Ok(())) => return None,
                                Some(Err(f)) => Some(Err(std::io::Error::other(f.error.clone()))),
                                None => None,
                            }
                        }
                    };
                    match item {
                        Some(Ok(chunk)) => {
                            return Some((Ok(chunk), (transfer, rx, next + 1, false)))
                        }
                        Some(Err(e)) => return Some((Err(e), (transfer, rx, next, true))),
                        None => {
                            if rx.changed().await.is_err() {
                                let e = std::io::Error::other("transfer abandoned");
                                return Some((Err(e), (transfer, rx, next, true)));
                            }
                        }
                    }
                }
            },
        )
    }
}

/// The transfers a node is running, one per blob.
#[derive(Debug)]
pub struct Transfers {
    store: Arc<BlobStore>,
    http: reqwest::Client,
    running: Mutex<HashMap<BlobId, Arc<Transfer>>>,
    idle_timeout: Duration,
}

impl Transfers {
    /// Transfers into `store` over `http`.
    pub fn new(store: Arc<BlobStore>, http: reqwest::Client) -> Self {
        Self {
            store,
            http,
            running: Mutex::new(HashMap::new()),
            idle_timeout: IDLE_TIMEOUT,
        }
    }

    /// Gives up on an upstream peer after `timeout` without progress (default
    /// [`IDLE_TIMEOUT`]).
    pub fn with_idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// The store blobs are committed to.
    pub fn store(&self) -> &Arc<BlobStore> {
        &self.store
    }

    /// Starts receiving `id` from `upstream` (nearest first), or joins the transfer of `id`
    /// already running.
    pub fn start(self: &Arc<Self>, id: &BlobId, upstream: Vec<String>) -> Arc<Transfer> {
        let mut running = self.running.lock().expect("transfers");
        if let Some(t) = running.get(id) {
            return t.clone();
        }
        let transfer = Arc::new(Transfer::new(id.clone()));
        running.insert(id.clone(), transfer.clone());
        let this = self.clone();
        let t = transfer.clone();
        tokio::spawn(async move {
            let outcome = this.receive(&t, &upstream).await;
            if let Err(failure) = &outcome {
                tracing::warn!(blob = %t.id, ?upstream, error = %failure.error, "transfer failed");
            }
            // Leave the map first: a retry after a failure must start a fresh transfer.
            this.running.lock().expect("transfers").remove(&t.id);
            t.update(|s| s.outcome = Some(outcome));
        });
        transfer
    }

    async fn receive(
        &self,
        transfer: &Transfer,
        upstream: &[String],
    ) -> Result<(), TransferFailure> {
        let id = &transfer.id;
        let Some((first, rest)) = upstream.split_first() else {
            return Err(TransferFailure {
                error: format!("no upstream peer for {id}"),
                failed_peer: None,
                integrity: false,
            });
        };
        let (manifest_url, data_url) = if rest.is_empty() {
            (
                format!("{first}/v1/blobs/{id}/manifest"),
                format!("{first}/v1/blobs/{id}"),
            )
        } else {
            let chain = rest.join(",");
            (
                format!("{first}/v1/relay/{id}/manifest?upstream={}", encode(&chain)),
                format!("{first}/v1/relay/{id}?upstream={}", encode(&chain)),
            )
        };
        let stalled = || {
            TransferFailure::blaming(
                first,
                &NetError::peer(first, format!("no progress for {:?}", self.idle_timeout)),
            )
        };
        let manifest = async {
            self.get(first, &manifest_url)
                .await?
                .json::<Manifest>()
                .await
                .map_err(|e| TransferFailure::blaming(first, &NetError::peer(first, e)))
        };
        let manifest = tokio::time::timeout(self.idle_timeout, manifest)
            .await
            .map_err(|_| stalled())??;
        manifest
            .validate(id)
            .map_err(|e| TransferFailure::blaming(first, &e))?;
        let manifest = Arc::new(manifest);
        transfer.update(|s| s.manifest = Some(manifest.clone()));
        let response = self.get(first, &data_url).await?;
        let blame = |e: NetError| TransferFailure::blaming(first, &e);
        let mut verifier = ChunkVerifier::new((*manifest).clone());
        let mut writer = self
            .store
            .writer(id.clone())
            .await
            .map_err(|e| TransferFailure {
                error: e.to_string(),
                failed_peer: None,
                integrity: false,
            })?;
        let mut body = response.bytes_stream();
        while let Some(piece) = tokio::time::timeout(self.idle_timeout, body.next())
            .await
            .map_err(|_| stalled())?
        {
            let piece = piece.map_err(|e| blame(NetError::peer(first, format!("body: {e}"))))?;
            let verified = verifier.push(&piece).map_err(blame)?;
            transfer.update(|s| s.received += piece.len() as u64);
            for chunk in verified {
                writer.write(&chunk).await.map_err(|e| TransferFailure {
                    error: e.to_string(),
                    failed_peer: None,
                    integrity: false,
                })?;
                transfer.update(|s| s.chunks.push(chunk));
            }
        }
        verifier.finish().map_err(blame)?;
        transfer.update(|s| s.last_byte = Some(Instant::now()));
        writer.commit().await.map_err(blame)?;
        Ok(())
    }

    async fn get(&self, peer: &str, url: &str) -> Result<reqwest::Response, TransferFailure> {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| TransferFailure::blaming(peer, &NetError::peer(peer, e)))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        // A relay that failed upstream says whom to blame.
        if let Ok(failure) = serde_json::from_str::<TransferFailure>(&text) {
            if failure.failed_peer.is_some() {
                return Err(failure);
            }
        }
        Err(TransferFailure::blaming(
            peer,
            &NetError::peer(peer, format!("{url}: HTTP {status}: {text}")),
        ))
    }
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
    /// Fetches `id` along `upstream` and waits until it is verified and stored (at once when
    /// it is already held).
    pub async fn fetch(
        self: &Arc<Self>,
        id: &BlobId,
        upstream: Vec<String>,
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
        let transfer = self.start(id, upstream.clone());
        let manifest = transfer.finished().await?;
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
/// a connect timeout so a dead peer is noticed quickly.
pub fn http_client(connect_timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .build()
        .expect("a plain HTTP client builds")
}
