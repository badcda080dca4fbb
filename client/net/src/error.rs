//! The error type of the peer network ([`NetError`]) and its `Result` alias.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::edges::EdgeListError;

/// What can go wrong storing, serving, probing or fetching blobs.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A TLS certificate or key could not be loaded.
    #[error(transparent)]
    Tls(#[from] bcfl_tls::TlsError),
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
    /// An input file (an edge list) could not be read.
    #[error("reading {}", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An edge list file is malformed.
    #[error("parsing {}", path.display())]
    EdgeList {
        /// The file.
        path: PathBuf,
        /// What is wrong, with its line.
        #[source]
        source: EdgeListError,
    },
    /// The family's state could not be read from the ledger.
    #[error("reading the family state")]
    FamilyState(#[source] bcfl_ledger::rest::RestError),
    /// The ledger's measured links do not make a graph.
    #[error("building the graph from the ledger's links")]
    LedgerGraph(#[source] bcfl_processor::graph::GraphError),
    /// A node the request needs is excluded by a round's on-chain verdict.
    #[error("{node} is excluded by the {verdict}")]
    Excluded {
        /// The node or nodes (`the source 1`, `every holder`).
        node: String,
        /// The verdict ([`RoundExclusion::describe`](crate::exclusion::RoundExclusion::describe)).
        verdict: String,
    },
    /// No endpoint is known for a node.
    #[error("no endpoint for {0}")]
    NoEndpoint(String),
    /// An HTTP request to a node failed.
    #[error("{what}")]
    Http {
        /// What was asked (`asking 2 for the manifest of ...`).
        what: String,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },
    /// A holder does not serve the blob it should hold.
    #[error("{holder} does not serve blob {blob}: HTTP {status}")]
    NotServed {
        /// The node asked.
        holder: String,
        /// The blob.
        blob: String,
        /// Its answer.
        status: reqwest::StatusCode,
    },
    /// The blob store directory could not be opened.
    #[error("opening the blob store {}", path.display())]
    OpenStore {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<NetError>,
    },
    /// A file could not be added to the blob store.
    #[error("adding {}", path.display())]
    AddFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<NetError>,
    },
    /// The server could not listen on its address.
    #[error("binding {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The server stopped with an error.
    #[error("serving")]
    Serve(#[source] io::Error),
    /// A report could not be encoded as JSON.
    #[error("encoding JSON")]
    Json(#[from] serde_json::Error),
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
