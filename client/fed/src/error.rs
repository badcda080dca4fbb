//! The error type of the federated core.

use std::path::PathBuf;

/// A failure reading, writing or combining updates.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A JSON document (a safetensors header) is malformed.
    #[error("{what}: {source}")]
    Json {
        /// What was being parsed.
        what: String,
        /// The cause.
        source: serde_json::Error,
    },
    /// A parameter is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// An update blob is malformed or does not match the others.
    #[error("update: {0}")]
    Update(String),
}

/// The federated core's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O failure on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// A JSON failure while parsing `what`.
    pub fn json(what: impl Into<String>, source: serde_json::Error) -> Self {
        Self::Json {
            what: what.into(),
            source,
        }
    }
}
