//! The error type of the peer network ([`NetError`]) and its `Result` alias.

use std::io;

/// What can go wrong storing, serving, probing or fetching blobs.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A blob id is not 64 lowercase hexadecimal characters.
    #[error("{0:?} is not a SHA-256 blob id (64 lowercase hex characters)")]
    InvalidBlobId(String),
    /// Reading or writing the blob store failed.
    #[error("blob store {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Received bytes do not hash to the expected SHA-256.
    #[error("blob {expected}: content hashes to {actual}")]
    HashMismatch {
        /// The id the bytes were expected to have.
        expected: String,
        /// What they hash to.
        actual: String,
    },
    /// One chunk of a transfer does not match its manifest hash.
    #[error("blob {blob}: chunk {index} does not match the manifest")]
    ChunkMismatch {
        /// The blob being received.
        blob: String,
        /// The zero-based chunk index.
        index: usize,
    },
    /// A transfer delivered a different number of bytes than announced.
    #[error("blob {blob}: expected {expected} bytes, received {received}")]
    Truncated {
        /// The blob being received.
        blob: String,
        /// The announced size.
        expected: u64,
        /// What arrived.
        received: u64,
    },
    /// A manifest is inconsistent (wrong blob, chunk count or chunk size).
    #[error("invalid manifest for blob {blob}: {reason}")]
    InvalidManifest {
        /// The blob the manifest claims to describe.
        blob: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A peer could not be reached or answered with an HTTP error.
    #[error("peer {peer}: {message}")]
    Peer {
        /// The peer's base URL.
        peer: String,
        /// What happened.
        message: String,
    },
    /// No route is left to a destination after excluding failed peers.
    #[error("no route to {destination} (excluded: {excluded:?})")]
    NoRoute {
        /// The node that cannot be reached.
        destination: String,
        /// The nodes excluded after failures.
        excluded: Vec<String>,
    },
    /// Routing for a round was asked before the round's anomaly verdict is on chain.
    #[error(
        "round {round} has no anomaly verdict on chain (evaluate it first: `bcfl round evaluate`)"
    )]
    NoVerdict {
        /// The round.
        round: u64,
    },
    /// A sweep that cannot be reported (no link measured, or too many).
    #[error("bandwidth report: {0}")]
    Report(String),
    /// Building the ledger transaction failed.
    #[error(transparent)]
    Family(#[from] bcfl_ledger::family::FamilyError),
    /// The ledger's REST API failed or rejected the transaction.
    #[error(transparent)]
    Rest(#[from] bcfl_ledger::rest::RestError),
    /// The routing graph rejected the request.
    #[error(transparent)]
    Graph(#[from] bcfl_processor::graph::GraphError),
}

impl NetError {
    pub(crate) fn io(path: impl std::fmt::Display, source: io::Error) -> Self {
        Self::Io {
            path: path.to_string(),
            source,
        }
    }

    pub(crate) fn peer(peer: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Self::Peer {
            peer: peer.into(),
            message: message.to_string(),
        }
    }

    /// True when the data itself was wrong (hash, chunk or length), rather than a peer being
    /// unreachable: the sender must not be trusted for this blob again.
    pub fn is_integrity_failure(&self) -> bool {
        matches!(
            self,
            Self::HashMismatch { .. }
                | Self::ChunkMismatch { .. }
                | Self::Truncated { .. }
                | Self::InvalidManifest { .. }
        )
    }
}

/// The result type of the peer network.
pub type Result<T, E = NetError> = std::result::Result<T, E>;
