//! Tests of the REST API against an in-memory [`LedgerView`](crate::view::LedgerView).
//!
//! HTTP tests drive the router with `tower::ServiceExt::oneshot`; websocket tests and the
//! shutdown test run [`serve`](super::serve) on a real 127.0.0.1:0 listener. Expected bodies are
//! written out as the Python API prints them (`json.dumps(indent=2, sort_keys=True)`).

mod chain;
mod ledger;
mod limits;
mod memory;
mod node;
mod state;
mod submit;
mod subscriptions;
mod tls;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use tower::ServiceExt as _;

use memory::MemoryLedger;

/// A response as the tests look at it.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    /// The body parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The Sawtooth error code of an error body.
    pub fn error_code(&self) -> i64 {
        self.json()["error"]["code"]
            .as_i64()
            .unwrap_or_else(|| panic!("not an error: {}", self.body))
    }

    /// The content type.
    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

/// The router over `ledger`.
pub fn app(ledger: &Arc<MemoryLedger>) -> Router {
    super::router(ledger.clone())
}

/// Sends one request with `Host: api:8008`.
pub async fn send(
    router: &Router,
    method: Method,
    uri: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Reply {
    let mut builder = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "api:8008");
    if let Some(content_type) = content_type {
        builder = builder.header("content-type", content_type);
    }
    let response = router
        .clone()
        .oneshot(builder.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    Reply {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

/// `GET uri`.
pub async fn get(router: &Router, uri: &str) -> Reply {
    send(router, Method::GET, uri, None, Vec::new()).await
}

/// Asserts a Sawtooth JSON error with `status` and `code`.
pub fn assert_error(reply: &Reply, status: StatusCode, code: i64) {
    assert_eq!(reply.status, status, "body: {}", reply.body);
    assert_eq!(reply.error_code(), code, "body: {}", reply.body);
    assert_eq!(reply.content_type(), "application/json; charset=utf-8");
}
