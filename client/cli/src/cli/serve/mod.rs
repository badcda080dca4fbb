//! `bcfl audit serve`: the auditor's page, a read-only web view of the ledger over any Sawtooth
//! REST API (devnet or a real network).
//!
//! One background task follows the chain: it reads the family state, and waits for the next
//! block on the REST API's `/subscriptions` websocket (polling when the websocket cannot be
//! held, through [`RestLedger`]); each new head becomes a [`Snapshot`] that every request reads.
//! The page is one HTML file, a stylesheet and two scripts (the page's and a SHA-256 for
//! browsers without `crypto.subtle`), all compiled into the binary and served under
//! content-hashed names; the browser gets each new head as a server-sent event and reloads only
//! the data.
//!
//! | route | what |
//! | --- | --- |
//! | `/` | the page (`no-cache`, ETag) |
//! | `/assets/NAME-HASH.EXT` | its stylesheet and scripts (immutable for a year) |
//! | `/api/overview` | consortium, members, rounds' timeline (JSON; ETag = head) |
//! | `/api/rounds/N` | round N in detail (JSON) |
//! | `/api/members/KEY` | a member in detail: commitments, aggregates, links (JSON) |
//! | `/api/hashes/SHA256` | the commitments and aggregates that record this SHA-256 (JSON) |
//! | `/api/rounds/N/graph.svg` | round N's bandwidth graph and routing tree (SVG) |
//! | `/api/charts/accuracy.svg`, `/api/charts/rounds.svg` | charts of the nodes' report files (SVG) |
//! | `/api/events` | `head` events, one per new block (server-sent events) |
//!
//! Every response carries a content security policy that allows only this origin, so the page
//! makes no request elsewhere; ledger text (member names, endpoints) is inserted as text, never
//! as markup.

mod view;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::{Path, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bcfl_client::round::ledger::Ledger as _;
use bcfl_client::round::rest::RestLedger;
use bcfl_ledger::state::FamilyState;
use clap::Args;
use futures_util::stream::{self, Stream};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::Context;

/// Arguments of `audit serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on (port 0: any free port; the chosen one is printed).
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// REST API URL of a validator, repeatable (tried in turn) [default: --url].
    #[arg(long = "ledger", value_name = "URL")]
    ledgers: Vec<String>,
    /// Node report files (JSON lines of `bcfl node run --report`), or folders of `*.jsonl`
    /// files, for the accuracy and round-time charts; repeatable.
    #[arg(long = "reports", value_name = "PATH")]
    reports: Vec<PathBuf>,
    /// Seconds between reads of the ledger when no block arrives on its websocket.
    #[arg(long, default_value_t = 15)]
    poll_seconds: u64,
    /// Serve https with this certificate chain (PEM, leaf first): browsers then give the page
    /// `crypto.subtle` from any machine.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

/// The ledger as of one head, with the overview already rendered.
#[derive(Debug, Default)]
struct Snapshot {
    state: FamilyState,
    overview: Vec<u8>,
    hashes: HashMap<String, Vec<view::HashView>>,
    /// Why the last read of the ledger failed, until one succeeds again.
    error: Option<String>,
}

impl Snapshot {
    /// The snapshot of `state`, read from `ledger` (`charts`: report files were given).
    fn of(state: FamilyState, ledger: &str, charts: bool) -> Self {
        let overview = serde_json::to_vec(&view::overview(&state, ledger, charts))
            .expect("the overview serializes");
        Self {
            hashes: view::hash_index(&state),
            state,
            overview,
            error: None,
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
struct AppState {
    snapshot: watch::Receiver<Arc<Snapshot>>,
    reports: Arc<Vec<PathBuf>>,
    assets: Arc<Assets>,
}

/// A bundled file.
struct Asset {
    /// Its served name, with the first 16 hex digits of its SHA-256 (`app-0123456789abcdef.js`).
    name: String,
    content_type: &'static str,
    body: &'static [u8],
}

/// The page and its files, compiled in.
struct Assets {
    index: Vec<u8>,
    index_etag: String,
    files: Vec<Asset>,
}

impl Assets {
    fn bundled() -> Self {
        let files: Vec<Asset> = [
            ("app", "js", "text/javascript; charset=utf-8", APP_JS),
            ("sha256", "js", "text/javascript; charset=utf-8", SHA256_JS),
            ("app", "css", "text/css; charset=utf-8", APP_CSS),
        ]
        .iter()
        .map(|&(stem, ext, content_type, body)| Asset {
            name: format!("{stem}-{}.{ext}", &hex::encode(Sha256::digest(body))[..16]),
            content_type,
            body: body.as_bytes(),
        })
        .collect();
        let mut index = INDEX_HTML.to_owned();
        for (placeholder, asset) in ["{{app.js}}", "{{sha256.js}}", "{{app.css}}"]
            .iter()
            .zip(&files)
        {
            index = index.replace(placeholder, &format!("/assets/{}", asset.name));
        }
        let index_etag = format!("\"{}\"", &hex::encode(Sha256::digest(&index))[..32]);
        Self {
            index: index.into_bytes(),
            index_etag,
            files,
        }
    }
}

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const SHA256_JS: &str = include_str!("assets/sha256.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// Only this origin: scripts and styles from it, data from it; SVG attributes may carry inline
/// styles.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

/// `bcfl audit serve`.
pub(crate) async fn serve(ctx: &Context, args: ServeArgs) -> anyhow::Result<()> {
    let urls = if args.ledgers.is_empty() {
        vec![ctx.client()?.base_url().to_owned()]
    } else {
        args.ledgers.clone()
    };
    for path in &args.reports {
        if !view::readable(path) {
            anyhow::bail!("--reports {}: no such file or folder", path.display());
        }
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(bcfl_tls::ServerTls::from_pem_files(cert, key)?),
        _ => None,
    };
    let ledger = RestLedger::new(&urls, Duration::from_secs(30))?;
    let (tx, snapshot) = watch::channel(Arc::new(Snapshot::default()));
    let charts = !args.reports.is_empty();
    let described = urls.join(", ");
    let poll = Duration::from_secs(args.poll_seconds.max(1));
    let follower = tokio::spawn(follow(ledger, described, charts, poll, tx));
    let app = router(AppState {
        snapshot,
        reports: Arc::new(args.reports),
        assets: Arc::new(Assets::bundled()),
    });
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let local = listener.local_addr()?;
    let url = format!(
        "{}://{local}/",
        if tls.is_some() { "https" } else { "http" }
    );
    if ctx.json() {
        ctx.print_json(&json!({"listening": local.to_string(), "url": url, "ledger": urls}));
    } else {
        println!(
            "the auditor's page is at {url} (ledger: {})",
            urls.join(", ")
        );
    }
    match tls {
        Some(tls) => {
            axum::serve(tls.listen(listener)?, app)
                .with_graceful_shutdown(super::node::shutdown_signal())
                .await?;
        }
        None => {
            axum::serve(bcfl_tls::plain(listener), app)
                .with_graceful_shutdown(super::node::shutdown_signal())
                .await?;
        }
    }
    follower.abort();
    Ok(())
}

/// Reads the ledger at each new block (or every `poll`) and publishes the snapshot.
async fn follow(
    ledger: RestLedger,
    described: String,
    charts: bool,
    poll: Duration,
    tx: watch::Sender<Arc<Snapshot>>,
) {
    let mut head = String::new();
    loop {
        match ledger.state().await {
            Ok(state) => {
                if state.head != head || tx.borrow().error.is_some() {
                    head = state.head.clone();
                    tracing::debug!(%head, "new head");
                    tx.send_replace(Arc::new(Snapshot::of(state, &described, charts)));
                }
                ledger.changed(&head, poll).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading the ledger");
                tx.send_modify(|s| {
                    *s = Arc::new(Snapshot {
                        state: s.state.clone(),
                        overview: s.overview.clone(),
                        hashes: s.hashes.clone(),
                        error: Some(e.to_string()),
                    });
                });
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/assets/{name}", get(asset))
        .route("/api/overview", get(overview))
        .route("/api/rounds/{number}", get(round))
        .route("/api/rounds/{number}/graph.svg", get(graph))
        .route("/api/hashes/{sha256}", get(hashes))
        .route("/api/members/{key}", get(member))
        .route("/api/charts/{name}", get(chart))
        .route("/api/events", get(events))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such page") })
        .layer(axum::middleware::map_response(secure))
        .with_state(state)
}

/// Headers every response carries.
async fn secure(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        axum::Json(json!({ "error": message })),
    )
        .into_response()
}

/// Whether the request's `If-None-Match` names `etag`.
fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| tag.trim() == etag || tag.trim() == "*")
}

/// A response validated by `etag` (`no-cache`: the browser asks each time, and gets 304 while
/// nothing changed).
fn validated(
    headers: &HeaderMap,
    etag: &str,
    content_type: &'static str,
    body: Vec<u8>,
) -> Response {
    let etag_value = HeaderValue::from_str(etag).expect("an ETag is ASCII");
    let cache = [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (header::ETAG, etag_value),
    ];
    if not_modified(headers, etag) {
        return (StatusCode::NOT_MODIFIED, cache).into_response();
    }
    (
        cache,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

async fn index(State(app): State<AppState>, headers: HeaderMap) -> Response {
    validated(
        &headers,
        &app.assets.index_etag,
        "text/html; charset=utf-8",
        app.assets.index.clone(),
    )
}

async fn asset(State(app): State<AppState>, Path(name): Path<String>) -> Response {
    match app.assets.files.iter().find(|a| a.name == name) {
        Some(a) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(a.content_type),
                ),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=31536000, immutable"),
                ),
            ],
            a.body,
        )
            .into_response(),
        None => error(StatusCode::NOT_FOUND, "no such asset"),
    }
}

/// An API error, answered as `{"error": message}` with its status and `no-store`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error(self.status, &self.message)
    }
}

/// The current snapshot, or 503 before the ledger was first read.
fn current(app: &AppState) -> Result<Arc<Snapshot>, ApiError> {
    let snapshot = app.snapshot.borrow().clone();
    if snapshot.overview.is_empty() {
        let why = snapshot
            .error
            .clone()
            .unwrap_or_else(|| "the ledger has not been read yet".to_owned());
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, why));
    }
    Ok(snapshot)
}

/// The ETag of everything derived from the state at `head`.
fn head_etag(head: &str) -> String {
    format!("\"{}\"", head.chars().take(64).collect::<String>())
}

/// `body`, derived from `snapshot`, validated by its head ([`validated`]).
fn at_head(
    headers: &HeaderMap,
    snapshot: &Snapshot,
    content_type: &'static str,
    body: Vec<u8>,
) -> Response {
    validated(
        headers,
        &head_etag(&snapshot.state.head),
        content_type,
        body,
    )
}

/// `value` as JSON, derived from `snapshot` ([`at_head`]).
fn json_at_head(
    headers: &HeaderMap,
    snapshot: &Snapshot,
    value: &impl serde::Serialize,
) -> Response {
    let body = serde_json::to_vec(value).expect("the API's views serialize");
    at_head(headers, snapshot, "application/json", body)
}

async fn overview(State(app): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let snapshot = current(&app)?;
    let mut response = at_head(
        &headers,
        &snapshot,
        "application/json",
        snapshot.overview.clone(),
    );
    if let Some(e) = &snapshot.error {
        // The data is the last good read; say why it may be stale.
        if let Ok(value) = HeaderValue::from_str(&e.replace(['\r', '\n'], " ")) {
            response.headers_mut().insert("x-bcfl-ledger-error", value);
        }
    }
    Ok(response)
}

fn round_number(text: &str) -> Result<u64, ApiError> {
    text.parse()
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "a round is a number"))
}

async fn round(
    State(app): State<AppState>,
    Path(number): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let number = round_number(&number)?;
    let snapshot = current(&app)?;
    let detail = view::round_detail(&snapshot.state, number)
        .ok_or_else(|| ApiError::not_found(format!("round {number} does not exist")))?;
    Ok(json_at_head(&headers, &snapshot, &detail))
}

async fn graph(
    State(app): State<AppState>,
    Path(number): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let number = round_number(&number)?;
    let snapshot = current(&app)?;
    let svg = view::graph_svg(&snapshot.state, number).ok_or_else(|| {
        ApiError::not_found(format!(
            "round {number} does not exist or no link is measured"
        ))
    })?;
    Ok(at_head(
        &headers,
        &snapshot,
        "image/svg+xml",
        svg.into_bytes(),
    ))
}

async fn member(
    State(app): State<AppState>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let snapshot = current(&app)?;
    let detail = view::member_detail(&snapshot.state, &key).ok_or_else(|| {
        ApiError::not_found(format!(
            "{} is not a member",
            key.chars().take(80).collect::<String>()
        ))
    })?;
    Ok(json_at_head(&headers, &snapshot, &detail))
}

/// The commitments and aggregates that record `sha256` (64 hex digits, any case).
async fn hashes(
    State(app): State<AppState>,
    Path(sha256): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "a SHA-256 is 64 hex digits",
        ));
    }
    let sha256 = sha256.to_ascii_lowercase();
    let snapshot = current(&app)?;
    let matches = snapshot.hashes.get(&sha256).map_or(&[][..], Vec::as_slice);
    Ok(json_at_head(
        &headers,
        &snapshot,
        &json!({ "sha256": sha256, "matches": matches }),
    ))
}

async fn chart(
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let chart = match name.as_str() {
        "accuracy.svg" => view::Chart::Accuracy,
        "rounds.svg" => view::Chart::RoundTime,
        _ => return Err(ApiError::not_found("no such chart")),
    };
    if app.reports.is_empty() {
        return Err(ApiError::not_found(
            "no report files were given (audit serve --reports)",
        ));
    }
    let snapshot = current(&app)?;
    let reports = app.reports.clone();
    // Reading the files and drawing is blocking work.
    let svg =
        tokio::task::spawn_blocking(move || view::chart_svg(&snapshot.state, &reports, chart))
            .await
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("image/svg+xml"),
            ),
            // The files grow while nodes run: never cached.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        svg,
    )
        .into_response())
}

/// One `head` event now, then one per new head (and `ledger-error` while the ledger cannot
/// be read).
async fn events(State(app): State<AppState>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut receiver = app.snapshot.clone();
    receiver.mark_changed();
    let stream = stream::unfold(receiver, |mut receiver| async move {
        receiver.changed().await.ok()?;
        let snapshot = receiver.borrow_and_update().clone();
        let event = match &snapshot.error {
            Some(e) => Event::default()
                .event("ledger-error")
                .data(e.replace('\n', " ")),
            None => Event::default()
                .event("head")
                .data(snapshot.state.head.clone()),
        };
        Some((Ok(event), receiver))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests;
