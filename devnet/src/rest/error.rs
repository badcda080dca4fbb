//! The REST API's error responses, as Sawtooth's `rest_api/sawtooth_rest_api/exceptions.py`.
//!
//! Every [`ApiError`] becomes `{"error": {"code", "message", "title"}}` with the fixed HTTP
//! status, title and message of the Python class of the same meaning; only
//! [`ApiError::InvalidResourceId`] appends the offending id to its message, as Sawtooth does.
//! Failures that aiohttp itself answers in plain text (oversized body, unknown route, wrong
//! method, an unhandled server exception) are [`PlainError`]s.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::json::Json;
use crate::view::{SubmitError, ViewError};

/// The JSON content type of every Sawtooth REST response.
pub const JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// A Sawtooth REST API error with its fixed code, status, title and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 500, code 10.
    #[error("unknown validator error")]
    UnknownValidatorError,
    /// 503, code 15.
    #[error("validator not ready")]
    ValidatorNotReady,
    /// 503, code 17.
    #[error("validator timed out")]
    ValidatorTimedOut,
    /// 500, code 21.
    #[error("invalid resource header")]
    ResourceHeaderInvalid,
    /// 400, code 30.
    #[error("submitted batches invalid")]
    SubmittedBatchesInvalid,
    /// 429, code 31.
    #[error("unable to accept batches")]
    BatchQueueFull,
    /// 400, code 34.
    #[error("no batches submitted")]
    NoBatchesSubmitted,
    /// 400, code 35.
    #[error("protobuf not decodable")]
    BadProtobufSubmitted,
    /// 400, code 42.
    #[error("wrong content type for batches")]
    SubmissionWrongContentType,
    /// 400, code 43.
    #[error("wrong content type for statuses")]
    StatusWrongContentType,
    /// 400, code 46.
    #[error("bad status request")]
    StatusBodyInvalid,
    /// 404, code 50.
    #[error("head not found")]
    HeadNotFound,
    /// 400, code 53.
    #[error("invalid count query")]
    CountInvalid,
    /// 400, code 54.
    #[error("invalid paging query")]
    PagingInvalid,
    /// 400, code 57.
    #[error("invalid sort query")]
    SortInvalid,
    /// 400, code 60; carries the invalid id.
    #[error("invalid resource id {0:?}")]
    InvalidResourceId(String),
    /// 400, code 62.
    #[error("invalid state address")]
    InvalidStateAddress,
    /// 400, code 66.
    #[error("id query invalid or missing")]
    StatusIdQueryInvalid,
    /// 404, code 70.
    #[error("block not found")]
    BlockNotFound,
    /// 404, code 71.
    #[error("batch not found")]
    BatchNotFound,
    /// 404, code 72.
    #[error("transaction not found")]
    TransactionNotFound,
    /// 404, code 75.
    #[error("state not found")]
    StateNotFound,
    /// 404, code 80.
    #[error("transaction receipt not found")]
    ReceiptNotFound,
    /// 400, code 81.
    #[error("wrong content type for receipts")]
    ReceiptWrongContentType,
    /// 400, code 82.
    #[error("bad receipts request")]
    ReceiptBodyInvalid,
    /// 400, code 83.
    #[error("receipt id query invalid or missing")]
    ReceiptIdQueryInvalid,
}

impl ApiError {
    /// `(HTTP status, api code, title, fixed message)`.
    pub fn parts(&self) -> (StatusCode, i64, &'static str, &'static str) {
        use ApiError::*;
        match self {
            UnknownValidatorError => (StatusCode::INTERNAL_SERVER_ERROR, 10, "Unknown Validator Error", "An unknown error occurred with the validator while processing your request."),
            ValidatorNotReady => (StatusCode::SERVICE_UNAVAILABLE, 15, "Validator Not Ready", "The validator has no genesis block, and is not yet ready to be queried. Try your request again later."),
            ValidatorTimedOut => (StatusCode::SERVICE_UNAVAILABLE, 17, "Validator Timed Out", "The request timed out while waiting for a response from the validator. Your request may or may not have been processed."),
            ResourceHeaderInvalid => (StatusCode::INTERNAL_SERVER_ERROR, 21, "Invalid Resource Header", "The resource fetched from the validator had an invalid header, and may be corrupted."),
            SubmittedBatchesInvalid => (StatusCode::BAD_REQUEST, 30, "Submitted Batches Invalid", "The submitted BatchList was rejected by the validator. It was poorly formed, or has an invalid signature."),
            BatchQueueFull => (StatusCode::TOO_MANY_REQUESTS, 31, "Unable to Accept Batches", "The validator cannot currently accept more batches, due to a full queue.  Please submit your request again."),
            NoBatchesSubmitted => (StatusCode::BAD_REQUEST, 34, "No Batches Submitted", "The protobuf BatchList you submitted was empty and contained no Batches. You must submit at least one Batch."),
            BadProtobufSubmitted => (StatusCode::BAD_REQUEST, 35, "Protobuf Not Decodable", "The protobuf BatchList you submitted was malformed and could not be read."),
            SubmissionWrongContentType => (StatusCode::BAD_REQUEST, 42, "Wrong Content Type", "Batches must be submitted in a BatchList protobuf binary, with a 'Content-Type' header of 'application/octet-stream'."),
            StatusWrongContentType => (StatusCode::BAD_REQUEST, 43, "Wrong Content Type", "Requests for batch statuses sent as a POST must have a 'Content-Type' header of 'application/json'."),
            StatusBodyInvalid => (StatusCode::BAD_REQUEST, 46, "Bad Status Request", "Requests for batch statuses sent as a POST must have a JSON formatted body with an array of at least one id string."),
            HeadNotFound => (StatusCode::NOT_FOUND, 50, "Head Not Found", "There is no block with the id specified in the 'head' query parameter."),
            CountInvalid => (StatusCode::BAD_REQUEST, 53, "Invalid Count Query", "The 'count' query parameter must be a positive, non-zero integer."),
            PagingInvalid => (StatusCode::BAD_REQUEST, 54, "Invalid Paging Query", "Paging request failed as written. One or more of the 'min', 'max', or 'count' query parameters were invalid or out of range."),
            SortInvalid => (StatusCode::BAD_REQUEST, 57, "Invalid Sort Query", "The sort request failed as written. Some of the keys specified were not valid."),
            InvalidResourceId(_) => (StatusCode::BAD_REQUEST, 60, "Invalid Resource Id", "Blockchain items are identified by 128 character hex-strings. A submitted block, batch, or transaction id was invalid: "),
            InvalidStateAddress => (StatusCode::BAD_REQUEST, 62, "Invalid State Address", "The state address submitted was invalid. To fetch specific state data, you must submit the full 70-character address."),
            StatusIdQueryInvalid => (StatusCode::BAD_REQUEST, 66, "Id Query Invalid or Missing", "Requests for batch statuses sent as a GET request must have an 'id' query parameter with a comma-separated list of at least one batch id."),
            BlockNotFound => (StatusCode::NOT_FOUND, 70, "Block Not Found", "There is no block with the id specified in the blockchain."),
            BatchNotFound => (StatusCode::NOT_FOUND, 71, "Batch Not Found", "There is no batch with the id specified in the blockchain."),
            TransactionNotFound => (StatusCode::NOT_FOUND, 72, "Transaction Not Found", "There is no transaction with the id specified in the blockchain."),
            StateNotFound => (StatusCode::NOT_FOUND, 75, "State Not Found", "There is no state data at the address specified."),
            ReceiptNotFound => (StatusCode::NOT_FOUND, 80, "Transaction Receipt Not Found", "There is no transaction receipt for the transaction id specified in the receipt store."),
            ReceiptWrongContentType => (StatusCode::BAD_REQUEST, 81, "Wrong Content Type", "Requests for transaction receipts sent as a POST must have a 'Content-Type' header of 'application/json'."),
            ReceiptBodyInvalid => (StatusCode::BAD_REQUEST, 82, "Bad Receipts Request", "Requests for transaction receipts sent as a POST must have a JSON formatted body with an array of at least one id string."),
            ReceiptIdQueryInvalid => (StatusCode::BAD_REQUEST, 83, "Id Query Invalid or Missing", "Requests for transaction receipts sent as a GET request must have an 'id' query parameter with a comma-separated list of at least one transaction id."),
        }
    }

    /// The JSON error body, exactly as the Python API formats it.
    pub fn body(&self) -> String {
        let (_, code, title, message) = self.parts();
        let message = match self {
            ApiError::InvalidResourceId(id) => format!("{message}{id}"),
            _ => message.to_owned(),
        };
        Json::obj([(
            "error",
            Json::obj([
                ("code", Json::Int(code)),
                ("title", Json::str(title)),
                ("message", Json::Str(message)),
            ]),
        )])
        .to_python_pretty()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.parts().0;
        json_response(status, self.body())
    }
}

impl From<ViewError> for ApiError {
    fn from(err: ViewError) -> Self {
        tracing::warn!(%err, "ledger storage failure while answering a REST request");
        ApiError::UnknownValidatorError
    }
}

impl From<SubmitError> for ApiError {
    fn from(err: SubmitError) -> Self {
        match err {
            SubmitError::InvalidBatch(reason) => {
                tracing::debug!(%reason, "submitted batches rejected");
                ApiError::SubmittedBatchesInvalid
            }
            SubmitError::QueueFull => ApiError::BatchQueueFull,
            SubmitError::NotReady => ApiError::ValidatorNotReady,
        }
    }
}

/// A response answered by aiohttp itself, in plain text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlainError {
    /// 404 for an unknown route.
    NotFound,
    /// 405 for a known route with another method; carries the `Allow` header value.
    MethodNotAllowed(&'static str),
    /// 413 when the body exceeds `client_max_size`.
    TooLarge {
        /// The configured cap in bytes.
        max_size: usize,
        /// The body size seen.
        actual_size: usize,
    },
    /// 500 for an exception the Python handlers do not catch.
    Internal,
    /// 408 when a request body arrives too slowly (devnet's own limit; aiohttp has none).
    RequestTimeout,
}

impl IntoResponse for PlainError {
    fn into_response(self) -> Response {
        let (status, text) = match &self {
            PlainError::NotFound => (StatusCode::NOT_FOUND, "404: Not Found".to_owned()),
            PlainError::MethodNotAllowed(_) => (
                StatusCode::METHOD_NOT_ALLOWED,
                "405: Method Not Allowed".to_owned(),
            ),
            PlainError::TooLarge {
                max_size,
                actual_size,
            } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "Maximum request body size {max_size} exceeded, actual body size {actual_size}"
                ),
            ),
            PlainError::RequestTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                "408: Request Timeout".to_owned(),
            ),
            PlainError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "500 Internal Server Error\n\nServer got itself in trouble".to_owned(),
            ),
        };
        let mut response = (status, text).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if let PlainError::MethodNotAllowed(allow) = self {
            headers.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}

/// A response with a JSON body and Sawtooth's content type.
pub fn json_response(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(JSON_CONTENT_TYPE),
    );
    response
}
