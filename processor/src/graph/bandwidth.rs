//! The directed bandwidth graph: nodes sorted by id, links `from -> to` with bytes per second.
//!
//! Nodes are identified by strings (member public keys on chain, integers or names in a CSV) and
//! stored sorted, so node indices, link order and every tie-break follow the ids, never the order
//! the links were given in.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc as Shared;

use bcfl_protos::bcfl::{Link, LinkSample};

use super::cost::TransferModel;
use super::error::{GraphError, Result};

/// A node of the member graph: a member's public key, or any non-empty string.
///
/// Ordered by the string, which is the order every tie is broken in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(String);

impl NodeId {
    /// The id, or [`GraphError::EmptyNodeId`] if it is empty.
    pub fn new(id: impl Into<String>) -> Result<Self> {
        let id = id.into();
        if id.is_empty() {
            return Err(GraphError::EmptyNodeId);
        }
        Ok(Self(id))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for NodeId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for NodeId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for NodeId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// One outgoing link in the adjacency lists: the receiving node's index and the bandwidth.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Arc {
    pub(crate) to: usize,
    pub(crate) bytes_per_sec: f64,
}

/// A directed graph of measured link bandwidths.
///
/// Built with [`BandwidthGraph::from_links`], [`BandwidthGraph::with_nodes`] or, from the
/// ledger's `Link` state, [`BandwidthGraph::from_ledger_links`].
#[derive(Debug, Clone, PartialEq)]
pub struct BandwidthGraph {
    /// Sorted by id; shared with the route trees computed from the graph.
    nodes: Shared<[NodeId]>,
    /// Outgoing links of each node, sorted by the receiving node's index.
    out: Vec<Vec<Arc>>,
}

fn validate_bandwidth(from: &str, to: &str, bytes_per_sec: f64) -> Result<()> {
    if bytes_per_sec.is_finite() && bytes_per_sec > 0.0 {
        Ok(())
    } else {
        Err(GraphError::InvalidBandwidth {
            from: from.to_owned(),
            to: to.to_owned(),
            bytes_per_sec,
        })
    }
}

impl BandwidthGraph {
    /// The graph of the given `(from, to, bytes_per_sec)` links; its nodes are the links' ends.
    ///
    /// Errors on an empty id, a self loop, a bandwidth that is not a positive finite number, or
    /// a directed link given twice.
    pub fn from_links<A, B, I>(links: I) -> Result<Self>
    where
        A: Into<String>,
        B: Into<String>,
        I: IntoIterator<Item = (A, B, f64)>,
    {
        Self::with_nodes(std::iter::empty::<String>(), links)
    }

    /// The graph of the given links plus `nodes`, which may have no links at all (such nodes
    /// are reported unreachable rather than forgotten).
    pub fn with_nodes<N, A, B, I>(nodes: impl IntoIterator<Item = N>, links: I) -> Result<Self>
    where
        N: Into<String>,
        A: Into<String>,
        B: Into<String>,
        I: IntoIterator<Item = (A, B, f64)>,
    {
        let mut ids = BTreeSet::new();
        for node in nodes {
            ids.insert(NodeId::new(node)?);
        }
        let mut by_pair = BTreeMap::new();
        for (from, to, bytes_per_sec) in links {
            let (from, to) = (NodeId::new(from)?, NodeId::new(to)?);
            if from == to {
                return Err(GraphError::SelfLoop { node: from.0 });
            }
            validate_bandwidth(from.as_str(), to.as_str(), bytes_per_sec)?;
            ids.insert(from.clone());
            ids.insert(to.clone());
            if by_pair.contains_key(&(from.clone(), to.clone())) {
                return Err(GraphError::DuplicateLink {
                    from: from.0,
                    to: to.0,
                });
            }
            by_pair.insert((from, to), bytes_per_sec);
        }
        let nodes: Vec<NodeId> = ids.into_iter().collect();
        let index: BTreeMap<&NodeId, usize> =
            nodes.iter().enumerate().map(|(i, n)| (n, i)).collect();
        let mut out = vec![Vec::new(); nodes.len()];
        // BTreeMap order is (from, to) order, so each list comes out sorted by receiver.
        for ((from, to), bytes_per_sec) in &by_pair {
            out[index[from]].push(Arc {
                to: index[to],
                bytes_per_sec: *bytes_per_sec,
            });
        }
        Ok(Self {
            nodes: nodes.into(),
            out,
        })
    }

    /// The graph of the ledger's `Link` state, each link summarised by the median of its last
    /// `window` samples ([`median_bandwidth`]).
    ///
    /// Every link's two ends are nodes; a link with no samples, or whose median is zero, is not
    /// an edge (the link is measured as down), so its ends may come out unreachable.
    pub fn from_ledger_links<'a>(
        links: impl IntoIterator<Item = &'a Link>,
        window: usize,
    ) -> Result<Self> {
        let mut nodes = Vec::new();
        let mut edges = Vec::new();
        for link in links {
            nodes.push(link.get_from().to_owned());
            nodes.push(link.get_to().to_owned());
            if let Some(median) = median_bandwidth(link.get_samples(), window) {
                if median > 0.0 {
                    edges.push((link.get_from().to_owned(), link.get_to().to_owned(), median));
                }
            }
        }
        Self::with_nodes(nodes, edges)
    }

    /// The nodes, sorted by id.
    pub fn nodes(&self) -> &[NodeId] {
        &self.nodes
    }

    /// The nodes, shared (cheap to clone).
    pub(crate) fn shared_nodes(&self) -> Shared<[NodeId]> {
        Shared::clone(&self.nodes)
    }

    /// The number of nodes.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The number of directed links.
    pub fn link_count(&self) -> usize {
        self.out.iter().map(Vec::len).sum()
    }

    /// Whether `node` is in the graph.
    pub fn contains(&self, node: &str) -> bool {
        self.index_of(node).is_some()
    }

    /// The bandwidth of the directed link `from -> to`, if it is measured.
    pub fn bandwidth(&self, from: &str, to: &str) -> Option<f64> {
        let (from, to) = (self.index_of(from)?, self.index_of(to)?);
        self.arc_bandwidth(from, to)
    }

    /// All directed links `(from, to, bytes_per_sec)` in `(from, to)` order.
    pub fn links(&self) -> impl Iterator<Item = (&NodeId, &NodeId, f64)> + '_ {
        self.out.iter().enumerate().flat_map(move |(from, arcs)| {
            arcs.iter()
                .map(move |arc| (&self.nodes[from], &self.nodes[arc.to], arc.bytes_per_sec))
        })
    }

    /// The graph without `removed` (and their links), e.g. the members judged anomalous.
    ///
    /// Errors with [`GraphError::UnknownNode`] if a removed node is not in the graph, which
    /// catches misspelt ids.
    pub fn without_nodes<S: AsRef<str>>(&self, removed: &[S]) -> Result<Self> {
        let mut gone = vec![false; self.nodes.len()];
        for node in removed {
            let node = node.as_ref();
            let index = self
                .index_of(node)
                .ok_or_else(|| GraphError::UnknownNode(node.to_owned()))?;
            gone[index] = true;
        }
        let mut index = vec![None; self.nodes.len()];
        let mut nodes = Vec::new();
        for (old, node) in self.nodes.iter().enumerate() {
            if !gone[old] {
                index[old] = Some(nodes.len());
                nodes.push(node.clone());
            }
        }
        // Kept nodes keep their relative order, so the renumbered lists stay sorted.
        let out = self
            .out
            .iter()
            .zip(&gone)
            .filter(|(_, &g)| !g)
            .map(|(arcs, _)| {
                arcs.iter()
                    .filter_map(|arc| {
                        index[arc.to].map(|to| Arc {
                            to,
                            bytes_per_sec: arc.bytes_per_sec,
                        })
                    })
                    .collect()
            })
            .collect();
        Ok(Self {
            nodes: nodes.into(),
            out,
        })
    }

    /// The graph with every link turned around (`to -> from`), e.g. for routes *towards* a node.
    pub fn reversed(&self) -> Self {
        let mut out = vec![Vec::new(); self.nodes.len()];
        for (from, arcs) in self.out.iter().enumerate() {
            for arc in arcs {
                out[arc.to].push(Arc {
                    to: from,
                    bytes_per_sec: arc.bytes_per_sec,
                });
            }
        }
        // Pushed in increasing `from` order, so each list is already sorted.
        Self {
            nodes: self.nodes.clone(),
            out,
        }
    }

    /// The graph as a petgraph `DiGraph` with latency `M / B` weights, node `i` being
    /// `self.nodes()[i]`: for petgraph's algorithms (e.g. PageRank) and cross-checks.
    pub fn to_petgraph(&self, model: &TransferModel) -> petgraph::graph::DiGraph<NodeId, f64> {
        let mut graph =
            petgraph::graph::DiGraph::with_capacity(self.node_count(), self.link_count());
        for node in self.nodes() {
            graph.add_node(node.clone());
        }
        for u in 0..self.node_count() {
            for arc in self.arcs(u) {
                graph.add_edge(
                    petgraph::graph::NodeIndex::new(u),
                    petgraph::graph::NodeIndex::new(arc.to),
                    model.link_latency(arc.bytes_per_sec),
                );
            }
        }
        graph
    }

    /// The index of `node` in [`BandwidthGraph::nodes`].
    pub fn index_of(&self, node: &str) -> Option<usize> {
        self.nodes
            .binary_search_by(|probe| probe.as_str().cmp(node))
            .ok()
    }

    pub(crate) fn index_or_err(&self, node: &str) -> Result<usize> {
        self.index_of(node)
            .ok_or_else(|| GraphError::UnknownNode(node.to_owned()))
    }

    pub(crate) fn arcs(&self, from: usize) -> &[Arc] {
        &self.out[from]
    }

    pub(crate) fn arc_bandwidth(&self, from: usize, to: usize) -> Option<f64> {
        let arcs = &self.out[from];
        arcs.binary_search_by(|arc| arc.to.cmp(&to))
            .ok()
            .map(|i| arcs[i].bytes_per_sec)
    }
}

/// The robust summary of a link: the median `bytes_per_sec` of its last `window` samples.
///
/// Samples are oldest first, as the ledger keeps them. With an even count the median is the mean
/// of the two middle values. `None` if there are no samples or `window` is zero.
pub fn median_bandwidth(samples: &[LinkSample], window: usize) -> Option<f64> {
    let start = samples.len().saturating_sub(window);
    let mut recent: Vec<u64> = samples[start..]
        .iter()
        .map(LinkSample::get_bytes_per_sec)
        .collect();
    if recent.is_empty() {
        return None;
    }
    recent.sort_unstable();
    let mid = recent.len() / 2;
    let median = if recent.len() % 2 == 1 {
        recent[mid] as f64
    } else {
        // Halve each before adding so that two values near u64::MAX cannot overflow.
        recent[mid - 1] as f64 / 2.0 + recent[mid] as f64 / 2.0
    };
    Some(median)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(epoch: u64, bytes_per_sec: u64) -> LinkSample {
        let mut s = LinkSample::new();
        s.set_epoch(epoch);
        s.set_bytes_per_sec(bytes_per_sec);
        s
    }

    fn link(from: &str, to: &str, rates: &[u64]) -> Link {
        let mut l = Link::new();
        l.set_from(from.into());
        l.set_to(to.into());
        for (epoch, rate) in rates.iter().enumerate() {
            l.mut_samples().push(sample(epoch as u64, *rate));
        }
        l
    }

    #[test]
    fn nodes_and_links_are_sorted_whatever_the_input_order() {
        let g = BandwidthGraph::from_links([("c", "a", 1.0), ("a", "c", 2.0), ("b", "a", 3.0)])
            .unwrap();
        assert_eq!(g.nodes(), ["a", "b", "c"]);
        let links: Vec<_> = g
            .links()
            .map(|(f, t, b)| (f.as_str(), t.as_str(), b))
            .collect();
        assert_eq!(links, [("a", "c", 2.0), ("b", "a", 3.0), ("c", "a", 1.0)]);
        assert_eq!(g.bandwidth("a", "c"), Some(2.0));
        assert_eq!(g.bandwidth("c", "b"), None);
        assert_eq!(g.link_count(), 3);
    }

    #[test]
    fn bad_links_are_rejected() {
        let err = BandwidthGraph::from_links([("a", "b", 0.0)]).unwrap_err();
        assert!(matches!(err, GraphError::InvalidBandwidth { .. }), "{err}");
        let err = BandwidthGraph::from_links([("a", "b", -1.0)]).unwrap_err();
        assert!(matches!(err, GraphError::InvalidBandwidth { .. }), "{err}");
        let err = BandwidthGraph::from_links([("a", "b", f64::NAN)]).unwrap_err();
        assert!(matches!(err, GraphError::InvalidBandwidth { .. }), "{err}");
        let err = BandwidthGraph::from_links([("a", "a", 1.0)]).unwrap_err();
        assert_eq!(err, GraphError::SelfLoop { node: "a".into() });
        let err = BandwidthGraph::from_links([("a", "b", 1.0), ("a", "b", 2.0)]).unwrap_err();
        assert!(matches!(err, GraphError::DuplicateLink { .. }), "{err}");
        let err = BandwidthGraph::from_links([("", "b", 1.0)]).unwrap_err();
        assert_eq!(err, GraphError::EmptyNodeId);
    }

    #[test]
    fn removing_nodes_drops_their_links_and_rejects_unknown_ids() {
        let g =
            BandwidthGraph::with_nodes(["z"], [("a", "b", 1.0), ("b", "c", 2.0), ("c", "a", 3.0)])
                .unwrap();
        let h = g.without_nodes(&["b"]).unwrap();
        assert_eq!(h.nodes(), ["a", "c", "z"]);
        assert_eq!(h.link_count(), 1);
        assert_eq!(h.bandwidth("c", "a"), Some(3.0));
        assert_eq!(
            g.without_nodes(&["x"]).unwrap_err(),
            GraphError::UnknownNode("x".into())
        );
    }

    #[test]
    fn reversal_turns_every_link_around() {
        let g = BandwidthGraph::from_links([("a", "b", 1.0), ("c", "b", 2.0)]).unwrap();
        let r = g.reversed();
        assert_eq!(r.bandwidth("b", "a"), Some(1.0));
        assert_eq!(r.bandwidth("b", "c"), Some(2.0));
        assert_eq!(r.link_count(), 2);
        assert_eq!(r.reversed(), g);
    }

    #[test]
    fn median_of_the_last_samples() {
        let samples: Vec<_> = [100, 1, 9, 5, 7]
            .iter()
            .enumerate()
            .map(|(e, r)| sample(e as u64, *r))
            .collect();
        // last 3: 9, 5, 7 -> 7; last 4: 1, 9, 5, 7 -> (5 + 7) / 2 = 6; all: 1 5 7 9 100 -> 7.
        assert_eq!(median_bandwidth(&samples, 3), Some(7.0));
        assert_eq!(median_bandwidth(&samples, 4), Some(6.0));
        assert_eq!(median_bandwidth(&samples, 16), Some(7.0));
        assert_eq!(median_bandwidth(&samples, 0), None);
        assert_eq!(median_bandwidth(&[], 16), None);
        let huge = [sample(0, u64::MAX), sample(1, u64::MAX)];
        assert_eq!(median_bandwidth(&huge, 2), Some(u64::MAX as f64));
    }

    #[test]
    fn ledger_links_become_median_edges_and_dead_links_keep_their_nodes() {
        let links = [
            link("k1", "k2", &[10, 1000, 20]),
            link("k2", "k3", &[0, 0, 5]),
            link("k3", "k1", &[]),
        ];
        let g = BandwidthGraph::from_ledger_links(&links, 16).unwrap();
        assert_eq!(g.nodes(), ["k1", "k2", "k3"]);
        assert_eq!(g.bandwidth("k1", "k2"), Some(20.0));
        // k2 -> k3: median of 0, 0, 5 is 0: down. k3 -> k1: no samples.
        assert_eq!(g.link_count(), 1);
        // With a window of 1 only the last sample counts.
        let g = BandwidthGraph::from_ledger_links(&links, 1).unwrap();
        assert_eq!(g.bandwidth("k2", "k3"), Some(5.0));
    }
}
