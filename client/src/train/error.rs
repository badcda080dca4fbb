//! The error type of the training engine.

use std::path::PathBuf;

/// A failure of the training engine.
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
    /// A JSON document (config, JSON-lines row, safetensors header) is malformed.
    #[error("{what}: {source}")]
    Json {
        /// What was being parsed.
        what: String,
        /// The cause.
        source: serde_json::Error,
    },
    /// A CSV file is malformed.
    #[error("{path}: {source}")]
    Csv {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: csv::Error,
    },
    /// libtorch reported an error.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// The tokenizer could not be loaded or failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The weights file's SHA-256 is not the expected one.
    #[error("{path}: SHA-256 {actual}, expected {expected}")]
    Checksum {
        /// The weights file.
        path: PathBuf,
        /// The digest found.
        actual: String,
        /// The digest required.
        expected: String,
    },
    /// A dataset is unusable (missing column, too few rows, unknown label...).
    #[error("data: {0}")]
    Data(String),
    /// A folder already holds the files of a split, which are not to be replaced.
    #[error("{} already holds the files of a split ({}): pass --force to replace them", dir.display(), files.join(", "))]
    SplitExists {
        /// The folder.
        dir: PathBuf,
        /// The split's files in it.
        files: Vec<String>,
    },
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A simulated consortium's rounds failed (the round library's error, with its causes).
    #[error("simulated round: {0}")]
    Round(String),
    /// An update blob is malformed or does not match the others.
    #[error("update: {0}")]
    Update(String),
    /// Reading, writing or combining update blobs failed.
    #[error(transparent)]
    Fed(#[from] bcfl_fed::Error),
}

/// The training engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn json(what: impl Into<String>, source: serde_json::Error) -> Self {
        Self::Json {
            what: what.into(),
            source,
        }
    }
}
