//! Bellman-Ford shortest paths over link latency `M / B_ij`, with deterministic ties.
//!
//! Our own Bellman-Ford rather than `petgraph::algo::bellman_ford`, for one reason: ties. When
//! two predecessors give the same latency, petgraph keeps whichever it relaxed first; here the
//! predecessor with the smallest node id wins, so the tree depends only on the links. The
//! distances are tested equal to petgraph's and to brute force over all simple paths.
//!
//! Rounds relax every link in `(from, to)` order, in place, until a round changes no latency
//! (at most `n` rounds; latencies are positive, so there are no negative cycles). A link
//! `u -> v` with `d(u) + L_uv == d(v)` and `d(u) < d(v)` replaces a predecessor with a larger
//! id; the last round sees the final latencies on every link, so the smallest such `u` wins.
//! Requiring `d(u) < d(v)` keeps the predecessors a tree even where a tiny latency is absorbed
//! by rounding.

use super::bandwidth::BandwidthGraph;
use super::cost::TransferModel;
use super::error::Result;
use super::routes::{RouteTree, Routing};

impl BandwidthGraph {
    /// Bellman-Ford from `source` over link latency `M / B_ij`: per node the least
    /// store-and-forward latency, the predecessor (ties to the smallest id) and the path.
    pub fn shortest_paths(&self, source: &str, model: &TransferModel) -> Result<RouteTree> {
        let source = self.index_or_err(source)?;
        let mut tree = RouteTree::rooted(self, source, Routing::Shortest, model);
        let n = self.node_count();
        let mut rounds = 0;
        for _ in 0..n {
            rounds += 1;
            if !self.relax_all(&mut tree) {
                break;
            }
        }
        tracing::trace!(source = %self.nodes()[source], rounds, "bellman-ford converged");
        Ok(tree)
    }

    /// One Bellman-Ford round; whether any latency went down.
    fn relax_all(&self, tree: &mut RouteTree) -> bool {
        let mut changed = false;
        for u in 0..self.node_count() {
            let du = tree.latency[u];
            if !du.is_finite() {
                continue;
            }
            for arc in self.arcs(u) {
                let v = arc.to;
                let dv = tree.latency[v];
                let candidate = du + tree.model.link_latency(arc.bytes_per_sec);
                let better = candidate < dv;
                let tie = candidate == dv && du < dv && tree.predecessor[v].is_some_and(|p| u < p);
                if better || tie {
                    tree.latency[v] = candidate;
                    tree.predecessor[v] = Some(u);
                    tree.in_bandwidth[v] = arc.bytes_per_sec;
                    changed |= better;
                }
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use crate::graph::{BandwidthGraph, DistributionTotals, GraphError, TransferModel};

    /// ```text
    ///   a --10--> b --10--> c        M = 100 bytes
    ///   a ---2-----------> c        L(a,b) = 10, L(b,c) = 10, L(a,c) = 50, L(c,d) = 20
    ///   c --5--> d                  L(a,d) via c: 20 + 20 = 40
    ///   e (isolated)
    /// ```
    fn example() -> BandwidthGraph {
        BandwidthGraph::with_nodes(
            ["e"],
            [
                ("a", "b", 10.0),
                ("b", "c", 10.0),
                ("a", "c", 2.0),
                ("c", "d", 5.0),
            ],
        )
        .unwrap()
    }

    #[test]
    fn known_answer_latencies_paths_and_totals() {
        let model = TransferModel::new(100.0, 100.0).unwrap();
        let tree = example().shortest_paths("a", &model).unwrap();
        assert_eq!(tree.latency("a"), Some(0.0));
        assert_eq!(tree.latency("b"), Some(10.0));
        assert_eq!(tree.latency("c"), Some(20.0));
        assert_eq!(tree.latency("d"), Some(40.0));
        assert_eq!(tree.latency("e"), None);
        assert_eq!(tree.predecessor("d").unwrap(), "c");
        assert_eq!(tree.predecessor("a"), None);
        assert_eq!(tree.path("d").unwrap(), ["a", "b", "c", "d"]);
        assert_eq!(tree.unreachable(), ["e"]);
        let routes = tree.routes();
        assert_eq!(routes.len(), 3);
        // D_G = 2: synchronous 2 + 10 + 20 + 40 = 72, asynchronous 2 + 40 = 42.
        let totals = DistributionTotals::store_and_forward(&routes, 2.0).unwrap();
        assert_eq!((totals.synchronous_s, totals.asynchronous_s), (72.0, 42.0));
        assert_eq!(routes[2].hops(), 3);
        assert_eq!(routes[2].bottleneck_bytes_per_sec, 5.0);
    }

    #[test]
    fn removal_reroutes_and_reports_the_cut_off() {
        // Without b, c is reached directly (50 s) and d via c (70 s).
        let model = TransferModel::new(100.0, 100.0).unwrap();
        let graph = example().without_nodes(&["b"]).unwrap();
        let tree = graph.shortest_paths("a", &model).unwrap();
        assert_eq!(tree.latency("c"), Some(50.0));
        assert_eq!(tree.latency("d"), Some(70.0));
        assert_eq!(tree.path("d").unwrap(), ["a", "c", "d"]);
        // Without c, d is cut off as well.
        let graph = example().without_nodes(&["c"]).unwrap();
        let tree = graph.shortest_paths("a", &model).unwrap();
        assert_eq!(tree.unreachable(), ["d", "e"]);
    }

    #[test]
    fn equal_latencies_go_to_the_smallest_predecessor_id() {
        // s -> x -> t and s -> y -> t both take 2 s; x < y, so t receives from x, whatever
        // order the links come in.
        let links = [
            ("s", "y", 1.0),
            ("y", "t", 1.0),
            ("s", "x", 1.0),
            ("x", "t", 1.0),
        ];
        let model = TransferModel::new(1.0, 1.0).unwrap();
        let forward = BandwidthGraph::from_links(links).unwrap();
        let mut reversed_links = links;
        reversed_links.reverse();
        let backward = BandwidthGraph::from_links(reversed_links).unwrap();
        for graph in [forward, backward] {
            let tree = graph.shortest_paths("s", &model).unwrap();
            assert_eq!(tree.predecessor("t").unwrap(), "x");
        }
        // Ids compare as strings: "10" < "9".
        let graph = BandwidthGraph::from_links([
            ("1", "9", 1.0),
            ("9", "2", 1.0),
            ("1", "10", 1.0),
            ("10", "2", 1.0),
        ])
        .unwrap();
        let tree = graph.shortest_paths("1", &model).unwrap();
        assert_eq!(tree.predecessor("2").unwrap(), "10");
    }

    #[test]
    fn unknown_source_is_an_error() {
        let model = TransferModel::new(1.0, 1.0).unwrap();
        assert_eq!(
            example().shortest_paths("zz", &model).unwrap_err(),
            GraphError::UnknownNode("zz".into())
        );
    }

    #[test]
    fn agrees_with_petgraph_bellman_ford() {
        let model = TransferModel::new(100.0, 100.0).unwrap();
        let graph = example();
        let pg = graph.to_petgraph(&model);
        let paths = petgraph::algo::bellman_ford(&pg, petgraph::graph::NodeIndex::new(0)).unwrap();
        let tree = graph.shortest_paths("a", &model).unwrap();
        for (i, node) in graph.nodes().iter().enumerate() {
            let ours = tree.latency(node.as_str()).unwrap_or(f64::INFINITY);
            assert_eq!(ours, paths.distances[i], "{node}");
        }
    }
}
