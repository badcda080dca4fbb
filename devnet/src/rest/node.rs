//! `/receipts`, `/peers` and `/status`.
//!
//! Receipts exist only for committed, valid transactions; one unknown id fails the whole
//! request (404 code 80). Sawtooth's receipt request has no `wait` field, so a `wait` query makes
//! the Python handler raise: it is answered with aiohttp's plain 500, as there.

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};

use super::envelope::{metadata, wrap};
use super::error::{ApiError, PlainError};
use super::json::Json;
use super::render;
use super::request::RequestInfo;
use super::submit::request_ids;
use super::AppState;

/// `GET` and `POST /receipts`.
pub async fn list_receipts(
    State(app): State<AppState>,
    req: RequestInfo,
    request: Request,
) -> Response {
    let is_post = request.method() == axum::http::Method::POST;
    let errors = [
        ApiError::ReceiptWrongContentType,
        ApiError::ReceiptBodyInvalid,
        ApiError::ReceiptIdQueryInvalid,
    ];
    let ids = match request_ids(&app, &req, request, errors).await {
        Ok(ids) => ids,
        Err(response) => return response,
    };
    if req
        .query("wait")
        .is_some_and(|w| w.to_lowercase() != "false")
    {
        return PlainError::Internal.into_response();
    }
    let mut receipts = Vec::with_capacity(ids.len());
    for id in &ids {
        match app.ledger.receipt(id) {
            Ok(Some(receipt)) => receipts.push(render::receipt(&receipt)),
            Ok(None) => return ApiError::ReceiptNotFound.into_response(),
            Err(err) => return ApiError::from(err).into_response(),
        }
    }
    let envelope = if is_post {
        Vec::new()
    } else {
        metadata(&req, None)
    };
    wrap(envelope, Some(Json::Arr(receipts)))
}

/// `GET /peers`.
pub async fn fetch_peers(State(app): State<AppState>, req: RequestInfo) -> Response {
    wrap(metadata(&req, None), Some(Json::strs(app.ledger.peers())))
}

/// `GET /status`.
pub async fn fetch_status(State(app): State<AppState>, req: RequestInfo) -> Response {
    let mut peers = app.ledger.peers();
    peers.sort();
    let peers = peers
        .into_iter()
        .map(|p| Json::obj([("endpoint", Json::Str(p))]))
        .collect();
    let data = Json::obj([
        ("peers", Json::Arr(peers)),
        ("endpoint", Json::Str(app.ledger.endpoint())),
    ]);
    wrap(metadata(&req, None), Some(data))
}
