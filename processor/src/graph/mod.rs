//! The member graph: link latency, routing, spanning trees and the graph centre.
//!
//! Members measure the bandwidth of each directed link `i -> j` (bytes per second) and record
//! it on chain (`bcfl_protos::bcfl::Link`, the last samples of each link). This module turns
//! those measurements into the decisions a round needs, and is shared by the processor (on-chain
//! choices such as the aggregator) and the client (routing transfers), so both compute the same
//! answer from the same evidence.
//!
//! # The model
//!
//! - Link latency `L_ij = M / B_ij` seconds for a transfer of `M` bytes over a link of `B_ij`
//!   bytes per second ([`TransferModel::link_latency`]).
//! - [`BandwidthGraph::shortest_paths`]: Bellman-Ford over `L_ij` from a source; per destination
//!   the latency, the predecessor and the path. Unreachable nodes are listed, never dropped.
//! - [`BandwidthGraph::widest_paths`]: bottleneck routing, maximising the smallest bandwidth on
//!   the path, for pipelined relays.
//! - [`TransferModel`]: the store-and-forward time of a path (each relay receives the whole
//!   message before sending it on: `sum M / B_e`) and the pipelined time (relays forward chunks
//!   as they arrive; see [`TransferModel::pipelined`] for the exact formula).
//! - [`DistributionTotals`]: the seed paper's totals, synchronous `D_G + sum` of the
//!   per-destination times (one transfer after another) and asynchronous `D_G + max`.
//! - [`RouteTree::contended`]: a contention-aware prediction of a distribution along the route
//!   tree, where a node's concurrent transfers share its uplink and all transfers may share a
//!   total throughput (max-min fair rates, solved event by event); beside the paper's totals.
//! - [`BandwidthGraph::minimum_spanning_tree`]: Kruskal over the undirected view, where a pair's
//!   two directions combine into the faster one.
//! - [`BandwidthGraph::centre`]: the node whose worst (or total) round trip to the others is
//!   smallest, ties by node id: the deterministic aggregator choice.
//! - [`BandwidthGraph::without_nodes`]: the graph with some members (e.g. anomalous ones)
//!   removed, to recompute all of the above.
//! - [`BandwidthGraph::to_petgraph`]: the same graph with latency weights for petgraph's
//!   algorithms (PageRank and the like).
//!
//! # Determinism
//!
//! Every result depends only on the links, never on hash-map order, clocks or randomness: nodes
//! are kept sorted by id, links are relaxed in `(from, to)` order, and every tie is broken by
//! node id. Floating-point arithmetic is IEEE 754 `f64` additions and divisions in a fixed
//! order, which gives the same bits on every platform.
//!
//! # Example
//!
//! ```
//! use bcfl_processor::graph::{BandwidthGraph, DistributionTotals, TransferModel};
//!
//! // a -> b at 10 B/s, b -> c at 10 B/s, a -> c at 2 B/s.
//! let graph = BandwidthGraph::from_links([("a", "b", 10.0), ("b", "c", 10.0), ("a", "c", 2.0)])?;
//! let model = TransferModel::new(100.0, 10.0)?;
//! let tree = graph.shortest_paths("a", &model)?;
//! // a -> b -> c takes 100/10 + 100/10 = 20 s, a -> c directly 100/2 = 50 s.
//! assert_eq!(tree.latency("c"), Some(20.0));
//! assert_eq!(tree.path("c").unwrap(), ["a", "b", "c"]);
//! let routes = tree.routes();
//! let totals = DistributionTotals::store_and_forward(&routes, 1.0)?;
//! assert_eq!((totals.synchronous_s, totals.asynchronous_s), (31.0, 21.0));
//! # Ok::<(), bcfl_processor::graph::GraphError>(())
//! ```

mod bandwidth;
mod centre;
mod contention;
mod cost;
mod error;
mod routes;
mod shortest;
mod spanning;
mod widest;

#[cfg(test)]
mod proptests;

pub use bandwidth::{median_bandwidth, BandwidthGraph, NodeId};
pub use centre::{Centre, CentreCriterion};
pub use contention::{Arrival, ContendedDistribution, Sharing, Uplink};
pub use cost::{DistributionTotals, TransferModel};
pub use error::{GraphError, Result};
pub use routes::{Route, RouteTree, Routing};
pub use spanning::{SpanningEdge, SpanningTree};
