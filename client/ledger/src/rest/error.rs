//! Errors of the REST client, one enum for every way a ledger request can fail.

/// A failed ledger request.
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    /// The base URL cannot be used.
    #[error("invalid REST API URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it is unusable.
        reason: String,
    },
    /// Nothing answered at the URL (connection refused, DNS failure, timeout).
    #[error("cannot reach the REST API at {url}: {reason}")]
    Unreachable {
        /// The URL requested.
        url: String,
        /// The transport's explanation.
        reason: String,
    },
    /// The REST API answered with a Sawtooth error body `{"error":{code,title,message}}`.
    #[error("{url} answered HTTP {status}: {title} (code {code}): {message}")]
    Api {
        /// The URL requested.
        url: String,
        /// The HTTP status.
        status: u16,
        /// Sawtooth's error code (e.g. 30 for invalid batches).
        code: u32,
        /// Sawtooth's title.
        title: String,
        /// Sawtooth's message.
        message: String,
    },
    /// A 404: the block, batch, state or route does not exist.
    #[error("not found at {url}: {message}")]
    NotFound {
        /// The URL requested.
        url: String,
        /// Sawtooth's error code, when the body carried one.
        code: Option<u32>,
        /// Sawtooth's message, or the body text.
        message: String,
    },
    /// An HTTP error without a Sawtooth error body (e.g. a proxy's page).
    #[error("{url} answered HTTP {status}: {body}")]
    Http {
        /// The URL requested.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// A success response that is not what Sawtooth sends.
    #[error("unexpected response from {url}: {reason}")]
    Decode {
        /// The URL requested.
        url: String,
        /// What did not parse.
        reason: String,
    },
    /// The processor rejected a transaction, so its batch is INVALID.
    #[error("batch {batch_id} was rejected: {message}")]
    Rejected {
        /// The invalid batch.
        batch_id: String,
        /// The rejected transaction, when the validator named it.
        transaction_id: Option<String>,
        /// The processor's reason (empty if it gave none).
        message: String,
    },
    /// A state entry did not decode as the object its address holds.
    #[error("state at {address}: {reason}")]
    State {
        /// The address.
        address: String,
        /// What is wrong.
        reason: String,
    },
}

impl RestError {
    /// Whether retrying later may help (HTTP 429 or 503).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Api {
                status: 429 | 503,
                ..
            } | Self::Http {
                status: 429 | 503,
                ..
            }
        )
    }

    /// The HTTP status, for errors that carry one.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } | Self::Http { status, .. } => Some(*status),
            Self::NotFound { .. } => Some(404),
            _ => None,
        }
    }
}

/// A `Result` with [`RestError`].
pub type Result<T, E = RestError> = std::result::Result<T, E>;
