//! The minimum spanning tree of the undirected view of the graph (Kruskal).
//!
//! Undirected view: nodes `a < b` are joined if either direction is measured, and the pair's
//! weight is its *faster* direction, `M / max(B_ab, B_ba)` (a tree edge can carry data whichever
//! way is quicker; an unmeasured direction does not count). Since `M / B` falls as `B` grows,
//! the edges are sorted by bandwidth, largest first, then by `(a, b)`, which makes the tree
//! exact and deterministic without comparing rounded latencies. A disconnected graph gives a
//! minimum spanning forest, one tree per component.

use std::collections::BTreeMap;

use super::bandwidth::{BandwidthGraph, NodeId};
use super::cost::TransferModel;

/// An edge of the spanning tree, `a < b`.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanningEdge {
    /// The end with the smaller id.
    pub a: NodeId,
    /// The end with the larger id.
    pub b: NodeId,
    /// The faster direction's bandwidth, bytes per second.
    pub bytes_per_sec: f64,
    /// The edge's weight `M / bytes_per_sec`, seconds.
    pub latency_s: f64,
}

/// A minimum spanning tree (or forest) of the undirected view.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanningTree {
    /// The tree's edges, sorted by `(a, b)`.
    pub edges: Vec<SpanningEdge>,
    /// The sum of the edges' latencies, added in edge order, seconds.
    pub weight_s: f64,
    /// The number of connected components: 1 when the tree spans the graph.
    pub components: usize,
}

impl SpanningTree {
    /// Whether the tree spans every node (the undirected view is connected).
    pub fn spans(&self) -> bool {
        self.components <= 1
    }
}

/// Union-find with path halving and union by size.
struct Components {
    parent: Vec<usize>,
    size: Vec<usize>,
}

impl Components {
    fn new(n: usize) -> Self {
        Self {
            parent: (0..n).collect(),
            size: vec![1; n],
        }
    }

    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    /// Joins the components of `a` and `b`; false if they were already one.
    fn union(&mut self, a: usize, b: usize) -> bool {
        let (mut a, mut b) = (self.find(a), self.find(b));
        if a == b {
            return false;
        }
        if self.size[a] < self.size[b] {
            std::mem::swap(&mut a, &mut b);
        }
        self.parent[b] = a;
        self.size[a] += self.size[b];
        true
    }
}

impl BandwidthGraph {
    /// The undirected view: `(a, b) -> max(B_ab, B_ba)` for `a < b` (node indices).
    pub(crate) fn undirected(&self) -> BTreeMap<(usize, usize), f64> {
        let mut pairs = BTreeMap::new();
        for u in 0..self.node_count() {
            for arc in self.arcs(u) {
                let key = (u.min(arc.to), u.max(arc.to));
                let entry = pairs.entry(key).or_insert(arc.bytes_per_sec);
                *entry = f64::max(*entry, arc.bytes_per_sec);
            }
        }
        pairs
    }

    /// The minimum spanning tree (forest, if disconnected) of the undirected view, with edge
    /// weights `M / B` for the model's size `M`.
    pub fn minimum_spanning_tree(&self, model: &TransferModel) -> SpanningTree {
        let mut pairs: Vec<((usize, usize), f64)> = self.undirected().into_iter().collect();
        // Widest first; the sort is stable, so equal bandwidths stay in (a, b) order.
        pairs.sort_by(|(_, x), (_, y)| y.total_cmp(x));
        let mut components = Components::new(self.node_count());
        let mut chosen: Vec<(usize, usize, f64)> = Vec::new();
        for ((a, b), bytes_per_sec) in pairs {
            if components.union(a, b) {
                chosen.push((a, b, bytes_per_sec));
            }
        }
        chosen.sort_by_key(|&(a, b, _)| (a, b));
        let edges: Vec<SpanningEdge> = chosen
            .into_iter()
            .map(|(a, b, bytes_per_sec)| SpanningEdge {
                a: self.nodes()[a].clone(),
                b: self.nodes()[b].clone(),
                bytes_per_sec,
                latency_s: model.link_latency(bytes_per_sec),
            })
            .collect();
        SpanningTree {
            weight_s: edges.iter().fold(0.0, |sum, e| sum + e.latency_s),
            components: self.node_count() - edges.len(),
            edges,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::graph::{BandwidthGraph, TransferModel};

    /// ```text
    ///   a -> b 10, b -> a 40    pair {a,b}: faster direction 40 -> 100/40 = 2.5 s
    ///   b -> c 20               {b,c}: 100/20 = 5 s
    ///   a -> c 25               {a,c}: 100/25 = 4 s
    ///   c -> d 5                {c,d}: 100/5 = 20 s
    ///   e -> f 50               {e,f}: 2 s, a second component
    /// ```
    /// Kruskal: {e,f} 2, {a,b} 2.5, {a,c} 4, {b,c} would close a cycle, {c,d} 20.
    /// Weight 2 + 2.5 + 4 + 20 = 28.5 s; two components.
    #[test]
    fn known_answer_forest() {
        let graph = BandwidthGraph::from_links([
            ("a", "b", 10.0),
            ("b", "a", 40.0),
            ("b", "c", 20.0),
            ("a", "c", 25.0),
            ("c", "d", 5.0),
            ("e", "f", 50.0),
        ])
        .unwrap();
        let tree = graph.minimum_spanning_tree(&TransferModel::new(100.0, 1.0).unwrap());
        let edges: Vec<_> = tree
            .edges
            .iter()
            .map(|e| (e.a.as_str(), e.b.as_str(), e.latency_s))
            .collect();
        assert_eq!(
            edges,
            [
                ("a", "b", 2.5),
                ("a", "c", 4.0),
                ("c", "d", 20.0),
                ("e", "f", 2.0)
            ]
        );
        assert_eq!(tree.weight_s, 28.5);
        assert_eq!(tree.components, 2);
        assert!(!tree.spans());
        // Removing e and f leaves one spanning tree of weight 26.5.
        let tree = graph
            .without_nodes(&["e", "f"])
            .unwrap()
            .minimum_spanning_tree(&TransferModel::new(100.0, 1.0).unwrap());
        assert_eq!((tree.weight_s, tree.components), (26.5, 1));
    }

    #[test]
    fn equal_weights_are_chosen_by_node_ids() {
        // A triangle of equal links: Kruskal takes {a,b} and {a,c}, never {b,c}.
        let graph = BandwidthGraph::from_links([("c", "b", 1.0), ("b", "a", 1.0), ("c", "a", 1.0)])
            .unwrap();
        let tree = graph.minimum_spanning_tree(&TransferModel::new(1.0, 1.0).unwrap());
        let edges: Vec<_> = tree
            .edges
            .iter()
            .map(|e| (e.a.as_str(), e.b.as_str()))
            .collect();
        assert_eq!(edges, [("a", "b"), ("a", "c")]);
    }
}
