//! The error type of the round library ([`Error`]) and its `Result` alias.
//!
//! Errors keep what a reader needs to act on them: the file and what was being done with it,
//! the blob, the member, the round.

use std::path::{Path, PathBuf};

use super::coordinator::CoordinatorError;
use super::ledger::LedgerError;
use super::schedule::ScheduleError;

/// What can go wrong in a role, a node, a simulation, a replay or a report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The ledger could not be read or refused a transaction.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The coordinator failed.
    #[error(transparent)]
    Coordinator(#[from] CoordinatorError),
    /// The family state does not allow what a role asked.
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    /// A blob could not be stored, served or moved.
    #[error(transparent)]
    Net(#[from] bcfl_net::NetError),
    /// An update blob could not be read, combined or written.
    #[error(transparent)]
    Fed(#[from] bcfl_fed::Error),
    /// The REST API failed.
    #[error(transparent)]
    Rest(#[from] bcfl_ledger::rest::RestError),
    /// A TLS certificate or key could not be loaded.
    #[error(transparent)]
    Tls(#[from] bcfl_net::tls::TlsError),
    /// The routing graph rejected a request.
    #[error(transparent)]
    Graph(#[from] bcfl_processor::graph::GraphError),
    /// The training engine failed.
    #[cfg(feature = "train")]
    #[error(transparent)]
    Train(#[from] crate::train::Error),
    /// Fine-tuning the decoder on PubMedQA failed.
    #[cfg(feature = "train")]
    #[error(transparent)]
    Llm(#[from] crate::llm::pubmedqa::Error),
    /// The decoder could not be loaded or run.
    #[cfg(feature = "train")]
    #[error(transparent)]
    Decoder(#[from] crate::llm::Error),
    /// The consortium's aggregation rule is invalid.
    #[error(transparent)]
    Rule(#[from] bcfl_fed::rule::RuleError),
    /// A configured attack is unknown or not supported where it is asked for.
    #[error(transparent)]
    Attack(#[from] bcfl_processor::anomaly::attack::AttackError),
    /// A figure could not be drawn.
    #[error(transparent)]
    Figure(#[from] crate::figures::FigureError),
    /// A file could not be read, written or parsed.
    #[error("{action} {}", path.display())]
    File {
        /// What was being done (`reading`, `parsing`, `opening the blob store`...).
        action: String,
        /// The file or folder.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A `package.json` is not a model package.
    #[error("{} is not a model package", path.display())]
    NotAPackage {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A package's base model is not the consortium's (or cannot be read).
    #[error("the base model in {} is not the consortium's {expected}", dir.display())]
    BaseModel {
        /// The base model directory.
        dir: PathBuf,
        /// The SHA-256 on chain.
        expected: String,
        /// What the check found.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Reading or writing a file failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A document could not be encoded or decoded as JSON.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// What the chain holds is not what the role needs (a round without its verdict, a
    /// package that is not the consortium's, an update too stale to commit...).
    #[error("{0}")]
    State(String),
    /// A node's configuration is unusable.
    #[error("{0}")]
    Config(String),
    /// A blob could not be had from any holder.
    #[error("blob {blob} could not be fetched")]
    Fetch {
        /// The blob's SHA-256.
        blob: String,
        /// The last holder's failure.
        #[source]
        source: Box<Error>,
    },
    /// A member's update could not be fetched.
    #[error("fetching the update of {member}")]
    FetchUpdate {
        /// The member who committed it.
        member: String,
        /// Why.
        #[source]
        source: Box<Error>,
    },
    /// No holder delivered a blob; the last failure.
    #[error("{0}")]
    Unreachable(String),
    /// A blob's bytes do not hash to its name.
    #[error("{0}")]
    Integrity(String),
    /// A statistic cannot be written in the ledger's fixed point.
    #[error("{what}")]
    Fixed {
        /// The statistic (`the training loss`).
        what: &'static str,
        /// Why.
        #[source]
        source: bcfl_processor::fixed::FixedError,
    },
    /// A duration in seconds is negative, not finite or too large.
    #[error("invalid duration: {0}")]
    Duration(#[from] std::time::TryFromFloatSecsError),
    /// A blocking task (training, aggregation, scoring) panicked or was cancelled.
    #[error("a blocking task failed: {0}")]
    Blocking(#[from] tokio::task::JoinError),
    /// The model's lock was poisoned by a panic while training.
    #[error("the model lock is poisoned")]
    Poisoned,
}

impl Error {
    /// A failure `action` on the file `path`.
    pub fn file(
        action: impl Into<String>,
        path: impl AsRef<Path>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::File {
            action: action.into(),
            path: path.as_ref().to_owned(),
            source: source.into(),
        }
    }
}

/// The result type of the round library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `error` and its causes, `: `-separated, for log lines (as `{:#}` prints an `anyhow` chain).
#[cfg(feature = "train")]
pub(crate) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
