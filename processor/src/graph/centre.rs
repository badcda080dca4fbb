//! The graph centre: the deterministic choice of aggregator.
//!
//! An aggregator both collects every member's update and sends the global model back, so a
//! candidate `c` is judged by the round trip to each other node `i`:
//! `r_i = d(i -> c) + d(c -> i)`, with `d` the shortest store-and-forward latency
//! ([`BandwidthGraph::shortest_paths`], on the reversed graph for `d(i -> c)`).
//!
//! - [`CentreCriterion::MinMax`] (the default, the classical graph centre): minimise the
//!   eccentricity `max_i r_i`; ties by the total `sum_i r_i`, then by node id.
//! - [`CentreCriterion::MinSum`] (the median): minimise `sum_i r_i`; ties by the eccentricity,
//!   then by node id.
//!
//! Only nodes that reach, and are reached by, every other node are candidates. The cost is two
//! Bellman-Ford runs per node.

use std::cmp::Ordering;

use super::bandwidth::{BandwidthGraph, NodeId};
use super::cost::TransferModel;
use super::error::{GraphError, Result};

/// What the centre minimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CentreCriterion {
    /// The worst round trip to any other node (eccentricity).
    #[default]
    MinMax,
    /// The sum of the round trips to all other nodes.
    MinSum,
}

/// The chosen centre and its scores.
#[derive(Debug, Clone, PartialEq)]
pub struct Centre {
    /// The centre node.
    pub node: NodeId,
    /// Its largest round trip `max_i d(i -> c) + d(c -> i)`, seconds.
    pub eccentricity_s: f64,
    /// The sum of its round trips, seconds.
    pub total_s: f64,
}

impl BandwidthGraph {
    /// The centre under `criterion` for transfers of the model's size, or
    /// [`GraphError::NoCentre`] if no node reaches and is reached by every other (including
    /// the empty graph).
    pub fn centre(&self, model: &TransferModel, criterion: CentreCriterion) -> Result<Centre> {
        let reversed = self.reversed();
        let mut best: Option<Centre> = None;
        for node in self.nodes() {
            let Some(candidate) = self.round_trips(&reversed, node, model)? else {
                continue;
            };
            let key = |c: &Centre| match criterion {
                CentreCriterion::MinMax => (c.eccentricity_s, c.total_s),
                CentreCriterion::MinSum => (c.total_s, c.eccentricity_s),
            };
            // Nodes come in id order, so keeping the incumbent on a tie keeps the smaller id.
            let wins = best.as_ref().is_none_or(|b| {
                let (x, y) = (key(&candidate), key(b));
                x.0.total_cmp(&y.0).then(x.1.total_cmp(&y.1)) == Ordering::Less
            });
            if wins {
                best = Some(candidate);
            }
        }
        let centre = best.ok_or(GraphError::NoCentre)?;
        tracing::debug!(centre = %centre.node, eccentricity_s = centre.eccentricity_s, "centre");
        Ok(centre)
    }

    /// The round-trip scores of `node`, or `None` if it misses some node in either direction.
    fn round_trips(
        &self,
        reversed: &BandwidthGraph,
        node: &NodeId,
        model: &TransferModel,
    ) -> Result<Option<Centre>> {
        let out = self.shortest_paths(node.as_str(), model)?;
        let back = reversed.shortest_paths(node.as_str(), model)?;
        let (mut eccentricity_s, mut total_s) = (0.0_f64, 0.0);
        for (out, back) in out.latency.iter().zip(&back.latency) {
            let round_trip = out + back;
            if !round_trip.is_finite() {
                return Ok(None);
            }
            eccentricity_s = eccentricity_s.max(round_trip);
            total_s += round_trip;
        }
        Ok(Some(Centre {
            node: node.clone(),
            eccentricity_s,
            total_s,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bidirectional path a - b - c - d with every link at 10 B/s, M = 10: each hop 1 s.
    /// Round trips: from b: a 2, c 2, d 4 -> max 4, sum 8; from c: symmetric, max 4, sum 8;
    /// from a: max 6, sum 12. b and c tie on both criteria; b has the smaller id.
    fn path4() -> Vec<(&'static str, &'static str, f64)> {
        let pairs = [("a", "b"), ("b", "c"), ("c", "d")];
        pairs
            .iter()
            .flat_map(|&(x, y)| [(x, y, 10.0), (y, x, 10.0)])
            .collect()
    }

    #[test]
    fn ties_go_to_the_smallest_id() {
        let graph = BandwidthGraph::from_links(path4()).unwrap();
        let model = TransferModel::new(10.0, 10.0).unwrap();
        let centre = graph.centre(&model, CentreCriterion::MinMax).unwrap();
        assert_eq!(centre.node, "b");
        assert_eq!((centre.eccentricity_s, centre.total_s), (4.0, 8.0));
    }

    /// A star around h (h <-> x at 10 B/s) with a far leaf: h <-> f at 1 B/s, M = 10.
    /// Round trips from h: x 2, y 2, z 2, f 20 -> max 20, sum 26.
    /// From f: h 20, x 22, y 22, z 22 -> max 22. From x: h 2, y 4, z 4, f 22 -> max 22, sum 32.
    /// MinMax picks h (20). A chain spur g: f <-> g at 100 B/s changes nothing for MinMax
    /// but tests MinSum: from h: x 2, y 2, z 2, f 20, g 20.2 -> sum 46.2;
    /// from f: h 20, x 22, y 22, z 22, g 0.2 -> sum 86.2. MinSum still picks h.
    #[test]
    fn star_centre_under_both_criteria_and_after_removal() {
        let mut links = Vec::new();
        for (leaf, rate) in [("x", 10.0), ("y", 10.0), ("z", 10.0), ("f", 1.0)] {
            links.push(("h", leaf, rate));
            links.push((leaf, "h", rate));
        }
        links.extend([("f", "g", 100.0), ("g", "f", 100.0)]);
        let graph = BandwidthGraph::from_links(links).unwrap();
        let model = TransferModel::new(10.0, 10.0).unwrap();
        let minmax = graph.centre(&model, CentreCriterion::MinMax).unwrap();
        assert_eq!(minmax.node, "h");
        assert!(
            (minmax.eccentricity_s - 20.2).abs() < 1e-9,
            "{}",
            minmax.eccentricity_s
        );
        let minsum = graph.centre(&model, CentreCriterion::MinSum).unwrap();
        assert_eq!(minsum.node, "h");
        assert!((minsum.total_s - 46.2).abs() < 1e-9, "{}", minsum.total_s);
        // Without h nobody reaches everyone: no centre.
        let headless = graph.without_nodes(&["h"]).unwrap();
        assert_eq!(
            headless
                .centre(&model, CentreCriterion::MinMax)
                .unwrap_err(),
            GraphError::NoCentre
        );
    }

    #[test]
    fn one_way_reachability_is_not_enough() {
        // a -> b -> c only: a reaches all but nobody reaches a.
        let graph = BandwidthGraph::from_links([("a", "b", 1.0), ("b", "c", 1.0)]).unwrap();
        let model = TransferModel::new(1.0, 1.0).unwrap();
        assert_eq!(
            graph.centre(&model, CentreCriterion::MinSum).unwrap_err(),
            GraphError::NoCentre
        );
        let single =
            BandwidthGraph::with_nodes(["solo"], Vec::<(String, String, f64)>::new()).unwrap();
        let centre = single.centre(&model, CentreCriterion::MinMax).unwrap();
        assert_eq!((centre.node.as_str(), centre.eccentricity_s), ("solo", 0.0));
    }
}
