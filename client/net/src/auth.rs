//! Signed requests between members' blob servers.
//!
//! Every request one node makes to another's blob server carries five headers:
//!
//! | header | value |
//! | --- | --- |
//! | `x-bcfl-key` | the requester's public key (66 hex characters, its ledger key) |
//! | `x-bcfl-timestamp` | Unix time in seconds when it was signed |
//! | `x-bcfl-nonce` | 32 lowercase hex characters, random, never reused |
//! | `x-bcfl-content-sha256` | the SHA-256 of the body, hex (of no bytes for a `GET`) |
//! | `x-bcfl-signature` | the key's secp256k1 signature, Sawtooth's format ([`bcfl_ledger::keys`]), of the [`canonical_request`] |
//!
//! The canonical request ([`canonical_request`], the one function both sides use) is a line
//! each of: a version tag, the method, the path, the query exactly as sent, the *target*: the
//! node id of the server asked (its public key as registered on chain, so a request signed for
//! one member cannot be replayed at another), the key, the timestamp, the nonce and the body's
//! SHA-256.
//!
//! A server checks a request with its [`Authenticator`], in this order: the headers are present
//! and well formed, else 401; the timestamp is within [`DEFAULT_MAX_SKEW`] of the server's
//! clock (configurable), else 401; the signature verifies for the server's own id as target,
//! else 401; the key is authorized by the server's [`Registry`]: an active registered member or
//! a consortium admin (admins run the operator commands `bcfl node fetch|distribute`, and can
//! register any key as a member anyway), else 403, after the registry re-read the ledger once
//! ([`Registry::authorize`], rate-limited) so a member registered since the last refresh is
//! served; the nonce has not been seen within the window, else 401. Seen nonces are kept in a
//! bounded [`NonceCache`] until they leave the window; when it is full the server answers 503
//! rather than forget one (a forgotten nonce could be replayed). One key may hold at most a
//! sixteenth of the cache ([`NonceCache::per_key`]); beyond that its requests get 429 until its
//! nonces leave the window, so one flooding member cannot fill the cache and lock the others
//! out. A body is checked against its
//! declared SHA-256: a body whose `Content-Length` is at most [`MAX_BUFFERED_BODY`] before the
//! handler runs (401 on a mismatch), any other (bandwidth probes, chunked bodies) as it streams,
//! the body ending in an error on a mismatch. The server's own id is the one its registry
//! names ([`Registry::me`], e.g. `--me`), else its key.
//!
//! No route is open: blobs, manifests, lists, relays, pulls and probes all need a member's
//! signature. A health check is the TCP connection (the commands print their bound address
//! once listening); nothing a server holds is served to a non-member. Relays and pulls fetch
//! upstream with the relaying node's own signature ([`PeerClient`]), so every hop is
//! authenticated by the next one.
//!
//! ```
//! use bcfl_ledger::keys::{PrivateKey, Signer};
//! use bcfl_net::auth::{canonical_request, RequestParts, SignedHeaders};
//!
//! let signer = Signer::new(PrivateKey::random());
//! let headers = SignedHeaders::sign(&signer, "GET", "/v1/blobs", None, "target-key", &[], 1_700_000_000);
//! let parts = headers.parts("GET", "/v1/blobs", None, "target-key");
//! assert!(signer.public_key().verify(canonical_request(&parts).as_bytes(), &headers.signature));
//! ```

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bcfl_ledger::keys::{PublicKey, Signer};
use bytes::Bytes;
use futures_util::StreamExt;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::registry::Registry;

/// The requester's public key.
pub const HEADER_KEY: &str = "x-bcfl-key";
/// Unix seconds at signing.
pub const HEADER_TIMESTAMP: &str = "x-bcfl-timestamp";
/// A random, single-use value.
pub const HEADER_NONCE: &str = "x-bcfl-nonce";
/// The SHA-256 of the body, hex.
pub const HEADER_CONTENT_SHA256: &str = "x-bcfl-content-sha256";
/// The signature of the canonical request.
pub const HEADER_SIGNATURE: &str = "x-bcfl-signature";

/// The first line of every canonical request (a new version gets a new tag).
pub const CANONICAL_VERSION: &str = "BCFL-REQUEST-V1";

/// How far a request's timestamp may be from the server's clock by default: 60 s.
pub const DEFAULT_MAX_SKEW: Duration = Duration::from_secs(60);

/// How many nonces a server remembers by default (each for twice the skew window).
pub const DEFAULT_MAX_NONCES: usize = 1 << 18;

/// Bodies up to this size are checked against their hash before the handler runs: 1 MiB.
pub const MAX_BUFFERED_BODY: usize = 1 << 20;

/// What a signature covers; see [`canonical_request`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestParts<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The path, as sent (`/v1/blobs/...`).
    pub path: &'a str,
    /// The query, as sent, without the `?` (`None`: no query).
    pub query: Option<&'a str>,
    /// The node id of the server the request is for.
    pub target: &'a str,
    /// The requester's public key, hex.
    pub key: &'a str,
    /// Unix seconds at signing.
    pub timestamp: u64,
    /// The nonce.
    pub nonce: &'a str,
    /// The SHA-256 of the body, hex.
    pub content_sha256: &'a str,
}

/// The bytes a request's signature covers: one line per part, in a fixed order.
///
/// No part may contain a newline (paths, queries and header values cannot), so the lines are
/// unambiguous.
pub fn canonical_request(parts: &RequestParts<'_>) -> String {
    format!(
        "{CANONICAL_VERSION}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}",
        parts.method,
        parts.path,
        parts.query.unwrap_or(""),
        parts.target,
        parts.key,
        parts.timestamp,
        parts.nonce,
        parts.content_sha256,
    )
}

/// The SHA-256 of `body`, hex.
pub fn content_sha256(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The authentication headers of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// The requester's public key.
    pub key: String,
    /// Unix seconds at signing.
    pub timestamp: u64,
    /// A fresh random nonce.
    pub nonce: String,
    /// The body's SHA-256, hex.
    pub content_sha256: String,
    /// The signature.
    pub signature: String,
}

impl SignedHeaders {
    /// Signs a request with a fresh nonce; `body` is the whole body.
    pub fn sign(
        signer: &Signer,
        method: &str,
        path: &str,
        query: Option<&str>,
        target: &str,
        body: &[u8],
        timestamp: u64,
    ) -> Self {
        Self::sign_hashed(
            signer,
            method,
            path,
            query,
            target,
            content_sha256(body),
            timestamp,
        )
    }

    /// Signs a request whose body hashes to `content_sha256` (hex), with a fresh nonce.
    pub fn sign_hashed(
        signer: &Signer,
        method: &str,
        path: &str,
        query: Option<&str>,
        target: &str,
        content_sha256: String,
        timestamp: u64,
    ) -> Self {
        let mut nonce = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut nonce);
        let mut headers = Self {
            key: signer.public_key().as_hex().to_owned(),
            timestamp,
            nonce: hex::encode(nonce),
            content_sha256,
            signature: String::new(),
        };
        let canonical = canonical_request(&headers.parts(method, path, query, target));
        headers.signature = signer.sign(canonical.as_bytes());
        headers
    }

    /// The parts these headers sign for a request.
    pub fn parts<'a>(
        &'a self,
        method: &'a str,
        path: &'a str,
        query: Option<&'a str>,
        target: &'a str,
    ) -> RequestParts<'a> {
        RequestParts {
            method,
            path,
            query,
            target,
            key: &self.key,
            timestamp: self.timestamp,
            nonce: &self.nonce,
            content_sha256: &self.content_sha256,
        }
    }

    /// The headers as `(name, value)` pairs.
    pub fn pairs(&self) -> [(&'static str, String); 5] {
        [
            (HEADER_KEY, self.key.clone()),
            (HEADER_TIMESTAMP, self.timestamp.to_string()),
            (HEADER_NONCE, self.nonce.clone()),
            (HEADER_CONTENT_SHA256, self.content_sha256.clone()),
            (HEADER_SIGNATURE, self.signature.clone()),
        ]
    }

    /// Reads the headers of a request; `Err` names the first missing or malformed one.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, AuthError> {
        let text = |name: &'static str| {
            headers
                .get(name)
                .ok_or(AuthError::Missing(name))?
                .to_str()
                .map_err(|_| AuthError::Malformed(name))
        };
        let hex_of = |name: &'static str, lens: std::ops::RangeInclusive<usize>| {
            let value = text(name)?;
            let ok = lens.contains(&value.len())
                && value
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
            if ok {
                Ok(value.to_owned())
            } else {
                Err(AuthError::Malformed(name))
            }
        };
        Ok(Self {
            key: hex_of(HEADER_KEY, 66..=66)?,
            timestamp: text(HEADER_TIMESTAMP)?
                .parse()
                .map_err(|_| AuthError::Malformed(HEADER_TIMESTAMP))?,
            nonce: hex_of(HEADER_NONCE, 16..=64)?,
            content_sha256: hex_of(HEADER_CONTENT_SHA256, 64..=64)?,
            signature: hex_of(HEADER_SIGNATURE, 128..=128)?,
        })
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// An authentication header is missing (401).
    #[error("missing header {0}: requests must be signed with a member's key")]
    Missing(&'static str),
    /// An authentication header is malformed (401).
    #[error("malformed header {0}")]
    Malformed(&'static str),
    /// The timestamp is outside the window (401).
    #[error("timestamp {timestamp} is more than {max_skew_s} s from the server's clock ({now})")]
    Stale {
        /// The request's timestamp.
        timestamp: u64,
        /// The server's clock.
        now: u64,
        /// The window.
        max_skew_s: u64,
    },
    /// The signature does not verify for this request and this server (401).
    #[error("invalid signature (for this method, path, query, body and server)")]
    BadSignature,
    /// The nonce was used before (401).
    #[error("replayed request (nonce already used)")]
    Replayed,
    /// A valid signature by a key that is not an active member or admin (403).
    #[error("key {0} is not an active member of the consortium")]
    NotMember(String),
    /// The body does not hash to the declared SHA-256 (401).
    #[error("the body does not match {HEADER_CONTENT_SHA256}")]
    BodyMismatch,
    /// Too many nonces within the window (503).
    #[error("too many requests within the replay window; retry later")]
    Busy,
    /// This key sent more than its share of the window's requests (429).
    #[error("key {0} sent too many requests within the replay window; retry later")]
    KeyBusy(String),
}

impl AuthError {
    /// The status the server answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotMember(_) => StatusCode::FORBIDDEN,
            Self::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Self::KeyBusy(_) => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::UNAUTHORIZED,
        }
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (
            status,
            Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("BCFL-SECP256K1"),
            );
        }
        response
    }
}

/// Nonces seen within the window, bounded; see the module docs.
#[derive(Debug)]
pub struct NonceCache {
    capacity: usize,
    per_key: usize,
    held: std::collections::HashMap<String, usize>,
    seen: HashSet<(String, String)>,
    /// `(expiry, key, nonce)`, oldest first.
    order: VecDeque<(u64, String, String)>,
}

impl NonceCache {
    /// A cache of at most `capacity` nonces, at most `capacity / 16` (at least 1) of one key.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            per_key: (capacity / 16).max(1),
            held: std::collections::HashMap::new(),
            seen: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    /// Records `(key, nonce)`, remembered until `expiry` (Unix seconds); `now` drops the
    /// expired ones first. Refuses a pair seen before, and any new one when full.
    pub fn insert(
        &mut self,
        key: &str,
        nonce: &str,
        expiry: u64,
        now: u64,
    ) -> Result<(), AuthError> {
        while let Some((e, _, _)) = self.order.front() {
            if *e > now {
                break;
            }
            let (_, k, n) = self.order.pop_front().expect("front exists");
            if let Some(count) = self.held.get_mut(&k) {
                *count -= 1;
                if *count == 0 {
                    self.held.remove(&k);
                }
            }
            self.seen.remove(&(k, n));
        }
        let pair = (key.to_owned(), nonce.to_owned());
        if self.seen.contains(&pair) {
            return Err(AuthError::Replayed);
        }
        if self.held.get(key).copied().unwrap_or(0) >= self.per_key {
            return Err(AuthError::KeyBusy(key.to_owned()));
        }
        if self.seen.len() >= self.capacity {
            return Err(AuthError::Busy);
        }
        self.order
            .push_back((expiry, pair.0.clone(), pair.1.clone()));
        *self.held.entry(pair.0.clone()).or_insert(0) += 1;
        self.seen.insert(pair);
        Ok(())
    }

    /// The most nonces one key may hold at once.
    pub fn per_key(&self) -> usize {
        self.per_key
    }

    /// How many nonces are held.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

/// A server's check of signed requests; see the module docs. Clones share the nonce cache.
#[derive(Debug, Clone)]
pub struct Authenticator {
    me: Option<String>,
    registry: Registry,
    max_skew: Duration,
    nonces: Arc<Mutex<NonceCache>>,
}

impl Authenticator {
    /// Accepts requests signed by keys `registry` authorizes for the node the registry names
    /// as itself ([`Registry::me`]), else `me` (the node's key; `None` and no id in the
    /// registry: every request is refused).
    pub fn new(me: Option<String>, registry: Registry) -> Self {
        Self {
            me,
            registry,
            max_skew: DEFAULT_MAX_SKEW,
            nonces: Arc::new(Mutex::new(NonceCache::new(DEFAULT_MAX_NONCES))),
        }
    }

    /// Accepts timestamps within `skew` of the server's clock (default [`DEFAULT_MAX_SKEW`]).
    pub fn with_max_skew(mut self, skew: Duration) -> Self {
        self.max_skew = skew;
        self
    }

    /// Remembers at most `capacity` nonces (default [`DEFAULT_MAX_NONCES`]).
    pub fn with_nonce_capacity(mut self, capacity: usize) -> Self {
        self.nonces = Arc::new(Mutex::new(NonceCache::new(capacity)));
        self
    }

    /// The node id requests must be signed for.
    pub fn me(&self) -> Option<String> {
        self.registry.me().or_else(|| self.me.clone())
    }

    /// Checks a request's signature, freshness, key and nonce at Unix time `now`; returns the
    /// requester's key. The body's hash is checked by the caller against
    /// `headers.content_sha256`.
    pub async fn check(
        &self,
        method: &str,
        path: &str,
        query: Option<&str>,
        headers: &SignedHeaders,
        now: u64,
    ) -> Result<String, AuthError> {
        let skew = self.max_skew.as_secs();
        if headers.timestamp.abs_diff(now) > skew {
            return Err(AuthError::Stale {
                timestamp: headers.timestamp,
                now,
                max_skew_s: skew,
            });
        }
        let target = self.me().ok_or(AuthError::BadSignature)?;
        let key =
            PublicKey::from_hex(&headers.key).map_err(|_| AuthError::Malformed(HEADER_KEY))?;
        let canonical = canonical_request(&headers.parts(method, path, query, &target));
        if !key.verify(canonical.as_bytes(), &headers.signature) {
            return Err(AuthError::BadSignature);
        }
        if !self.registry.authorize(&headers.key).await {
            return Err(AuthError::NotMember(headers.key.clone()));
        }
        // Remembered past both edges of the window: a request is fresh for 2 * skew.
        let expiry = headers.timestamp.saturating_add(skew).max(now) + 1;
        self.nonces.lock().expect("nonce cache").insert(
            &headers.key,
            &headers.nonce,
            expiry,
            now,
        )?;
        Ok(headers.key.clone())
    }
}

/// The axum middleware that lets only authenticated members through
/// (`axum::middleware::from_fn_with_state(authenticator, authenticate)`).
pub async fn authenticate(
    State(auth): State<Authenticator>,
    request: Request,
    next: Next,
) -> Response {
    let signed = match SignedHeaders::from_headers(request.headers()) {
        Ok(s) => s,
        Err(e) => return reject(&request, e),
    };
    let (method, path, query) = (
        request.method().as_str().to_owned(),
        request.uri().path().to_owned(),
        request.uri().query().map(str::to_owned),
    );
    let key = match auth
        .check(&method, &path, query.as_deref(), &signed, unix_now())
        .await
    {
        Ok(k) => k,
        Err(e) => return reject(&request, e),
    };
    let (parts, body) = request.into_parts();
    let declared_len = parts
        .headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let body = match declared_len {
        Some(n) if n <= MAX_BUFFERED_BODY as u64 => {
            match axum::body::to_bytes(body, MAX_BUFFERED_BODY).await {
                Ok(bytes) if content_sha256(&bytes) == signed.content_sha256 => Body::from(bytes),
                Ok(_) => return AuthError::BodyMismatch.into_response(),
                Err(_) => {
                    return (StatusCode::BAD_REQUEST, "unreadable body").into_response();
                }
            }
        }
        _ => verified_stream(body, signed.content_sha256.clone()),
    };
    tracing::trace!(%key, %method, %path, "authenticated");
    next.run(Request::from_parts(parts, body)).await
}

fn reject(request: &Request, error: AuthError) -> Response {
    tracing::debug!(method = %request.method(), path = %request.uri().path(), %error, "request refused");
    error.into_response()
}

/// `body`, hashed as it streams; it ends in an error instead of its end when the hash is not
/// `expected`.
fn verified_stream(body: Body, expected: String) -> Body {
    let stream = body.into_data_stream();
    let hashed = futures_util::stream::unfold(
        (stream, Some(Sha256::new()), expected),
        |(mut stream, hasher, expected)| async move {
            let mut hasher = hasher?;
            match stream.next().await {
                Some(Ok(piece)) => {
                    hasher.update(&piece);
                    Some((
                        Ok::<Bytes, axum::Error>(piece),
                        (stream, Some(hasher), expected),
                    ))
                }
                Some(Err(e)) => Some((Err(e), (stream, None, expected))),
                None if hex::encode(hasher.finalize()) == expected => None,
                None => Some((
                    Err(axum::Error::new(AuthError::BodyMismatch)),
                    (stream, None, expected),
                )),
            }
        },
    );
    Body::from_stream(hashed)
}

/// The HTTP client of a node: a `reqwest::Client` and the node's key, which signs every
/// request ([`SignedHeaders`]) for the peer it is addressed to. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PeerClient {
    http: reqwest::Client,
    signer: Option<Arc<Signer>>,
}

impl PeerClient {
    /// A client signing with `signer`.
    pub fn new(http: reqwest::Client, signer: Arc<Signer>) -> Self {
        Self {
            http,
            signer: Some(signer),
        }
    }

    /// A client that signs nothing: every blob server refuses its requests (401). For tests
    /// of what a server does with anonymous requests.
    pub fn unsigned(http: reqwest::Client) -> Self {
        Self { http, signer: None }
    }

    /// The public key requests are signed with.
    pub fn key(&self) -> Option<&str> {
        self.signer.as_deref().map(|s| s.public_key().as_hex())
    }

    /// The underlying client (unsigned requests).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// A `GET` of `url` from the node `peer`, signed.
    pub fn get(&self, peer: &str, url: &str) -> reqwest::RequestBuilder {
        self.signed(reqwest::Method::GET, peer, url, content_sha256(b""))
            .0
    }

    /// A `POST` of `body` to `url` on the node `peer`, signed.
    pub fn post(&self, peer: &str, url: &str, body: Vec<u8>) -> reqwest::RequestBuilder {
        let (builder, _) = self.signed(reqwest::Method::POST, peer, url, content_sha256(&body));
        builder.body(body)
    }

    /// A `POST` of JSON to `url` on the node `peer`, signed.
    pub fn post_json<T: serde::Serialize>(
        &self,
        peer: &str,
        url: &str,
        value: &T,
    ) -> reqwest::RequestBuilder {
        let body = serde_json::to_vec(value).unwrap_or_default();
        self.post(peer, url, body)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
    }

    /// A request to `url` on `peer` whose body (set by the caller) hashes to `body_sha256`
    /// (hex), signed.
    pub fn request_hashed(
        &self,
        method: reqwest::Method,
        peer: &str,
        url: &str,
        body_sha256: String,
    ) -> reqwest::RequestBuilder {
        self.signed(method, peer, url, body_sha256).0
    }

    fn signed(
        &self,
        method: reqwest::Method,
        peer: &str,
        url: &str,
        body_sha256: String,
    ) -> (reqwest::RequestBuilder, Option<SignedHeaders>) {
        let mut builder = self.http.request(method.clone(), url);
        let (Some(signer), Ok(parsed)) = (&self.signer, reqwest::Url::parse(url)) else {
            return (builder, None);
        };
        let headers = SignedHeaders::sign_hashed(
            signer,
            method.as_str(),
            parsed.path(),
            parsed.query(),
            peer,
            body_sha256,
            unix_now(),
        );
        for (name, value) in headers.pairs() {
            builder = builder.header(name, value);
        }
        (builder, Some(headers))
    }
}
