//! Routing trees from one source: predecessors, paths and per-destination predictions.
//!
//! Both routing methods ([`Routing::Shortest`], [`Routing::Widest`]) produce a [`RouteTree`]:
//! for every node reached, its predecessor on the route and the bandwidth of the link from it.
//! [`RouteTree::routes`] then evaluates each destination's path under both transfer models.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use super::bandwidth::{BandwidthGraph, NodeId};
use super::cost::TransferModel;
use super::error::Result;

/// How routes are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Routing {
    /// Least store-and-forward latency `sum M / B_e` (Bellman-Ford).
    #[default]
    Shortest,
    /// Largest bottleneck bandwidth `min B_e`, which is what a pipelined relay is limited by.
    Widest,
}

impl Routing {
    /// The routing's name: `shortest` or `widest`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Shortest => "shortest",
            Self::Widest => "widest",
        }
    }
}

impl fmt::Display for Routing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing a [`Routing`] from a string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown routing {0:?}: expected shortest or widest")]
pub struct UnknownRouting(String);

impl FromStr for Routing {
    type Err = UnknownRouting;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "shortest" => Ok(Self::Shortest),
            "widest" => Ok(Self::Widest),
            other => Err(UnknownRouting(other.to_owned())),
        }
    }
}

/// One destination's route and its predicted transfer times.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// The destination.
    pub destination: NodeId,
    /// The node the destination receives from.
    pub predecessor: NodeId,
    /// The nodes from the source to the destination, both included.
    pub path: Vec<NodeId>,
    /// The smallest bandwidth on the path, bytes per second.
    pub bottleneck_bytes_per_sec: f64,
    /// Store-and-forward time `sum_e M / B_e`, seconds.
    pub store_and_forward_s: f64,
    /// Pipelined time (see [`TransferModel::pipelined`]), seconds.
    pub pipelined_s: f64,
}

impl Route {
    /// The number of links on the path.
    pub fn hops(&self) -> usize {
        self.path.len() - 1
    }
}

/// The routes from one source to every node it reaches.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteTree {
    pub(crate) nodes: Arc<[NodeId]>,
    pub(crate) source: usize,
    pub(crate) routing: Routing,
    pub(crate) model: TransferModel,
    /// Predecessor of each reached node other than the source.
    pub(crate) predecessor: Vec<Option<usize>>,
    /// Bandwidth of the link from the predecessor (0 for the source and unreached nodes).
    pub(crate) in_bandwidth: Vec<f64>,
    /// Store-and-forward latency along the route; infinite when unreachable.
    pub(crate) latency: Vec<f64>,
}

impl RouteTree {
    /// A tree with only the source reached.
    pub(crate) fn rooted(
        graph: &BandwidthGraph,
        source: usize,
        routing: Routing,
        model: &TransferModel,
    ) -> Self {
        let n = graph.node_count();
        let mut latency = vec![f64::INFINITY; n];
        latency[source] = 0.0;
        Self {
            nodes: graph.shared_nodes(),
            source,
            routing,
            model: *model,
            predecessor: vec![None; n],
            in_bandwidth: vec![0.0; n],
            latency,
        }
    }

    /// The source.
    pub fn source(&self) -> &NodeId {
        &self.nodes[self.source]
    }

    /// How the routes were chosen.
    pub fn routing(&self) -> Routing {
        self.routing
    }

    /// The transfer model the latencies were computed with.
    pub fn model(&self) -> &TransferModel {
        &self.model
    }

    fn index(&self, node: &str) -> Option<usize> {
        self.nodes.binary_search_by(|n| n.as_str().cmp(node)).ok()
    }

    /// Whether `node` is reached from the source (the source reaches itself).
    pub fn reaches(&self, node: &str) -> bool {
        self.index(node)
            .is_some_and(|i| self.latency[i].is_finite())
    }

    /// The store-and-forward latency `sum M / B_e` of the route to `node`, if reached.
    pub fn latency(&self, node: &str) -> Option<f64> {
        let i = self.index(node)?;
        self.latency[i].is_finite().then_some(self.latency[i])
    }

    /// The node `node` receives from, if it is reached and is not the source.
    pub fn predecessor(&self, node: &str) -> Option<&NodeId> {
        let i = self.index(node)?;
        self.predecessor[i].map(|p| &self.nodes[p])
    }

    fn path_indices(&self, mut node: usize) -> Option<Vec<usize>> {
        if !self.latency[node].is_finite() {
            return None;
        }
        let mut path = vec![node];
        while let Some(p) = self.predecessor[node] {
            path.push(p);
            node = p;
            // Predecessors form a tree (see the algorithms), so a path has < n links.
            debug_assert!(path.len() <= self.nodes.len(), "predecessor cycle");
        }
        path.reverse();
        Some(path)
    }

    /// The path from the source to `node`, both included, if reached.
    pub fn path(&self, node: &str) -> Option<Vec<NodeId>> {
        let path = self.path_indices(self.index(node)?)?;
        Some(path.into_iter().map(|i| self.nodes[i].clone()).collect())
    }

    /// The nodes not reached from the source, sorted by id.
    pub fn unreachable(&self) -> Vec<&NodeId> {
        self.nodes
            .iter()
            .zip(&self.latency)
            .filter(|(_, l)| !l.is_finite())
            .map(|(n, _)| n)
            .collect()
    }

    /// Every reached destination other than the source, sorted by id, with its path and both
    /// models' predicted times.
    pub fn routes(&self) -> Vec<Route> {
        (0..self.nodes.len())
            .filter(|&v| v != self.source)
            .filter_map(|v| {
                let path = self.path_indices(v)?;
                let bandwidths: Vec<f64> =
                    path[1..].iter().map(|&i| self.in_bandwidth[i]).collect();
                Some(Route {
                    destination: self.nodes[v].clone(),
                    predecessor: self.nodes[path[path.len() - 2]].clone(),
                    bottleneck_bytes_per_sec: bandwidths
                        .iter()
                        .copied()
                        .fold(f64::INFINITY, f64::min),
                    store_and_forward_s: self.model.store_and_forward(&bandwidths),
                    pipelined_s: self.model.pipelined(&bandwidths),
                    path: path.iter().map(|&i| self.nodes[i].clone()).collect(),
                })
            })
            .collect()
    }
}

impl BandwidthGraph {
    /// The routes from `source` chosen by `routing`.
    pub fn route(
        &self,
        source: &str,
        routing: Routing,
        model: &TransferModel,
    ) -> Result<RouteTree> {
        match routing {
            Routing::Shortest => self.shortest_paths(source, model),
            Routing::Widest => self.widest_paths(source, model),
        }
    }
}
