//! Errors of the member-graph computations.

use thiserror::Error;

/// A result whose error is a [`GraphError`].
pub type Result<T, E = GraphError> = std::result::Result<T, E>;

/// Why a graph could not be built or a computation could not run.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum GraphError {
    /// A node id was empty.
    #[error("a node id is empty")]
    EmptyNodeId,
    /// A link's bandwidth was zero, negative or not a finite number.
    #[error("link {from} -> {to}: bandwidth {bytes_per_sec} B/s is not a positive finite number")]
    InvalidBandwidth {
        /// Sending node.
        from: String,
        /// Receiving node.
        to: String,
        /// The rejected value.
        bytes_per_sec: f64,
    },
    /// A link from a node to itself.
    #[error("link {node} -> {node} is a self loop")]
    SelfLoop {
        /// The node.
        node: String,
    },
    /// The same directed link was given twice.
    #[error("link {from} -> {to} is given more than once")]
    DuplicateLink {
        /// Sending node.
        from: String,
        /// Receiving node.
        to: String,
    },
    /// A node named in a request is not in the graph.
    #[error("node {0} is not in the graph")]
    UnknownNode(String),
    /// The source of a routing request was among the removed nodes.
    #[error("the source {0} cannot be removed")]
    SourceRemoved(String),
    /// The transfer size was zero, negative or not finite.
    #[error("transfer size {0} bytes is not a positive finite number")]
    InvalidSize(f64),
    /// The chunk size was zero, negative or not finite.
    #[error("chunk size {0} bytes is not a positive finite number")]
    InvalidChunk(f64),
    /// The fixed delay `D_G` was negative or not finite.
    #[error("delay {0} s is not a non-negative finite number")]
    InvalidDelay(f64),
    /// The graph has no node from which every other node can be reached and which every other
    /// node can reach, so it has no centre.
    #[error("no node reaches, and is reached by, every other node; the graph has no centre")]
    NoCentre,
    /// A throughput limit was zero, negative or not finite.
    #[error("capacity {0} B/s is not a positive finite number")]
    InvalidCapacity(f64),
    /// A route tree was paired with a graph other than the one it was routed on.
    #[error("the route tree was computed on another graph")]
    ForeignTree,
    /// The contention model stopped making progress (no transfer can move); a bug, reported
    /// rather than looping.
    #[error("the contention model made no progress")]
    Stalled,
}
