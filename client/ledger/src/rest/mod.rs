//! An async client of the Sawtooth 1.2 REST API (also served by `bcfl-devnet`).
//!
//! - [`RestClient::submit`] posts a `BatchList` and, unless told not to, waits until no batch is
//!   pending; an INVALID batch becomes [`RestError::Rejected`] carrying the processor's message.
//! - Reads: [`RestClient::state`] (one address, `None` when empty), [`RestClient::state_list`]
//!   (every leaf under a prefix, all pages, pinned to one head), [`RestClient::blocks`] and
//!   [`RestClient::chain_head`].
//! - HTTP 429 (queue full) and 503 (validator not ready or busy) are retried with exponential
//!   backoff ([`RetryPolicy`]), and so is a read whose connection broke after it was made (a
//!   pooled keep-alive connection the server closed as the request went out: "connection closed
//!   before message completed"); every other failure is a typed [`RestError`].
//! - `https://` URLs use rustls ([`bcfl_tls::client_builder`]): the built-in roots and the CAs
//!   the process trusts (`--ca-cert`); a certificate it does not trust is an
//!   [`RestError::Unreachable`] that says so.
//!
//! ```no_run
//! # async fn run() -> Result<(), bcfl_ledger::rest::RestError> {
//! use bcfl_ledger::rest::RestClient;
//!
//! let client = RestClient::new("http://127.0.0.1:8008")?;
//! let snapshot = client.state_list("bc7f1a", None).await?;
//! println!("{} entries at head {}", snapshot.entries.len(), snapshot.head);
//! # Ok(()) }
//! ```

mod error;
mod wire;

use std::time::{Duration, Instant};

pub use error::{RestError, Result};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;

use super::protocol::{is_header_signature, BatchList};

/// Where a batch stands, in Sawtooth's resolution order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BatchStatusKind {
    /// In a block of the current chain.
    Committed,
    /// A transaction was rejected.
    Invalid,
    /// Queued for a block.
    Pending,
    /// Not known (never seen, waiting for dependencies, or invalid info expired).
    Unknown,
}

impl BatchStatusKind {
    /// The REST API's name: `COMMITTED`, `INVALID`, `PENDING` or `UNKNOWN`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Committed => "COMMITTED",
            Self::Invalid => "INVALID",
            Self::Pending => "PENDING",
            Self::Unknown => "UNKNOWN",
        }
    }
}

impl std::fmt::Display for BatchStatusKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One rejected transaction of an INVALID batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidTransaction {
    /// The transaction id.
    pub id: String,
    /// The processor's message (empty when none).
    pub message: String,
    /// The processor's extended data.
    pub extended_data: Vec<u8>,
}

/// The status of one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchStatus {
    /// The batch id.
    pub id: String,
    /// Where it stands.
    pub status: BatchStatusKind,
    /// Filled for INVALID batches.
    pub invalid_transactions: Vec<InvalidTransaction>,
}

/// One state leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateEntry {
    /// The 70-hex address.
    pub address: String,
    /// The raw bytes stored there.
    pub data: Vec<u8>,
}

/// Every leaf under a prefix as of one block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateSnapshot {
    /// The block id the state was read at.
    pub head: String,
    /// The leaves, sorted by address.
    pub entries: Vec<StateEntry>,
}

/// A transaction as it appears in a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockTransaction {
    /// The transaction id.
    pub id: String,
    /// The id of the batch holding it.
    pub batch_id: String,
    /// Its family.
    pub family_name: String,
    /// Its family version.
    pub family_version: String,
    /// Who signed it.
    pub signer_public_key: String,
    /// Its payload.
    pub payload: Vec<u8>,
}

/// A block, with the parts an auditor needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The block id.
    pub id: String,
    /// Its height (genesis is 0).
    pub block_num: u64,
    /// Its parent's id.
    pub previous_block_id: String,
    /// The validator that signed it.
    pub signer_public_key: String,
    /// The Merkle root after its batches.
    pub state_root_hash: String,
    /// Its batches' ids, in order.
    pub batch_ids: Vec<String>,
    /// Its transactions, in order.
    pub transactions: Vec<BlockTransaction>,
}

/// Exponential backoff for HTTP 429 and 503, and for reads whose connection broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (1 means no retry).
    pub attempts: u32,
    /// The first delay; each next one doubles.
    pub initial_delay: Duration,
    /// The longest delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 8,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `retry` (0-based).
    pub fn delay(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry);
        self.initial_delay
            .saturating_mul(factor)
            .min(self.max_delay)
    }
}

/// The longest `wait` one batch-status request asks for; longer waits repeat the request.
const MAX_WAIT_PER_REQUEST: Duration = Duration::from_secs(60);
/// How long a plain request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A client of one REST API.
#[derive(Debug, Clone)]
pub struct RestClient {
    base: String,
    http: reqwest::Client,
    retry: RetryPolicy,
}

impl RestClient {
    /// A client of the REST API at `base_url` (`http://host:port` or `https://host:port`,
    /// optionally with a path).
    pub fn new(base_url: &str) -> Result<Self> {
        let invalid = |reason: String| RestError::InvalidUrl {
            url: base_url.to_owned(),
            reason,
        };
        let url = reqwest::Url::parse(base_url).map_err(|e| invalid(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(invalid("expected http://host[:port]".to_owned()));
        }
        // https:// with rustls: the built-in roots and the CAs the process trusts (`--ca-cert`).
        let http = bcfl_tls::client_builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| invalid(e.to_string()))?;
        Ok(Self {
            base: base_url.trim_end_matches('/').to_owned(),
            http,
            retry: RetryPolicy::default(),
        })
    }

    /// Replaces the retry policy.
    #[must_use]
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Sends a request built by `make` (called again for each retry), mapping errors. A `read`
    /// (a GET, which changes nothing) is also sent again after [`broke_in_flight`].
    async fn send(
        &self,
        url: &str,
        read: bool,
        make: impl Fn() -> RequestBuilder,
    ) -> Result<Response> {
        let mut retry = 0;
        loop {
            let (err, transient) = match make().send().await {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) => (error_from_response(url, response).await, false),
                Err(e) => (
                    RestError::Unreachable {
                        url: url.to_owned(),
                        reason: transport_reason(&e),
                    },
                    read && broke_in_flight(&e),
                ),
            };
            if !(err.is_retryable() || transient) || retry + 1 >= self.retry.attempts {
                return Err(err);
            }
            let delay = self.retry.delay(retry);
            tracing::debug!(%url, error = %err, ?delay, "retrying");
            tokio::time::sleep(delay).await;
            retry += 1;
        }
    }

    async fn get_json<T: DeserializeOwned>(&self, url: &str, timeout: Duration) -> Result<T> {
        let response = self
            .send(url, true, || self.http.get(url).timeout(timeout))
            .await?;
        decode_json(url, response).await
    }

    /// Posts the batches. Returns once the REST API accepted them (HTTP 202).
    pub async fn submit_batches(&self, batches: &BatchList) -> Result<()> {
        let url = format!("{}/batches", self.base);
        let body = batches.to_bytes();
        // Not sent again when the connection breaks: the batch may have been received.
        self.send(&url, false, || {
            self.http
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .timeout(REQUEST_TIMEOUT)
                .body(body.clone())
        })
        .await?;
        tracing::debug!(batches = ?batches.ids(), "submitted");
        Ok(())
    }

    /// The statuses of `ids`, in order. With `wait`, the REST API holds the answer until no batch
    /// is pending or the wait (whole seconds, at least 1) passes.
    pub async fn batch_statuses(
        &self,
        ids: &[String],
        wait: Option<Duration>,
    ) -> Result<Vec<BatchStatus>> {
        let mut url = format!("{}/batch_statuses?id={}", self.base, ids.join(","));
        let mut timeout = REQUEST_TIMEOUT;
        if let Some(wait) = wait {
            let secs = wait.as_secs().max(1);
            url.push_str(&format!("&wait={secs}"));
            timeout += Duration::from_secs(secs);
        }
        let statuses: wire::Statuses = self.get_json(&url, timeout).await?;
        statuses
            .data
            .into_iter()
            .map(|s| s.into_native())
            .collect::<Result<_, String>>()
            .map_err(|reason| RestError::Decode { url, reason })
    }

    /// Polls until no batch is PENDING or UNKNOWN, or `timeout` passes; returns the last statuses.
    pub async fn wait_for_batches(
        &self,
        ids: &[String],
        timeout: Duration,
    ) -> Result<Vec<BatchStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let wait = remaining.min(MAX_WAIT_PER_REQUEST);
            let server_wait = (wait >= Duration::from_secs(1)).then_some(wait);
            let statuses = self.batch_statuses(ids, server_wait).await?;
            let pending = statuses
                .iter()
                .any(|s| s.status == BatchStatusKind::Pending);
            let unknown = statuses
                .iter()
                .any(|s| s.status == BatchStatusKind::Unknown);
            if (!pending && !unknown) || Instant::now() >= deadline {
                return Ok(statuses);
            }
            if (unknown && !pending) || server_wait.is_none() {
                // The REST API does not hold UNKNOWN answers, nor answers without `wait`:
                // poll gently.
                let pause = Duration::from_millis(200).min(remaining);
                tokio::time::sleep(pause).await;
            }
        }
    }

    /// Submits `batches` and, with `wait`, waits for them as [`wait_for_batches`] does.
    ///
    /// An INVALID batch is an error: [`RestError::Rejected`] with the processor's message.
    /// Without `wait` the statuses are read once, right after submission.
    ///
    /// [`wait_for_batches`]: Self::wait_for_batches
    pub async fn submit(
        &self,
        batches: &BatchList,
        wait: Option<Duration>,
    ) -> Result<Vec<BatchStatus>> {
        self.submit_batches(batches).await?;
        let ids = batches.ids();
        let statuses = match wait {
            Some(timeout) => self.wait_for_batches(&ids, timeout).await?,
            None => self.batch_statuses(&ids, None).await?,
        };
        if let Some(invalid) = statuses
            .iter()
            .find(|s| s.status == BatchStatusKind::Invalid)
        {
            let first = invalid.invalid_transactions.first();
            return Err(RestError::Rejected {
                batch_id: invalid.id.clone(),
                transaction_id: first.map(|t| t.id.clone()),
                message: first.map(|t| t.message.clone()).unwrap_or_default(),
            });
        }
        Ok(statuses)
    }

    /// The bytes at one full address (at `head`, or the chain head); `None` when nothing is
    /// stored there.
    pub async fn state(&self, address: &str, head: Option<&str>) -> Result<Option<Vec<u8>>> {
        let mut url = format!("{}/state/{address}", self.base);
        if let Some(head) = head {
            check_id(&url, head)?;
            url.push_str(&format!("?head={head}"));
        }
        match self.get_json::<wire::StateGet>(&url, REQUEST_TIMEOUT).await {
            Ok(got) => {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD
                    .decode(&got.data)
                    .map(Some)
                    .map_err(|e| RestError::Decode {
                        url,
                        reason: format!("bad base64: {e}"),
                    })
            }
            // Code 75: no state at the address. A 404 with another code (50: unknown head)
            // stays an error.
            Err(RestError::NotFound { code: Some(75), .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every leaf whose address starts with `prefix`, following the pages, all read at the same
    /// head (`head`, or the chain head of the first page).
    pub async fn state_list(&self, prefix: &str, head: Option<&str>) -> Result<StateSnapshot> {
        let base_url = format!("{}/state?address={prefix}", self.base);
        if let Some(head) = head {
            check_id(&base_url, head)?;
        }
        let mut pinned = head.map(str::to_owned);
        let mut start: Option<String> = None;
        let mut entries = Vec::new();
        loop {
            let mut url = base_url.clone();
            if let Some(head) = &pinned {
                url.push_str(&format!("&head={head}"));
            }
            if let Some(start) = &start {
                url.push_str(&format!("&start={start}"));
            }
            let page: wire::StateList = self.get_json(&url, REQUEST_TIMEOUT).await?;
            for entry in page.data {
                entries.push(entry.into_native().map_err(|reason| RestError::Decode {
                    url: url.clone(),
                    reason,
                })?);
            }
            pinned.get_or_insert(page.head);
            match next_start(&url, &page.paging)? {
                Some(next) => start = Some(next),
                None => break,
            }
        }
        Ok(StateSnapshot {
            head: pinned.unwrap_or_default(),
            entries,
        })
    }

    /// Blocks newest first, from `head` (or the chain head), following pages until `max` blocks
    /// (all when `None`).
    pub async fn blocks(&self, head: Option<&str>, max: Option<usize>) -> Result<Vec<Block>> {
        let base_url = format!("{}/blocks", self.base);
        if let Some(head) = head {
            check_id(&base_url, head)?;
        }
        let mut pinned = head.map(str::to_owned);
        let mut start: Option<String> = None;
        let mut blocks = Vec::new();
        loop {
            let mut query = Vec::new();
            if let Some(head) = &pinned {
                query.push(format!("head={head}"));
            }
            if let Some(start) = &start {
                query.push(format!("start={start}"));
            }
            if let Some(max) = max {
                query.push(format!("limit={}", (max - blocks.len()).clamp(1, 1000)));
            }
            let url = if query.is_empty() {
                base_url.clone()
            } else {
                format!("{base_url}?{}", query.join("&"))
            };
            let page: wire::BlockList = self.get_json(&url, REQUEST_TIMEOUT).await?;
            for block in page.data {
                blocks.push(block.into_native().map_err(|reason| RestError::Decode {
                    url: url.clone(),
                    reason,
                })?);
            }
            if pinned.is_none() {
                pinned = page.head;
            }
            if max.is_some_and(|m| blocks.len() >= m) {
                blocks.truncate(max.unwrap_or(usize::MAX));
                break;
            }
            match next_start(&url, &page.paging)? {
                Some(next) => start = Some(next),
                None => break,
            }
        }
        Ok(blocks)
    }

    /// The current chain head block.
    pub async fn chain_head(&self) -> Result<Block> {
        let url = format!("{}/blocks", self.base);
        self.blocks(None, Some(1))
            .await?
            .into_iter()
            .next()
            .ok_or(RestError::Decode {
                url,
                reason: "the chain has no blocks".to_owned(),
            })
    }
}

/// The `start` of the next page: `paging.next_position`, or the `start` query of `paging.next`.
fn next_start(url: &str, paging: &wire::Paging) -> Result<Option<String>> {
    if let Some(position) = &paging.next_position {
        return Ok(Some(position.clone()));
    }
    let Some(next) = &paging.next else {
        return Ok(None);
    };
    let parsed = reqwest::Url::parse(next).map_err(|e| RestError::Decode {
        url: url.to_owned(),
        reason: format!("bad paging.next {next:?}: {e}"),
    })?;
    let start = parsed
        .query_pairs()
        .find(|(k, _)| k == "start")
        .map(|(_, v)| v.into_owned());
    match start {
        Some(start) => Ok(Some(start)),
        None => Err(RestError::Decode {
            url: url.to_owned(),
            reason: format!("paging.next {next:?} has no start"),
        }),
    }
}

fn check_id(url: &str, id: &str) -> Result<()> {
    if is_header_signature(id) {
        Ok(())
    } else {
        Err(RestError::InvalidUrl {
            url: url.to_owned(),
            reason: format!("head {id:?} is not a block id (128 lowercase hex)"),
        })
    }
}

/// Whether `e` broke a request on a connection that had been made: not a refused or failed
/// connection, nor a timeout (nothing listens, or nothing answers in time: said at once), but a
/// connection closed or reset under the request, as when the server closes an idle pooled
/// keep-alive connection just as the client reuses it. Sending a read again then is safe.
fn broke_in_flight(e: &reqwest::Error) -> bool {
    e.is_request() && !e.is_connect() && !e.is_timeout()
}

/// The error and its causes; an untrusted certificate says how to trust it.
fn transport_reason(e: &reqwest::Error) -> String {
    bcfl_tls::explain(e)
}

async fn decode_json<T: DeserializeOwned>(url: &str, response: Response) -> Result<T> {
    let bytes = response.bytes().await.map_err(|e| RestError::Unreachable {
        url: url.to_owned(),
        reason: transport_reason(&e),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| RestError::Decode {
        url: url.to_owned(),
        reason: e.to_string(),
    })
}

/// Maps a non-success response to [`RestError`], decoding Sawtooth's error body when present.
async fn error_from_response(url: &str, response: Response) -> RestError {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    let url = url.to_owned();
    let parsed = serde_json::from_str::<wire::ErrorEnvelope>(&body).ok();
    match (status, parsed) {
        (StatusCode::NOT_FOUND, Some(envelope)) => RestError::NotFound {
            url,
            code: Some(envelope.error.code),
            message: envelope.error.message,
        },
        (StatusCode::NOT_FOUND, None) => RestError::NotFound {
            url,
            code: None,
            message: snippet(&body),
        },
        (_, Some(envelope)) => RestError::Api {
            url,
            status: status.as_u16(),
            code: envelope.error.code,
            title: envelope.error.title,
            message: envelope.error.message,
        },
        (_, None) => RestError::Http {
            url,
            status: status.as_u16(),
            body: snippet(&body),
        },
    }
}

fn snippet(body: &str) -> String {
    let trimmed = body.trim();
    match trimmed.char_indices().nth(200) {
        Some((cut, _)) => format!("{}...", &trimmed[..cut]),
        None => trimmed.to_owned(),
    }
}

#[cfg(test)]
mod tests;
