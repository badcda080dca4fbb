//! Widest-path (bottleneck) routing: maximise the smallest bandwidth on the path.
//!
//! A pipelined relay's time is dominated by `M / B_min` (see [`TransferModel::pipelined`]), so
//! for large messages the path with the widest bottleneck beats the one with the least
//! store-and-forward latency.
//!
//! The algorithm is Dijkstra's with `min` in place of `+` and the largest width settled first.
//! Each node's width is optimal (tested against brute force over all simple paths). Among
//! routes of equal width the choice is greedy and deterministic: at each relaxation the
//! smaller store-and-forward latency wins, then the smaller predecessor id; and among unsettled
//! nodes of equal width the one with the smaller latency, then id, is settled first. (A
//! secondary criterion cannot be optimised exactly by this scan, because `min` forgets which
//! width-equal prefix was faster; the width itself is exact.)

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::bandwidth::BandwidthGraph;
use super::cost::TransferModel;
use super::error::Result;
use super::routes::{RouteTree, Routing};

/// The label of a reached node: the bottleneck width and latency along its current route.
#[derive(Debug, Clone, Copy)]
struct Label {
    width: f64,
    latency: f64,
}

impl Label {
    /// Better first: wider, then faster. Widths and latencies are never NaN.
    fn better(&self, other: &Self) -> Ordering {
        other
            .width
            .total_cmp(&self.width)
            .then(self.latency.total_cmp(&other.latency))
    }
}

/// A queue entry; the heap's maximum is the best label, then the smallest node index.
#[derive(Debug, Clone, Copy)]
struct Entry {
    label: Label,
    node: usize,
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .label
            .better(&self.label)
            .then(other.node.cmp(&self.node))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Entry {}

impl BandwidthGraph {
    /// Widest paths from `source`: per node the route whose smallest bandwidth is largest, with
    /// its store-and-forward latency, predecessor and path.
    pub fn widest_paths(&self, source: &str, model: &TransferModel) -> Result<RouteTree> {
        let source = self.index_or_err(source)?;
        let n = self.node_count();
        let mut tree = RouteTree::rooted(self, source, Routing::Widest, model);
        let mut label: Vec<Option<Label>> = vec![None; n];
        let mut settled = vec![false; n];
        // A heap of (label, node) with stale entries skipped: it pops the best current label,
        // ties to the smaller index, exactly as a scan over all unsettled nodes would.
        let mut queue = BinaryHeap::from([Entry {
            label: Label {
                width: f64::INFINITY,
                latency: 0.0,
            },
            node: source,
        }]);
        while let Some(Entry {
            label: from,
            node: u,
        }) = queue.pop()
        {
            if settled[u] {
                continue;
            }
            settled[u] = true;
            for arc in self.arcs(u) {
                let v = arc.to;
                if settled[v] {
                    continue;
                }
                let candidate = Label {
                    width: from.width.min(arc.bytes_per_sec),
                    latency: from.latency + model.link_latency(arc.bytes_per_sec),
                };
                let replace = match label[v] {
                    None => true,
                    Some(current) => match candidate.better(&current) {
                        Ordering::Less => true,
                        Ordering::Equal => tree.predecessor[v].is_some_and(|p| u < p),
                        Ordering::Greater => false,
                    },
                };
                if replace {
                    label[v] = Some(candidate);
                    tree.predecessor[v] = Some(u);
                    tree.in_bandwidth[v] = arc.bytes_per_sec;
                    tree.latency[v] = candidate.latency;
                    queue.push(Entry {
                        label: candidate,
                        node: v,
                    });
                }
            }
        }
        Ok(tree)
    }
}

#[cfg(test)]
mod tests {
    use crate::graph::{BandwidthGraph, DistributionTotals, Routing, TransferModel};

    /// ```text
    ///   s --100--> a --100--> t      widths: via a min(100, 100) = 100, direct 60
    ///   s ---60-------------> t      M = 6000, c = 600
    /// ```
    /// Shortest: direct, 6000/60 = 100 s < 60 + 60 = 120 s via a.
    /// Widest: via a. Pipelined via a: 600/100 + 600/100 + 5400/100 = 66 s; direct is 100 s.
    #[test]
    fn widest_beats_shortest_for_pipelined_relays() {
        let graph =
            BandwidthGraph::from_links([("s", "a", 100.0), ("a", "t", 100.0), ("s", "t", 60.0)])
                .unwrap();
        let model = TransferModel::new(6000.0, 600.0).unwrap();

        let shortest = graph.route("s", Routing::Shortest, &model).unwrap();
        assert_eq!(shortest.path("t").unwrap(), ["s", "t"]);
        let t = &shortest.routes()[1];
        assert_eq!((t.store_and_forward_s, t.pipelined_s), (100.0, 100.0));

        let widest = graph.route("s", Routing::Widest, &model).unwrap();
        assert_eq!(widest.routing(), Routing::Widest);
        assert_eq!(widest.path("t").unwrap(), ["s", "a", "t"]);
        let routes = widest.routes();
        let t = &routes[1];
        assert_eq!(t.bottleneck_bytes_per_sec, 100.0);
        assert_eq!((t.store_and_forward_s, t.pipelined_s), (120.0, 66.0));
        assert_eq!(widest.latency("t"), Some(120.0));
        // Pipelined totals with D_G = 0: a takes 60 s, t 66 s: sync 126, async 66.
        let totals = DistributionTotals::pipelined(&routes, 0.0).unwrap();
        assert_eq!((totals.synchronous_s, totals.asynchronous_s), (126.0, 66.0));
    }

    /// ```text
    ///   s --50--> a --50--> t        both routes have width 50;
    ///   s --50--> b --80--> t        via b is faster: 1 + 0.625 < 1 + 1 (M = 50)
    ///   u (isolated)
    /// ```
    #[test]
    fn equal_widths_prefer_the_faster_route_and_unreachable_nodes_are_listed() {
        let graph = BandwidthGraph::with_nodes(
            ["u"],
            [
                ("s", "a", 50.0),
                ("a", "t", 50.0),
                ("s", "b", 50.0),
                ("b", "t", 80.0),
            ],
        )
        .unwrap();
        let model = TransferModel::new(50.0, 10.0).unwrap();
        let tree = graph.widest_paths("s", &model).unwrap();
        assert_eq!(tree.path("t").unwrap(), ["s", "b", "t"]);
        assert_eq!(tree.latency("t"), Some(1.625));
        assert_eq!(tree.unreachable(), ["u"]);
    }
}
