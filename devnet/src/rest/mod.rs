//! The devnet's REST API: Sawtooth 1.2's `sawtooth-rest-api`, served from a [`LedgerView`].
//!
//! Clients written for a real Sawtooth network (the bcfl client, the Sawtooth SDKs, `curl`) talk
//! to the devnet unchanged. Shapes, status codes, error codes, titles and messages, paging,
//! `link` construction, sort quirks and the JSON formatting follow sawtooth-core's
//! `rest_api/sawtooth_rest_api` (`route_handlers.py`, `exceptions.py`,
//! `state_delta_subscription_handler.py`) together with the validator's client handlers; see
//! `/work/shared/sawtooth-spec.md` sections 5 and 6.
//!
//! | route | module |
//! | --- | --- |
//! | `POST /batches`, `GET`/`POST /batch_statuses` | [`submit`] |
//! | `GET /blocks`, `/batches`, `/transactions` (and `/{id}`) | [`chain`] |
//! | `GET /state`, `/state/{address}` | [`state`] |
//! | `GET`/`POST /receipts`, `GET /peers`, `GET /status` | [`node`] |
//! | `GET /subscriptions` (websocket) | [`subscriptions`] |
//!
//! Where the Python API would crash or hang, this one answers instead:
//!
//! * a missing `Content-Type` on a POST is the endpoint's "Wrong Content Type" error (aiohttp
//!   raises a `KeyError`, a plain 500);
//! * a `head` on `/state` that is not 128 hex is code 60 (the Python API silently reads the
//!   chain head and reports `"head": ""`);
//! * a page `start` beyond the chain on `/blocks` is code 54 (the validator fails without an
//!   answer and the API times out).
//!
//! Limits a public endpoint needs, which the Python API lacks (it buffers any number of bodies
//! and waits for ever on a half-sent header):
//!
//! * at most [`RestConfig::max_concurrent_bodies`] request bodies are read at once; a request
//!   that finds no free slot within [`RestConfig::body_slot_wait`] is answered at once without
//!   reading its body: `POST /batches` with 429 code 31 ("Unable to Accept Batches"), the JSON
//!   id lists of `/batch_statuses` and `/receipts` with 503 code 17 ("Validator Timed Out"), both
//!   of which clients retry;
//! * a body must arrive within [`RestConfig::body_read_timeout`], else 408 (plain text) and the
//!   connection is closed;
//! * a request's header must arrive within [`RestConfig::header_read_timeout`], else the
//!   connection is closed (slowloris).
//!
//! So the memory that uploads can hold is bounded by `max_concurrent_bodies` ×
//! `client_max_size`, and a slot held by a slow upload is freed after `body_read_timeout`.
//!
//! Everything else, including the Python API's own quirks (`/state` answering an unknown head
//! with code 70, an invalid `address` filter listing nothing, a non-JSON status body being a
//! plain 500, `wait` on `/receipts` being a plain 500), is reproduced.
//!
//! ```no_run
//! # async fn run(ledger: std::sync::Arc<dyn bcfl_devnet::view::LedgerView>) -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8008").await?;
//! bcfl_devnet::rest::serve(listener, ledger, async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await
//! # }
//! ```

pub mod chain;
pub mod envelope;
pub mod error;
pub mod json;
pub mod node;
pub mod params;
pub mod render;
pub mod request;
pub mod state;
pub mod submit;
pub mod subscriptions;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use http_body_util::BodyExt as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::Semaphore;

use crate::view::LedgerView;
use error::{ApiError, PlainError};

/// Settings of the REST API; the first two defaults are `sawtooth-rest-api`'s, the limits are
/// devnet's own (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestConfig {
    /// How long a request may wait on the validator (`--timeout`, 300 s). A bare `wait` on
    /// `/batch_statuses` waits 95 % of it.
    pub validator_timeout: Duration,
    /// The largest accepted request body (`--client-max-size`, 10 MiB).
    pub client_max_size: usize,
    /// Request bodies read at the same time (8).
    pub max_concurrent_bodies: usize,
    /// How long a request waits for a body slot before it is refused (1 s).
    pub body_slot_wait: Duration,
    /// How long a client may take to send a whole request body (60 s).
    pub body_read_timeout: Duration,
    /// How long a client may take to send a request's header (30 s); only [`serve`] applies it.
    pub header_read_timeout: Duration,
}

impl Default for RestConfig {
    fn default() -> Self {
        RestConfig {
            validator_timeout: Duration::from_secs(300),
            client_max_size: 10 * 1024 * 1024,
            max_concurrent_bodies: 8,
            body_slot_wait: Duration::from_secs(1),
            body_read_timeout: Duration::from_secs(60),
            header_read_timeout: Duration::from_secs(30),
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The ledger behind the API.
    pub ledger: Arc<dyn LedgerView>,
    /// The API's settings.
    pub config: Arc<RestConfig>,
    /// Flips to `true` when the server shuts down: websockets then close with 1001 and waiting
    /// status requests answer at once.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// One permit per request body being read ([`RestConfig::max_concurrent_bodies`]).
    pub bodies: Arc<Semaphore>,
}

impl AppState {
    fn new(
        ledger: Arc<dyn LedgerView>,
        config: RestConfig,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        let bodies = Arc::new(Semaphore::new(config.max_concurrent_bodies.max(1)));
        AppState {
            ledger,
            config: Arc::new(config),
            shutdown,
            bodies,
        }
    }
}

/// The REST API's routes over `ledger`, with the default [`RestConfig`].
pub fn router(ledger: Arc<dyn LedgerView>) -> Router {
    router_with_config(ledger, RestConfig::default())
}

/// The REST API's routes over `ledger` with explicit settings.
pub fn router_with_config(ledger: Arc<dyn LedgerView>, config: RestConfig) -> Router {
    // Without `serve` nothing signals shutdown: the sender is dropped and websockets stop
    // watching for it.
    let (_, receiver) = tokio::sync::watch::channel(false);
    build_router(AppState::new(ledger, config, receiver))
}

fn build_router(state: AppState) -> Router {
    fn allow(route: MethodRouter<AppState>, methods: &'static str) -> MethodRouter<AppState> {
        route.fallback(move || async move { PlainError::MethodNotAllowed(methods) })
    }
    const GET: &str = "GET,HEAD";
    const GET_POST: &str = "GET,HEAD,POST";
    Router::new()
        .route(
            "/batches",
            allow(
                post(submit::submit_batches).get(chain::list_batches),
                GET_POST,
            ),
        )
        .route("/batches/{batch_id}", allow(get(chain::fetch_batch), GET))
        .route(
            "/batch_statuses",
            allow(
                get(submit::list_statuses).post(submit::list_statuses),
                GET_POST,
            ),
        )
        .route("/state", allow(get(state::list_state), GET))
        .route("/state/{address}", allow(get(state::fetch_state), GET))
        .route("/blocks", allow(get(chain::list_blocks), GET))
        .route("/blocks/{block_id}", allow(get(chain::fetch_block), GET))
        .route("/transactions", allow(get(chain::list_transactions), GET))
        .route(
            "/transactions/{transaction_id}",
            allow(get(chain::fetch_transaction), GET),
        )
        .route(
            "/receipts",
            allow(get(node::list_receipts).post(node::list_receipts), GET_POST),
        )
        .route("/peers", allow(get(node::fetch_peers), GET))
        .route("/status", allow(get(node::fetch_status), GET))
        .route(
            "/subscriptions",
            allow(get(subscriptions::subscriptions), GET),
        )
        .fallback(|| async { PlainError::NotFound })
        .with_state(state)
}

/// Serves the REST API on `listener` until `shutdown` resolves; open websockets are then closed
/// with 1001 "Server shutdown" and in-flight requests are let finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    ledger: Arc<dyn LedgerView>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with_config(listener, ledger, RestConfig::default(), shutdown).await
}

/// [`serve`] with explicit settings. Each connection is HTTP/1.1 (with upgrades, for the
/// websocket) and is closed when a request's header takes longer than
/// [`RestConfig::header_read_timeout`].
pub async fn serve_with_config(
    listener: tokio::net::TcpListener,
    ledger: Arc<dyn LedgerView>,
    config: RestConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_tls_with_config(listener, ledger, config, None, shutdown).await
}

/// [`serve_with_config`], over TLS when `tls` is given (`--tls-cert`, `--tls-key`): HTTPS, and
/// `wss://` for the subscriptions websocket. A handshake, like a header, must end within
/// [`RestConfig::header_read_timeout`].
pub async fn serve_tls_with_config(
    listener: tokio::net::TcpListener,
    ledger: Arc<dyn LedgerView>,
    config: RestConfig,
    tls: Option<bcfl_tls::ServerTls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let header_read_timeout = config.header_read_timeout;
    let acceptor = tls.as_ref().map(bcfl_tls::ServerTls::acceptor);
    let (sender, receiver) = tokio::sync::watch::channel(false);
    let app = build_router(AppState::new(ledger, config, receiver.clone()));
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, tls = acceptor.is_some(), "REST API listening");
    }
    // Every connection task holds a clone of `open`; shutdown waits until all are dropped.
    let (open, all_closed) = tokio::sync::mpsc::channel::<()>(1);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    bcfl_tls::no_delay(&stream);
                    stream
                }
                Err(err) => {
                    // E.g. too many open files: wait a little instead of spinning.
                    tracing::warn!(%err, "accepting a REST connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let stopping = receiver.clone();
        let open = open.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match acceptor {
                None => serve_connection(stream, service, header_read_timeout, stopping).await,
                Some(acceptor) => {
                    match tokio::time::timeout(header_read_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            serve_connection(tls, service, header_read_timeout, stopping).await;
                        }
                        Ok(Err(err)) => tracing::debug!(%err, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                }
            }
            drop(open);
        });
    }
    drop(listener);
    let _ = sender.send(true);
    drop(open);
    let mut all_closed = all_closed;
    let _ = all_closed.recv().await;
    Ok(())
}

/// One HTTP/1.1 connection (with upgrades) until it ends, or until `stopping` flips and its
/// requests in flight finish.
async fn serve_connection<S>(
    stream: S,
    service: TowerToHyperService<Router>,
    header_read_timeout: Duration,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let connection = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    let mut connection = std::pin::pin!(connection);
    let stop = async move {
        let _ = stopping.wait_for(|stop| *stop).await;
    };
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = stop => {
            connection.as_mut().graceful_shutdown();
            connection.as_mut().await
        }
    };
    if let Err(err) = result {
        tracing::debug!(%err, "REST connection ended with an error");
    }
}

/// Reads a request body of at most [`RestConfig::client_max_size`] bytes (a larger one is
/// aiohttp's plain 413), holding one of the [`AppState::bodies`] permits while it does; `busy`
/// answers a request that found no permit in time, and a body slower than
/// [`RestConfig::body_read_timeout`] is a plain 408. Both close the connection.
pub async fn read_body(
    app: &AppState,
    request: Request,
    busy: ApiError,
) -> Result<Bytes, Response> {
    let max_size = app.config.client_max_size;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(size) = declared.filter(|size| *size >= max_size) {
        return Err(PlainError::TooLarge {
            max_size,
            actual_size: size,
        }
        .into_response());
    }
    let permit = tokio::time::timeout(
        app.config.body_slot_wait,
        Arc::clone(&app.bodies).acquire_owned(),
    )
    .await;
    let Ok(Ok(_permit)) = permit else {
        tracing::debug!("every request body slot is taken; refusing");
        return Err(closing(busy.into_response()));
    };
    match tokio::time::timeout(
        app.config.body_read_timeout,
        collect_body(request, max_size),
    )
    .await
    {
        Ok(body) => body,
        Err(_) => {
            tracing::debug!("a request body was too slow; closing the connection");
            Err(closing(PlainError::RequestTimeout.into_response()))
        }
    }
}

/// Marks a response as the connection's last.
fn closing(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

async fn collect_body(request: Request, max_size: usize) -> Result<Bytes, Response> {
    let mut body: Body = request.into_body();
    let mut buffer = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| {
            tracing::debug!(%err, "request body could not be read");
            PlainError::Internal.into_response()
        })?;
        if let Ok(data) = frame.into_data() {
            buffer.extend_from_slice(&data);
            if buffer.len() >= max_size {
                return Err(PlainError::TooLarge {
                    max_size,
                    actual_size: buffer.len(),
                }
                .into_response());
            }
        }
    }
    Ok(Bytes::from(buffer))
}
