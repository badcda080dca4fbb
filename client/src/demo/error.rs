//! The error type of the demo ([`Error`]) and its `Result` alias.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;

/// What can stop a demo run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The round library failed (a node's configuration, the package, the report).
    #[error(transparent)]
    Round(#[from] crate::round::Error),
    /// The ledger could not be read or refused a transaction.
    #[error(transparent)]
    Ledger(#[from] crate::round::ledger::LedgerError),
    /// Cutting the shards or building the model package failed.
    #[error(transparent)]
    Train(#[from] crate::train::Error),
    /// PubMedQA could not be read or split.
    #[error(transparent)]
    Pubmedqa(#[from] crate::llm::pubmedqa::Error),
    /// A member key could not be written.
    #[error(transparent)]
    Key(#[from] bcfl_ledger::keys::KeyError),
    /// The aggregation rule cannot be written in the consortium's parameters.
    #[error(transparent)]
    Rule(#[from] bcfl_fed::rule::RuleError),
    /// A node's configuration could not be written as TOML.
    #[error(transparent)]
    Toml(#[from] toml::ser::Error),
    /// A deadline is negative, not finite or too large.
    #[error("invalid duration: {0}")]
    Duration(#[from] std::time::TryFromFloatSecsError),
    /// A blocking task panicked or was cancelled.
    #[error("a blocking task failed: {0}")]
    Blocking(#[from] tokio::task::JoinError),
    /// A file or folder could not be read, written or created.
    #[error("{action} {}", path.display())]
    File {
        /// What was being done.
        action: String,
        /// The file or folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Reading or writing a file failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The demo's certificates could not be made.
    #[error(transparent)]
    Pki(#[from] bcfl_tls::pki::PkiError),
    /// A certificate could not be loaded or trusted.
    #[error(transparent)]
    Tls(#[from] bcfl_tls::TlsError),
    /// The ledger already holds a consortium.
    #[error(
        "the ledger at {0} already holds a consortium: the demo needs a fresh ledger \
         (scripts/demo.sh starts one)"
    )]
    NotFresh(String),
    /// The admin key could not be written (an earlier run's work directory).
    #[error("writing the admin key in {} (use a fresh --work-dir)", dir.display())]
    AdminKey {
        /// The key folder.
        dir: PathBuf,
        /// Why.
        #[source]
        source: bcfl_ledger::keys::KeyError,
    },
    /// The running executable, which runs the nodes, cannot be found.
    #[error("locating this executable")]
    Executable(#[source] std::io::Error),
    /// A node process could not be started.
    #[error("starting {name} ({})", program.display())]
    Spawn {
        /// The node (`member-1`, `coordinator`).
        name: String,
        /// The executable.
        program: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A node process failed.
    #[error("{name} stopped ({status}); the end of its log ({}):\n{tail}", log.display())]
    NodeStopped {
        /// The node.
        name: String,
        /// How it ended.
        status: ExitStatus,
        /// Its log file.
        log: PathBuf,
        /// The last lines of its log.
        tail: String,
    },
    /// SIGINT or SIGTERM stopped the demo.
    #[error("interrupted: stopping the node processes")]
    Interrupted,
}

impl Error {
    pub(crate) fn file(action: &str, path: &Path, source: std::io::Error) -> Self {
        Self::File {
            action: action.to_owned(),
            path: path.to_owned(),
            source,
        }
    }
}

/// The result type of the demo.
pub type Result<T, E = Error> = std::result::Result<T, E>;
