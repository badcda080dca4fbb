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
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use http_body_util::BodyExt as _;

use crate::view::LedgerView;
use error::PlainError;

/// Settings of the REST API; the defaults are `sawtooth-rest-api`'s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestConfig {
    /// How long a request may wait on the validator (`--timeout`, 300 s). A bare `wait` on
    /// `/batch_statuses` waits 95 % of it.
    pub validator_timeout: Duration,
    /// The largest accepted request body (`--client-max-size`, 10 MiB).
    pub client_max_size: usize,
}

impl Default for RestConfig {
    fn default() -> Self {
        RestConfig {
            validator_timeout: Duration::from_secs(300),
            client_max_size: 10 * 1024 * 1024,
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
    build_router(AppState {
        ledger,
        config: Arc::new(config),
        shutdown: receiver,
    })
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
    let (sender, receiver) = tokio::sync::watch::channel(false);
    let app = build_router(AppState {
        ledger,
        config: Arc::new(RestConfig::default()),
        shutdown: receiver,
    });
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "REST API listening");
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = sender.send(true);
        })
        .await
}

/// Reads a request body up to `max_size` bytes; a larger one is aiohttp's plain 413.
pub async fn read_body(request: Request, max_size: usize) -> Result<Bytes, Response> {
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
