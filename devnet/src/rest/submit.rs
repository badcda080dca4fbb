//! `POST /batches` and `GET`/`POST /batch_statuses` (with `wait`).
//!
//! A submission must be a `BatchList` sent as exactly `application/octet-stream`; an accepted one
//! is answered 202 with only a `link` to its statuses (the request's own query is carried into
//! that link, as Sawtooth does). Status queries block, when `wait` is given, until no requested
//! batch is PENDING or the validator-side timeout passes; a wait that outlasts the REST API's own
//! validator timeout ends in 503 code 17, like the Python API's.

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use protobuf::Message;
use sawtooth_sdk::messages::batch::BatchList;
use tokio::time::{sleep_until, Instant};

use super::envelope::{metadata, wrap, wrap_with_status};
use super::error::{ApiError, PlainError};
use super::json::Json;
use super::params::{filter_ids, validate_id, wait};
use super::render;
use super::request::RequestInfo;
use super::{read_body, AppState};
use crate::view::{BatchStatus, BatchStatusKind};

fn content_type_is(request: &Request, expected: &str) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        == Some(expected)
}

/// `POST /batches`.
pub async fn submit_batches(
    State(app): State<AppState>,
    req: RequestInfo,
    request: Request,
) -> Response {
    if !content_type_is(&request, "application/octet-stream") {
        return ApiError::SubmissionWrongContentType.into_response();
    }
    let body = match read_body(&app, request, ApiError::BatchQueueFull).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    if body.is_empty() {
        return ApiError::NoBatchesSubmitted.into_response();
    }
    let Ok(batch_list) = BatchList::parse_from_bytes(&body) else {
        return ApiError::BadProtobufSubmitted.into_response();
    };
    let batches = batch_list.get_batches().to_vec();
    let ids: Vec<String> = batches
        .iter()
        .map(|b| b.get_header_signature().to_owned())
        .collect();
    if !batches.is_empty() {
        if let Err(err) = app.ledger.submit_batches(batches) {
            return ApiError::from(err).into_response();
        }
    }
    tracing::debug!(count = ids.len(), "batches submitted");
    let link = req.link_to("/batch_statuses", &[("id", Some(ids.join(",")))]);
    wrap_with_status(
        StatusCode::ACCEPTED,
        vec![("link".to_owned(), Json::Str(link))],
        None,
    )
}

/// Why an id list from a POST body was refused.
enum BodyIds {
    NotJson,
    Invalid,
}

/// A JSON array of at least one string, each a valid id.
fn ids_from_json(body: &[u8]) -> Result<Result<Vec<String>, ApiError>, BodyIds> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|_| BodyIds::NotJson)?;
    let items = value
        .as_array()
        .filter(|a| !a.is_empty())
        .ok_or(BodyIds::Invalid)?;
    let ids: Vec<String> = items
        .iter()
        .map(|i| i.as_str().map(str::to_owned))
        .collect::<Option<_>>()
        .ok_or(BodyIds::Invalid)?;
    Ok(ids.iter().try_for_each(|id| validate_id(id)).map(|()| ids))
}

/// The ids of a `/batch_statuses` or `/receipts` request, from the query (GET) or a JSON body
/// (POST), with that endpoint's three errors (wrong content type, bad body, missing query).
pub async fn request_ids(
    app: &AppState,
    req: &RequestInfo,
    request: Request,
    errors: [ApiError; 3],
) -> Result<Vec<String>, Response> {
    let [wrong_type, bad_body, missing_query] = errors;
    if request.method() == axum::http::Method::POST {
        if !content_type_is(&request, "application/json") {
            return Err(wrong_type.into_response());
        }
        let body = read_body(app, request, ApiError::ValidatorTimedOut).await?;
        match ids_from_json(&body) {
            Ok(Ok(ids)) => Ok(ids),
            Ok(Err(err)) => Err(err.into_response()),
            // aiohttp's `request.json()` raises, and the handler does not catch it.
            Err(BodyIds::NotJson) => Err(PlainError::Internal.into_response()),
            Err(BodyIds::Invalid) => Err(bad_body.into_response()),
        }
    } else {
        match filter_ids(req) {
            Ok(Some(ids)) => Ok(ids),
            Ok(None) => Err(missing_query.into_response()),
            Err(err) => Err(err.into_response()),
        }
    }
}

/// `GET` and `POST /batch_statuses`.
pub async fn list_statuses(
    State(app): State<AppState>,
    req: RequestInfo,
    request: Request,
) -> Response {
    let is_post = request.method() == axum::http::Method::POST;
    let errors = [
        ApiError::StatusWrongContentType,
        ApiError::StatusBodyInvalid,
        ApiError::StatusIdQueryInvalid,
    ];
    let ids = match request_ids(&app, &req, request, errors).await {
        Ok(ids) => ids,
        Err(response) => return response,
    };
    let statuses = match wait(&req, app.config.validator_timeout) {
        None => app.ledger.batch_statuses(&ids),
        Some(timeout) => match wait_for_statuses(&app, &ids, timeout).await {
            Ok(statuses) => statuses,
            Err(err) => return err.into_response(),
        },
    };
    let data = Json::Arr(statuses.iter().map(render::batch_status).collect());
    let envelope = if is_post {
        Vec::new()
    } else {
        metadata(&req, None)
    };
    wrap(envelope, Some(data))
}

/// Re-reads the statuses on every change until none is PENDING, the validator-side `timeout`
/// passes (current statuses), or the REST timeout passes first (code 17).
async fn wait_for_statuses(
    app: &AppState,
    ids: &[String],
    timeout: std::time::Duration,
) -> Result<Vec<BatchStatus>, ApiError> {
    let began = Instant::now();
    let validator_deadline = began + timeout;
    let rest_deadline = began + app.config.validator_timeout;
    let mut changes = app.ledger.status_changes();
    let mut shutdown = app.shutdown.clone();
    let mut watch_shutdown = true;
    loop {
        changes.borrow_and_update();
        let statuses = app.ledger.batch_statuses(ids);
        if statuses
            .iter()
            .all(|s| s.status != BatchStatusKind::Pending)
        {
            return Ok(statuses);
        }
        let now = Instant::now();
        if now >= rest_deadline && rest_deadline <= validator_deadline {
            return Err(ApiError::ValidatorTimedOut);
        }
        if now >= validator_deadline || *shutdown.borrow() {
            // On server shutdown the current statuses are answered at once, so that graceful
            // shutdown does not wait out the timeout.
            return Ok(statuses);
        }
        let deadline = validator_deadline.min(rest_deadline);
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    // The ledger is gone: nothing will change any more.
                    sleep_until(deadline).await;
                }
            }
            () = sleep_until(deadline) => {}
            changed = shutdown.changed(), if watch_shutdown => {
                // A router built without `serve` has no shutdown signal.
                watch_shutdown = changed.is_ok();
            }
        }
    }
}
